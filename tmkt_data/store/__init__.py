"""The tmkt frame store: a versioned Zarr v3 group (layout in ``docs/store-format.md``).

This package owns every byte of a store; nothing outside it opens Zarr or writes into a
store folder.

- :mod:`~tmkt_data.store.core`: format name and version, :class:`StoreError`, the cache-key
  hash, recognising, atomically replacing and deleting files;
- :mod:`~tmkt_data.store.frames`: geometry, :func:`create_store` / :func:`open_store`, the
  shard files of ``frames`` (:func:`encode_shard`, :func:`write_shard`) and their
  reader (:class:`ShardReader`);
- :mod:`~tmkt_data.store.arrays`: the per-sample arrays and :func:`finalize_store`;
- :mod:`~tmkt_data.store.records`: the per-shard completion records (``_tmkt/shard_records``,
  and ``_tmkt/shards/*.json`` of stores written before it);
- :mod:`~tmkt_data.store.groups`: the ``rgb/`` and ``pairs/`` groups (:class:`GroupsWriter`)
  and a read-only :class:`StoreView`;
- :mod:`~tmkt_data.store.location`: where a store lives, a local folder or a URL on object
  storage (:func:`store_location`, :class:`RemotePath`, connection settings from the environment);
- :mod:`~tmkt_data.store.lock`: one writer per store (``<store>.lock``);
- :mod:`~tmkt_data.store.checksums`: the crc32c of every file, recorded when written and
  checked when read (:class:`~tmkt_data.store.checksums.CheckedStore`);
- :mod:`~tmkt_data.store.info` and :mod:`~tmkt_data.store.verify`: ``inspect``, ``verify`` and
  the repair checks of ``convert`` (:func:`check_shards`) and the pipeline (:func:`verify_groups`).
"""

from tmkt_data.store.arrays import (
    SAMPLE_FIELDS,
    finalize_store,
    sample_array_files,
    sample_row,
    write_sample_array,
)
from tmkt_data.store.checksums import root_damaged
from tmkt_data.store.core import (
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    StoreError,
    damaged_metadata,
    file_sha256,
    is_store,
    params_hash,
    remove_store,
)
from tmkt_data.store.frames import (
    ShardReader,
    StoreGeometry,
    create_store,
    encode_shard,
    frames_compressor,
    frames_metadata,
    geometry_of,
    open_store,
    rebuild_root,
    shard_file,
    write_root_attrs,
    write_shard,
)
from tmkt_data.store.groups import GroupsWriter, StoreView, read_group_attrs, rgb_chunk, rgb_compressor
from tmkt_data.store.info import dir_bytes, store_summary
from tmkt_data.store.location import RemotePath, is_url, store_location
from tmkt_data.store.lock import StoreLockedError, hold_lock, holds_store_lock, lock_path, store_lock
from tmkt_data.store.records import completed_shards, read_record, record_path
from tmkt_data.store.verify import (
    ShardCheck,
    check_shards,
    made_as,
    repair_frames_metadata,
    unchecked_parts,
    verify_groups,
    verify_store,
)

__all__ = [
    "SAMPLE_FIELDS",
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "GroupsWriter",
    "RemotePath",
    "ShardCheck",
    "ShardReader",
    "StoreError",
    "StoreGeometry",
    "StoreLockedError",
    "StoreView",
    "check_shards",
    "completed_shards",
    "create_store",
    "damaged_metadata",
    "dir_bytes",
    "encode_shard",
    "file_sha256",
    "finalize_store",
    "frames_compressor",
    "frames_metadata",
    "geometry_of",
    "hold_lock",
    "holds_store_lock",
    "is_store",
    "is_url",
    "lock_path",
    "made_as",
    "open_store",
    "params_hash",
    "read_group_attrs",
    "read_record",
    "rebuild_root",
    "record_path",
    "remove_store",
    "repair_frames_metadata",
    "rgb_chunk",
    "rgb_compressor",
    "root_damaged",
    "sample_array_files",
    "sample_row",
    "shard_file",
    "store_location",
    "store_lock",
    "store_summary",
    "unchecked_parts",
    "verify_groups",
    "verify_store",
    "write_root_attrs",
    "write_sample_array",
    "write_shard",
]
