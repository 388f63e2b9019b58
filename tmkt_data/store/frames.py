"""The ``frames`` array: geometry, creating and opening a store, shard files written and read.

Writing happens shard by shard: a conversion task fills whole shards of ``frames`` (one
shard = one file holding ``shard_samples`` samples) with :func:`write_shard`, which encodes
the shard file itself (:func:`encode_shard`, the bytes zarr-python's ``sharding_indexed``
codec writes; ``tests/test_store.py`` compares them), renames it into place, then writes the
shard's completion record (:mod:`tmkt_data.store.records`).

:class:`ShardReader` reads samples of one shard file at a time: when ``frames`` has the codec
layout :func:`create_store` writes (one sample per inner chunk, ``bytes`` + ``blosc``, the
shard index at the file's end), it reads the index and the samples' compressed bytes with
``pread`` and Blosc-decompresses each sample straight into the output; any other layout is
read through ``zarr``. A reader holds no open file between calls; create one per process
(lazily, in the process that reads). Used by :class:`tmkt_train.batches.StoreBatches`
(batches) and :class:`tmkt_data.dataset.FrameDataset` (single samples).

Checksums (:mod:`tmkt_data.store.checksums`): :func:`write_shard` records the crc32c of the shard
file and of each sample's compressed chunk in the shard's completion record; :class:`ShardReader`
checks every chunk it decodes against it (a missing shard file, a mismatch or a missing record is
a :class:`StoreError` naming the file and ``tmkt-data verify``), and :func:`open_store` opens the
store on a :class:`~tmkt_data.store.checksums.CheckedStore`, which checks every file zarr reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from tmkt_data.store.checksums import (
    ROOT_META,
    checked_store,
    checks_enabled,
    crc32c,
    damaged,
    expected_files,
    read_manifest,
    update_manifest,
    warn_unchecked,
)
from tmkt_data.store.core import (
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    StoreError,
    damaged_metadata,
    is_store,
    replace_file,
)
from tmkt_data.store.location import RemotePath, store_location, zarr_target
from tmkt_data.store.records import create_records, read_record, record_path, write_record


def frames_compressor(dtype: str) -> BloscCodec:
    """Blosc zstd level 2 for frames: with bit-shuffle for integer counts (small values, many
    zero bits), without shuffle for floats (bit-shuffle doubles the size of resized float16
    frames). Level 2 is 2x faster than level 3 on float frames (files 0.2 % larger) and 3.9x
    faster than level 5 on counts (1.4 % larger): benchmarks/bench_convert_parts.py."""
    if np.dtype(dtype).kind in "iu":
        return BloscCodec(cname="zstd", clevel=2, shuffle=BloscShuffle.bitshuffle)
    return BloscCodec(cname="zstd", clevel=2, shuffle=BloscShuffle.noshuffle)


@dataclass(frozen=True)
class StoreGeometry:
    """Shape facts fixed when the store is created."""

    n_samples: int
    frame_shape: tuple[int, int, int, int]  # (T, 2, H, W)
    dtype: str
    shard_samples: int

    @property
    def n_shards(self) -> int:
        return -(-self.n_samples // self.shard_samples)

    def shard_range(self, k: int) -> tuple[int, int]:
        """Sample index range ``[start, stop)`` of shard ``k``."""
        start = k * self.shard_samples
        return start, min(start + self.shard_samples, self.n_samples)


def create_store(
    path: Path,
    geometry: StoreGeometry,
    attrs: dict[str, Any],
) -> zarr.Group:
    """Create an empty store at ``path`` (which must not exist) with ``status = "in_progress"``."""
    full = _root_attrs(geometry, attrs)
    group = zarr.open_group(zarr_target(path, "w-"), mode="w-", zarr_format=3, attributes=full)
    _create_frames(group, geometry)
    create_records(group, geometry.n_shards)
    return group


def _create_frames(group: zarr.Group, geometry: StoreGeometry) -> None:
    """The empty ``frames`` array of ``geometry`` in ``group`` (its metadata only)."""
    group.create_array(
        "frames",
        shape=(geometry.n_samples, *geometry.frame_shape),
        chunks=(1, *geometry.frame_shape),
        shards=(geometry.shard_samples, *geometry.frame_shape),
        dtype=geometry.dtype,
        compressors=frames_compressor(geometry.dtype),
        fill_value=0,
        dimension_names=("sample", "time", "polarity", "y", "x"),
    )


def frames_metadata(geometry: StoreGeometry) -> bytes:
    """The bytes of the ``frames/zarr.json`` :func:`create_store` writes for ``geometry`` (written by
    zarr-python into a scratch folder): what ``convert`` puts back in place of a damaged one."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _create_frames(zarr.open_group(tmp, mode="w", zarr_format=3), geometry)
        return (Path(tmp) / "frames" / "zarr.json").read_bytes()


def _root_attrs(geometry: StoreGeometry, attrs: dict[str, Any]) -> dict[str, Any]:
    """The root attributes of a new store: ``attrs``, the format and the geometry, ``in_progress``."""
    full = dict(attrs)
    full.update(
        format=STORE_FORMAT,
        format_version=STORE_FORMAT_VERSION,
        status="in_progress",
        n_samples=geometry.n_samples,
        frame_shape=list(geometry.frame_shape),
        dtype=geometry.dtype,
        shard_samples=geometry.shard_samples,
        n_shards=geometry.n_shards,
    )
    return full


def write_root_attrs(
    path: Path | RemotePath,
    attrs: dict[str, Any],
    manifest: dict[str, Any] | None = None,
    doc: dict[str, Any] | None = None,
) -> None:
    """Replace the store's root ``zarr.json`` with attributes ``attrs`` (the other keys of ``doc``,
    its current metadata, kept; by default a Zarr v3 group's), as zarr-python writes it. Its crc32c
    is recorded first (``checksums.root`` of ``_tmkt``, with the other ``manifest`` parts), then the
    file replaced atomically: a crash between the two leaves a store every checked read refuses as
    damaged (``convert`` again repairs it), never attributes read unchecked. The caller holds the
    store lock."""
    meta = dict(doc) if doc is not None else {"attributes": {}, "zarr_format": 3, "node_type": "group"}
    meta["attributes"] = attrs
    blob = json.dumps(meta, indent=2, allow_nan=True).encode()
    update_manifest(path, {**(manifest or {}), "root": crc32c(blob)})
    replace_file(path / ROOT_META, blob)


def rebuild_root(path: Path | RemotePath, geometry: StoreGeometry, attrs: dict[str, Any]) -> None:
    """Rewrite a damaged root ``zarr.json`` as :func:`create_store` writes it (``attrs``, the format,
    ``geometry``, ``status = "in_progress"``; :func:`~tmkt_data.store.finalize_store` then adds the
    failures and marks it complete), recording its crc32c. ``convert`` calls it, holding the store
    lock, when the recorded crc32c no longer matches and the frames array and the shard records
    show the store was made with the parameters it was given."""
    write_root_attrs(path, _root_attrs(geometry, attrs))


def open_store(
    path: str | os.PathLike[str] | RemotePath, *, mode: str = "r", require_complete: bool = True
) -> zarr.Group:
    """Open a tmkt store (a local path or a URL, :mod:`tmkt_data.store.location`), checking its
    format, version and (by default) completeness.

    Read-only opens of a complete store (``mode="r"``, ``require_complete``) go through a
    :class:`~tmkt_data.store.checksums.CheckedStore` (on object storage a ``CheckedFsspecStore``):
    every file zarr reads, the root ``zarr.json`` (the attributes) first, is checked against its
    recorded crc32c. A store written without checksums is read unchecked, with a warning (once per
    store and process); one written before the root's crc32c was recorded reads its attributes
    unchecked, without one.
    """
    p = store_location(path)
    if not p.exists():
        raise StoreError(f"{p}: no such store")
    damage = damaged_metadata(p, members=require_complete)  # readers would meet a JSON traceback
    if damage is not None:
        raise StoreError(f"{p}: damaged store ({damage}); delete it and convert again")
    if not is_store(p):
        raise StoreError(f"{p}: not a tmkt store (expected a Zarr v3 group with format={STORE_FORMAT!r})")
    manifest = None
    if mode == "r" and require_complete:  # an incomplete store is read for its attributes only
        manifest = read_manifest(p)
        sums, prefixes = expected_files(p, manifest)
        group = zarr.open_group(store=checked_store(p, sums, prefixes), mode="r", zarr_format=3)
    else:
        group = zarr.open_group(zarr_target(p, mode), mode=mode, zarr_format=3)
    version = group.attrs.get("format_version")
    if version != STORE_FORMAT_VERSION:
        raise StoreError(
            f"{p}: store format version {version}, this tmkt reads version {STORE_FORMAT_VERSION}"
        )
    if require_complete and group.attrs.get("status") != "complete":
        raise StoreError(
            f"{p}: conversion did not finish (status {group.attrs.get('status')!r}); run it again"
        )
    if mode == "r" and require_complete:
        warn_unchecked(p, manifest)
    return group


def geometry_of(group: zarr.Group) -> StoreGeometry:
    a = group.attrs
    return StoreGeometry(
        int(a["n_samples"]), tuple(a["frame_shape"]), str(a["dtype"]), int(a["shard_samples"])
    )


def shard_file(path: Path, k: int) -> Path:
    """The file holding shard ``k`` of ``frames`` (default Zarr v3 chunk key encoding)."""
    return path / "frames" / "c" / str(k) / "0" / "0" / "0" / "0"


def _blosc_settings(dtype: str) -> tuple[bytes, int, int]:
    """(cname, clevel, shuffle) of :func:`frames_compressor` in numcodecs' terms."""
    codec = frames_compressor(dtype)
    shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[codec.shuffle.value]
    return codec.cname.value.encode(), int(codec.clevel), shuffle


def encode_shard(frames: np.ndarray, shard_samples: int, dtype: str) -> bytes:
    """The bytes of one shard file of ``frames`` exactly as Zarr's ``sharding_indexed`` codec
    reads them: each sample Blosc-compressed (the array's ``bytes`` + ``blosc`` codecs), then the
    index of (offset, length) uint64 pairs, one per inner chunk (all ones for chunks not
    present), then its crc32c, all little-endian."""
    return _encode_shard(frames, shard_samples, dtype)[0]


def _encode_shard(frames: np.ndarray, shard_samples: int, dtype: str) -> tuple[bytes, list[int]]:
    """:func:`encode_shard`'s bytes and the crc32c of each sample's compressed chunk."""
    import google_crc32c
    from numcodecs import blosc

    cname, clevel, shuffle = _blosc_settings(dtype)
    le = np.dtype(dtype).newbyteorder("<")
    index = np.full((shard_samples, 2), np.iinfo(np.uint64).max, dtype="<u8")
    parts, sums, offset = [], [], 0
    for i in range(frames.shape[0]):
        enc = blosc.compress(np.ascontiguousarray(frames[i], dtype=le), cname, clevel, shuffle, 0)
        index[i] = (offset, len(enc))
        parts.append(enc)
        sums.append(int(google_crc32c.value(enc)))
        offset += len(enc)
    raw_index = index.tobytes()
    parts.append(raw_index)
    parts.append(google_crc32c.value(raw_index).to_bytes(4, "little"))
    return b"".join(parts), sums


def shard_chunk_crc32c(blob: bytes, shard_samples: int) -> list[int | None]:
    """crc32c of each inner chunk of a shard file's bytes, found through its index (None: chunk
    not stored); adds checksums to the record of a shard written before them."""
    tail = 16 * shard_samples + 4
    if len(blob) < tail:
        raise ValueError("shorter than the shard index")
    index = np.frombuffer(blob[len(blob) - tail : len(blob) - 4], dtype="<u8").reshape(shard_samples, 2)
    out: list[int | None] = []
    for off, n in index.tolist():
        if off == 2**64 - 1:
            out.append(None)
        elif off + n > len(blob) - tail:
            raise ValueError("a chunk extends past the shard data")
        else:
            out.append(crc32c(blob[off : off + n]))
    return out


def write_shard(path: Path, k: int, frames: np.ndarray, samples: list[dict[str, Any]], key: str) -> dict:
    """Write shard ``k`` (all its samples at once), then its completion record.

    The shard file is encoded here (:func:`encode_shard`; Zarr reads it as any
    other shard) and written to a temporary name, then renamed into place, so
    a shard file is never seen half-written. ``samples`` holds one metadata
    dict per sample (keys of :data:`SAMPLE_FIELDS` plus ``failure`` when the
    sample could not be converted). The record is written (also atomically)
    after the shard file: a crash never leaves a record for a missing shard.
    """
    geo = geometry_of(zarr.open_group(zarr_target(path, "r"), mode="r", zarr_format=3))
    blob, chunk_sums = _encode_shard(np.asarray(frames), geo.shard_samples, geo.dtype)
    sfile = shard_file(path, k)
    sfile.parent.mkdir(parents=True, exist_ok=True)
    replace_file(sfile, blob)
    record = {
        "shard": k,
        "start": k * geo.shard_samples,
        "params_hash": key,
        "shard_sha256": hashlib.sha256(blob).hexdigest(),
        "shard_crc32c": crc32c(blob),
        "chunk_crc32c": chunk_sums,
        "samples": samples,
    }
    write_record(path, k, record)
    return record


# ---------------------------------------------------------------------------- reading

_EMPTY = np.uint64(2**64 - 1)  # offset/length of a chunk the shard does not hold (all fill value)


def _direct_layout(meta: dict[str, Any], frame_shape: tuple[int, ...], shard_samples: int) -> dict | None:
    """Facts for decoding shard files without zarr, or None if ``frames`` is laid out otherwise.

    Accepted: one ``sharding_indexed`` codec with one sample per inner chunk, inner
    codecs ``bytes`` (little endian) + ``blosc``, index ``bytes`` (little) + ``crc32c``
    at the end, default chunk keys with ``/``: what :func:`tmkt_data.store.create_store` writes.
    """
    try:
        (codec,) = meta["codecs"]
        conf = codec["configuration"]
        inner = [c["name"] for c in conf["codecs"]]
        index = [c["name"] for c in conf["index_codecs"]]
        ok = (
            codec["name"] == "sharding_indexed"
            and list(conf["chunk_shape"]) == [1, *frame_shape]
            and list(meta["chunk_grid"]["configuration"]["chunk_shape"]) == [shard_samples, *frame_shape]
            and inner == ["bytes", "blosc"]
            and conf["codecs"][0].get("configuration", {}).get("endian", "little") == "little"
            and index in (["bytes", "crc32c"], ["bytes"])
            and conf["index_codecs"][0].get("configuration", {}).get("endian", "little") == "little"
            and conf.get("index_location", "end") == "end"
            and meta["chunk_key_encoding"]["name"] == "default"
            and meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/") == "/"
        )
        if not ok:
            return None
        dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        fill = meta.get("fill_value", 0)
        return {"dtype": dtype, "fill": 0 if fill is None else fill, "crc": index[-1] == "crc32c"}
    except (KeyError, TypeError, ValueError):
        return None


def _read_ranges(fd: int, starts: np.ndarray, lengths: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The chunks ``[starts, starts + lengths)`` of an open file as one buffer, and each
    chunk's offset in it.

    One read of the whole span when the chunks fill at least half of it (rows read
    together: a shard's samples for one window); otherwise one read per run of
    adjacent chunks (a few rows scattered over the shard), so reading a window never
    costs more than twice its own bytes.
    """
    base, end = int(starts.min()), int((starts + lengths).max())
    if 2 * int(lengths.sum()) >= end - base:
        return os.pread(fd, end - base, base), starts - base
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], starts[order] + lengths[order]
    # a run starts where a chunk does not begin at or before the previous chunks' end
    new_run = np.ones(len(s), dtype=bool)
    new_run[1:] = s[1:] > np.maximum.accumulate(e)[:-1]
    run_of = np.cumsum(new_run) - 1
    run_start = s[new_run]
    run_end = np.maximum.reduceat(e, np.flatnonzero(new_run))
    parts = [os.pread(fd, int(b - a), int(a)) for a, b in zip(run_start, run_end, strict=True)]
    at = np.concatenate([[0], np.cumsum(run_end - run_start)[:-1]])  # run offsets in the buffer
    offsets = np.empty(len(s), dtype=np.int64)
    offsets[order] = at[run_of] + (s - run_start[run_of])
    return b"".join(parts), offsets


class FetchedShard:
    """The samples of one block as read from its shard: compressed (direct) or decoded (zarr).

    ``decode_into(sel, out)`` writes the block's samples ``sel`` (positions in the
    block) into ``out`` (a C-contiguous ``(len(sel), T, 2, H, W)`` array): one Blosc
    decompression per sample straight into ``out``, or one copy for zarr-decoded blocks.
    """

    __slots__ = ("buf", "frames", "lengths", "offsets", "reader", "rows", "sfile")

    def __init__(self, reader: ShardReader, sfile: Path, rows: np.ndarray) -> None:
        self.reader, self.sfile, self.rows = reader, sfile, rows
        self.frames: np.ndarray | None = None
        self.buf: memoryview | None = None
        self.offsets = self.lengths = np.empty(0, dtype=np.int64)

    def decode_into(self, sel: np.ndarray, out: np.ndarray) -> None:
        if self.frames is not None:
            np.take(self.frames, sel, axis=0, out=out)
            return
        from numcodecs import blosc

        flat = out.reshape(len(sel), -1).view(np.uint8)
        nbytes = self.reader.sample_bytes
        for j, i in enumerate(sel.tolist()):
            a = int(self.offsets[i])
            if a < 0:
                out[j] = self.reader.layout["fill"]
                continue
            src = self.buf[a : a + int(self.lengths[i])]
            # bytes 4-8 of the Blosc header: the decompressed size
            if len(src) < 16 or int.from_bytes(src[4:8], "little") != nbytes:
                raise StoreError(f"{self.sfile}: chunk of sample row {int(self.rows[i])} has the wrong size")
            blosc.decompress(src, flat[j])


class ShardReader:
    """Reads the samples of one shard file at a time (see :meth:`fetch`); one per process.

    Every sample chunk read is checked against the crc32c in its shard's completion record
    (records are read once per shard and reader); shards whose record has no checksums
    (written before them) are read unchecked. A missing shard file, a missing or damaged
    record, or a mismatch is a :class:`StoreError` naming the file and ``tmkt-data verify``.

    A store on object storage (``path`` a URL, :mod:`tmkt_data.store.location`) is read through
    zarr on a checking ``FsspecStore``: one request per shard and :meth:`fetch`, the whole shard
    file checked against its recorded crc32c (``shard_crc32c``) before any sample of it is decoded.
    Its file system is opened in the process that reads (again after a fork).
    """

    def __init__(
        self, path: Path | str | RemotePath, frame_shape: tuple[int, ...], dtype: str, shard_samples: int
    ) -> None:
        path = store_location(path)
        self.path = path
        self.frame_shape = tuple(frame_shape)
        self.shard_samples = shard_samples
        meta_file = path / "frames" / "zarr.json"
        raw_meta = meta_file.read_bytes()
        if checks_enabled():
            expected = ((read_manifest(path) or {}).get("arrays") or {}).get("frames/zarr.json")
            if expected is not None and crc32c(raw_meta) != int(expected):
                raise damaged(meta_file, "checksum mismatch", path)
        meta = json.loads(raw_meta)
        self.layout = _direct_layout(meta, self.frame_shape, shard_samples)
        if isinstance(path, RemotePath):
            self.layout = None  # no pread on object storage: zarr's storage layer serves it
        self.dtype = self.layout["dtype"] if self.layout else np.dtype(dtype)
        self.sample_bytes = int(np.prod(self.frame_shape)) * self.dtype.itemsize
        self._zarr: Any = None
        self._zarr_pid = -1  # the process that opened _zarr (file systems do not survive a fork)
        self._files: dict[int, Path] = {}  # shard -> file (pathlib joins cost ~10 us per read)
        self._sums: dict[int, list[int | None] | None] = {}  # shard -> chunk crc32c (None: unchecked)

    def chunk_sums(self, k: int) -> list[int | None] | None:
        """The recorded crc32c of shard ``k``'s sample chunks (None: written before checksums)."""
        if k in self._sums:
            return self._sums[k]
        rec = read_record(self.path, k)
        where = record_path(self.path, k)
        if rec is None:
            raise damaged(where, f"completion record of frames shard {k} missing or damaged", self.path)
        sums = rec.get("chunk_crc32c")
        if sums is not None and len(sums) not in (self.shard_samples, len(rec.get("samples", []))):
            raise damaged(where, f"the record of frames shard {k} lists {len(sums)} chunks", self.path)
        self._sums[k] = sums
        return sums

    def read(self, k: int, rows: np.ndarray) -> np.ndarray:
        """Frames ``(len(rows), T, 2, H, W)`` of shard ``k``'s local sample rows, in the order given."""
        out = np.empty((len(rows), *self.frame_shape), dtype=self.dtype)
        self.fetch(k, rows).decode_into(np.arange(len(rows)), out)
        return out

    def fetch(self, k: int, rows: np.ndarray) -> FetchedShard:
        """Shard ``k``'s local rows ``rows``: one read of their byte range (zarr: decoded frames)."""
        sfile = self._files.get(k)
        if sfile is None:
            sfile = self._files[k] = shard_file(self.path, k)
        got = FetchedShard(self, sfile, rows)
        if self.layout is None:
            got.frames = self._read_zarr(k, rows)
        else:
            self._read_direct(k, rows, got)
        return got

    def _read_zarr(self, k: int, rows: np.ndarray) -> np.ndarray:
        if self._zarr is None or self._zarr_pid != os.getpid():
            self._zarr = open_store(self.path)["frames"]  # checked through the store's records
            self._zarr_pid = os.getpid()
        start = k * self.shard_samples
        lo, hi = int(rows.min()), int(rows.max()) + 1
        block = np.asarray(self._zarr[start + lo : start + hi])
        if len(rows) == hi - lo and np.array_equal(rows, np.arange(lo, hi)):
            return block
        return np.take(block, rows - lo, axis=0)

    def _read_direct(self, k: int, rows: np.ndarray, got: FetchedShard) -> None:
        n_index = self.shard_samples
        sfile = got.sfile
        got.offsets = np.full(len(rows), -1, dtype=np.int64)  # -1: chunk not stored (fill value)
        got.lengths = np.zeros(len(rows), dtype=np.int64)
        sums = self.chunk_sums(k) if checks_enabled() else None
        try:
            fd = os.open(sfile, os.O_RDONLY)
        except FileNotFoundError:
            # tmkt writes every shard file (zarr leaves out an all-fill shard: not in a tmkt store)
            raise damaged(sfile, f"missing (frames shard {k})", self.path) from None
        try:
            size = os.fstat(fd).st_size
            tail = 16 * n_index + (4 if self.layout["crc"] else 0)
            if size < tail:
                raise damaged(sfile, f"{size} bytes, shorter than its {tail}-byte index", self.path)
            raw_index = os.pread(fd, tail, size - tail)
            if self.layout["crc"]:
                crc = np.uint32(crc32c(raw_index[:-4])).tobytes()
                if crc != raw_index[-4:]:
                    raise damaged(sfile, "shard index checksum mismatch", self.path)
            index = np.frombuffer(raw_index, dtype="<u8", count=2 * n_index).reshape(n_index, 2)
            sel = index[rows]
            present = sel[:, 0] != _EMPTY
            if not present.any():
                if sums is not None:
                    raise damaged(sfile, "the shard index lists none of the samples read", self.path)
                return
            starts, lengths = sel[present, 0].astype(np.int64), sel[present, 1].astype(np.int64)
            if int((starts + lengths).max()) > size - tail:
                raise damaged(sfile, "chunk extends past the shard data", self.path)
            raw, offsets = _read_ranges(fd, starts, lengths)
        finally:
            os.close(fd)
        got.offsets[present] = offsets
        got.lengths[present] = lengths
        if sums is not None:
            self._check_chunks(sfile, raw, rows, got, sums)
        got.buf = memoryview(raw)

    def _check_chunks(
        self, sfile: Path, raw: bytes, rows: np.ndarray, got: FetchedShard, sums: list[int | None]
    ) -> None:
        """Every chunk of ``rows`` in ``raw`` has its recorded crc32c."""
        for a, n, row in zip(got.offsets.tolist(), got.lengths.tolist(), rows.tolist(), strict=True):
            want = sums[row] if row < len(sums) else None
            if a < 0:
                if want is not None:
                    raise damaged(sfile, f"chunk of sample row {row} missing from the shard index", self.path)
                continue
            if want is None or crc32c(raw[a : a + n]) != want:
                raise damaged(sfile, f"checksum mismatch in the chunk of sample row {row}", self.path)
