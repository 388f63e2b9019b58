"""Per-shard completion records: written after each shard file, gathered when the store is finalised.

A record is the JSON ``{shard, start, params_hash, shard_sha256, shard_crc32c, chunk_crc32c,
samples, record_crc32c}``: the shard file's sha256 and crc32c, the crc32c of each sample's
compressed chunk in it (``tmkt_data/store/checksums.py``), and the crc32c of the record itself
(of its canonical JSON without that key), so a damaged record counts as missing. The records
are the elements of the string array ``_tmkt/shard_records`` (shape ``(n_shards,)``, one
chunk per shard, codec ``vlen-utf8`` only): a valid Zarr member, so zarr-python iterates
the store without warnings, and plain zarr reads record k as
``g["_tmkt/shard_records"][k]`` (``""``: not written yet). Each record's chunk file
(``_tmkt/shard_records/c/<k>``) is encoded here, exactly as zarr-python writes it, and
renamed into place, so parallel writers never share a file.

Stores written before the array existed (same format version; no
``_tmkt/shard_records/zarr.json``) hold their records as files ``_tmkt/shards/<k:06d>.json``:
they are read there, and a resumed conversion of such a store keeps writing there, so a
store never mixes the two places.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

from tmkt_data.store.core import replace_file

#: the records array, and the folder of record files of stores written before it
RECORDS_ARRAY = "_tmkt/shard_records"
LEGACY_RECORDS = "_tmkt/shards"
_ABOUT = "tmkt bookkeeping: shard_records holds one JSON completion record per frames shard"


def create_records(group: Any, n_shards: int) -> None:
    """Create the ``_tmkt`` group and its empty ``shard_records`` array in a new store (zarr group)."""
    tmkt = group.create_group("_tmkt", attributes={"about": _ABOUT})
    tmkt.create_array(
        "shard_records",
        shape=(n_shards,),
        chunks=(1,),
        dtype=str,
        compressors=None,
        fill_value="",
        dimension_names=("shard",),
        attributes={"about": "element k: shard k's completion record (JSON), empty until it is written"},
    )


def legacy_layout(path: Path) -> bool:
    """True for a store written before the records array (records as ``_tmkt/shards/*.json``)."""
    return not (path / RECORDS_ARRAY / "zarr.json").is_file()


def record_path(path: Path, k: int) -> Path:
    """The file holding shard ``k``'s record in the store at ``path`` (in either layout)."""
    if legacy_layout(path):
        return path / LEGACY_RECORDS / f"{k:06d}.json"
    return path / RECORDS_ARRAY / "c" / str(k)


def encode_record(text: str) -> bytes:
    """The chunk file of a one-element ``vlen-utf8`` string array: uint32 count (1), uint32
    length, then the UTF-8 bytes, little-endian (zarr-python's encoding)."""
    raw = text.encode("utf-8")
    return np.uint32(1).tobytes() + np.uint32(len(raw)).tobytes() + raw


def decode_record(blob: bytes) -> str | None:
    """The string of a chunk written by :func:`encode_record`; None when torn or malformed."""
    if len(blob) < 8 or int.from_bytes(blob[:4], "little") != 1:
        return None
    n = int.from_bytes(blob[4:8], "little")
    if len(blob) != 8 + n:
        return None
    try:
        return blob[8:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _record_crc(record: dict[str, Any]) -> int:
    """crc32c of a record's canonical JSON, without its own ``record_crc32c``."""
    rest = {k: v for k, v in record.items() if k != "record_crc32c"}
    return int(google_crc32c.value(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()))


def write_record(path: Path, k: int, record: dict[str, Any]) -> None:
    """Write shard ``k``'s record (to a temporary name, then renamed into place), with its crc32c."""
    target = record_path(path, k)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**record, "record_crc32c": _record_crc(record)})
    if legacy_layout(path):
        replace_file(target, text.encode(), tmp=target.with_suffix(".json.tmp"))
    else:
        replace_file(target, encode_record(text))


def read_record(path: Path, k: int) -> dict | None:
    """Shard ``k``'s completion record, or None if the shard is not complete (no record, a torn
    one, or one whose ``record_crc32c`` does not match: damaged). Records written before
    checksums (no ``record_crc32c``) are returned unchecked."""
    legacy = legacy_layout(path)
    try:
        blob = record_path(path, k).read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = blob.decode("utf-8") if legacy else decode_record(blob)
        rec = json.loads(text) if text else None
    except ValueError:
        return None  # a torn record counts as not done
    if not isinstance(rec, dict):
        return None
    checked = "record_crc32c" in rec or "chunk_crc32c" in rec  # written with checksums
    if checked and rec.get("record_crc32c") != _record_crc(rec):
        return None  # damaged: counts as not done
    return rec


def completed_shards(path: Path, n_shards: int, key: str) -> set[int]:
    """Shards whose record exists and was written with parameters ``key``."""
    done = set()
    for k in range(n_shards):
        rec = read_record(path, k)
        if rec is not None and rec.get("params_hash") == key:
            done.add(k)
    return done
