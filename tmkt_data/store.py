"""The tmkt frame store: a versioned Zarr v3 group (layout in ``docs/store-format.md``).

Writing happens shard by shard: a conversion task fills whole shards of
``frames`` (one shard = one file holding ``shard_samples`` samples) and then
writes a small completion record ``_tmkt/shards/<k>.json`` holding the
per-sample metadata and the sha256 of the shard file. A shard without its record
is not complete and is redone on resume. When every shard is complete, the
records are gathered into the per-sample arrays and the group's ``status``
attribute becomes ``"complete"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from tmkt_data.errors import TmktError

STORE_FORMAT = "tmkt-frame-store"
STORE_FORMAT_VERSION = 1
_RECORDS = "_tmkt/shards"
#: Per-sample metadata arrays gathered from the shard records: name -> numpy dtype.
SAMPLE_FIELDS: dict[str, Any] = {
    "labels": np.int32,
    "valid": np.bool_,
    "n_events": np.int64,
    "n_binned": np.int64,
    "n_saturated": np.int64,
    "duration_us": np.int64,
    "source_bytes": np.int64,
    "sample_id": str,
    "split": str,
    "source_path": str,
    "source_sha256": str,
}


def sample_row(sample_id: str, label: int, split: str, **fields: Any) -> dict[str, Any]:
    """One sample's metadata for a shard record: every :data:`SAMPLE_FIELDS` key, with
    empty defaults (invalid, no events, no source) unless given in ``fields``."""
    empty = {str: "", np.bool_: False}
    row: dict[str, Any] = {name: empty.get(kind, 0) for name, kind in SAMPLE_FIELDS.items()}
    row.update(sample_id=sample_id, labels=int(label), split=split, valid=False)
    row.update(fields)
    return row


class StoreError(TmktError, ValueError):
    """A store is missing, corrupt, or was made with other parameters."""


def params_hash(params: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of ``params``: the store's cache key."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_store(path: Path) -> bool:
    """True when ``path`` holds a tmkt store (complete or not)."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return attrs.get("format") == STORE_FORMAT


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
    n = geometry.n_samples
    full = dict(attrs)
    full.update(
        format=STORE_FORMAT,
        format_version=STORE_FORMAT_VERSION,
        status="in_progress",
        n_samples=n,
        frame_shape=list(geometry.frame_shape),
        dtype=geometry.dtype,
        shard_samples=geometry.shard_samples,
        n_shards=geometry.n_shards,
    )
    group = zarr.open_group(str(path), mode="w-", zarr_format=3, attributes=full)
    group.create_array(
        "frames",
        shape=(n, *geometry.frame_shape),
        chunks=(1, *geometry.frame_shape),
        shards=(geometry.shard_samples, *geometry.frame_shape),
        dtype=geometry.dtype,
        compressors=frames_compressor(geometry.dtype),
        fill_value=0,
        dimension_names=("sample", "time", "polarity", "y", "x"),
    )
    group.create_group("_tmkt", attributes={"about": "tmkt bookkeeping: per-shard completion records"})
    (path / _RECORDS).mkdir(parents=True, exist_ok=True)
    return group


def open_store(path: str | os.PathLike[str], *, mode: str = "r", require_complete: bool = True) -> zarr.Group:
    """Open a tmkt store, checking its format, version and (by default) completeness."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no such store")
    if not is_store(p):
        raise StoreError(f"{p}: not a tmkt store (expected a Zarr v3 group with format={STORE_FORMAT!r})")
    group = zarr.open_group(str(p), mode=mode, zarr_format=3)
    version = group.attrs.get("format_version")
    if version != STORE_FORMAT_VERSION:
        raise StoreError(
            f"{p}: store format version {version}, this tmkt reads version {STORE_FORMAT_VERSION}"
        )
    if require_complete and group.attrs.get("status") != "complete":
        raise StoreError(
            f"{p}: conversion did not finish (status {group.attrs.get('status')!r}); run it again"
        )
    return group


def geometry_of(group: zarr.Group) -> StoreGeometry:
    a = group.attrs
    return StoreGeometry(
        int(a["n_samples"]), tuple(a["frame_shape"]), str(a["dtype"]), int(a["shard_samples"])
    )


def shard_file(path: Path, k: int) -> Path:
    """The file holding shard ``k`` of ``frames`` (default Zarr v3 chunk key encoding)."""
    return path / "frames" / "c" / str(k) / "0" / "0" / "0" / "0"


def record_path(path: Path, k: int) -> Path:
    return path / _RECORDS / f"{k:06d}.json"


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
    import google_crc32c
    from numcodecs import blosc

    cname, clevel, shuffle = _blosc_settings(dtype)
    le = np.dtype(dtype).newbyteorder("<")
    index = np.full((shard_samples, 2), np.iinfo(np.uint64).max, dtype="<u8")
    parts, offset = [], 0
    for i in range(frames.shape[0]):
        enc = blosc.compress(np.ascontiguousarray(frames[i], dtype=le), cname, clevel, shuffle, 0)
        index[i] = (offset, len(enc))
        parts.append(enc)
        offset += len(enc)
    raw_index = index.tobytes()
    parts.append(raw_index)
    parts.append(google_crc32c.value(raw_index).to_bytes(4, "little"))
    return b"".join(parts)


_ZSTD0 = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}


def sample_array_files(values: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """(``zarr.json`` metadata, bytes of chunk ``c/0``) of a 1-D per-sample array held in one
    chunk, exactly as zarr-python 3.1 writes ``create_array(name, data=values,
    chunks=(n,), dimension_names=("sample",))``: ``bytes`` (little-endian) or ``vlen-utf8``
    (uint32 count, then uint32 length + UTF-8 bytes per item), then zstd level 0. Writing
    these files directly takes microseconds where zarr-python takes about 2 ms per array."""
    from numcodecs import Zstd

    n = int(values.shape[0])
    if values.dtype.kind in "OTU":
        items = [str(v).encode("utf-8") for v in values]
        parts = [np.uint32(n).tobytes()]
        for b in items:
            parts += [np.uint32(len(b)).tobytes(), b]
        raw, data_type, fill = b"".join(parts), "string", ""
        codecs: list[dict[str, Any]] = [{"name": "vlen-utf8", "configuration": {}}]
    elif values.dtype == np.bool_:
        raw, data_type, fill = values.astype(np.bool_).tobytes(), "bool", False
        codecs = [{"name": "bytes"}]
    else:
        le = values.dtype.newbyteorder("<")
        raw, data_type, fill = values.astype(le).tobytes(), values.dtype.name, 0
        codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
    meta = {
        "shape": [n],
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [max(1, n)]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": [*codecs, _ZSTD0],
        "attributes": {},
        "dimension_names": ["sample"],
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    return meta, bytes(Zstd(level=0).encode(raw))


def write_sample_array(path: Path, name: str, values: np.ndarray) -> None:
    """Write (or replace) the per-sample array ``name`` of the store at ``path``: the chunk,
    then the metadata, each to a temporary name and renamed into place."""
    meta, chunk = sample_array_files(values)
    folder = path / name
    (folder / "c").mkdir(parents=True, exist_ok=True)
    if values.shape[0]:
        tmp = folder / "c" / ".0.tmp"
        tmp.write_bytes(chunk)
        os.replace(tmp, folder / "c" / "0")
    tmp = folder / ".zarr.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, folder / "zarr.json")


def write_shard(path: Path, k: int, frames: np.ndarray, samples: list[dict[str, Any]], key: str) -> dict:
    """Write shard ``k`` (all its samples at once), then its completion record.

    The shard file is encoded here (:func:`encode_shard`; Zarr reads it as any
    other shard) and written to a temporary name, then renamed into place, so
    a shard file is never seen half-written. ``samples`` holds one metadata
    dict per sample (keys of :data:`SAMPLE_FIELDS` plus ``failure`` when the
    sample could not be converted). The record is written (also atomically)
    after the shard file: a crash never leaves a record for a missing shard.
    """
    geo = geometry_of(zarr.open_group(str(path), mode="r", zarr_format=3))
    blob = encode_shard(np.asarray(frames), geo.shard_samples, geo.dtype)
    sfile = shard_file(path, k)
    sfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = sfile.with_name(f".{sfile.name}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, sfile)
    record = {
        "shard": k,
        "start": k * geo.shard_samples,
        "params_hash": key,
        "shard_sha256": hashlib.sha256(blob).hexdigest(),
        "samples": samples,
    }
    target = record_path(path, k)
    tmp_record = target.with_suffix(".json.tmp")
    tmp_record.write_text(json.dumps(record))
    os.replace(tmp_record, target)
    return record


def read_record(path: Path, k: int) -> dict | None:
    """Shard ``k``'s completion record, or None if the shard is not complete."""
    rp = record_path(path, k)
    try:
        return json.loads(rp.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # a torn record counts as not done


def completed_shards(path: Path, n_shards: int, key: str) -> set[int]:
    """Shards whose record exists and was written with parameters ``key``."""
    done = set()
    for k in range(n_shards):
        rec = read_record(path, k)
        if rec is not None and rec.get("params_hash") == key:
            done.add(k)
    return done


def finalize_store(path: Path, extra_attrs: dict[str, Any] | None = None) -> zarr.Group:
    """Gather every shard record into the per-sample arrays and mark the store complete."""
    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    geo = geometry_of(group)
    rows: list[dict[str, Any]] = []
    for k in range(geo.n_shards):
        rec = read_record(path, k)
        if rec is None:
            raise StoreError(f"{path}: shard {k} has no completion record; cannot finalise")
        rows.extend(rec["samples"])
    if len(rows) != geo.n_samples:
        raise StoreError(f"{path}: records hold {len(rows)} samples, expected {geo.n_samples}")
    arrays: dict[str, np.ndarray] = {}
    for name, dtype in SAMPLE_FIELDS.items():
        arrays[name] = np.array([r[name] for r in rows], dtype=dtype if dtype is not str else object)
    alt_names = sorted({name for r in rows for name in r.get("alt_splits", {})})
    for name in alt_names:
        arrays[f"split_{name}"] = np.array(
            [r.get("alt_splits", {}).get(name, "") for r in rows], dtype=object
        )
    for name, values in arrays.items():  # replaces them when finalising again
        write_sample_array(path, name, values)
    failures = [
        {"sample_id": r["sample_id"], "path": r["source_path"], "reason": r["failure"]}
        for r in rows
        if r.get("failure")
    ]
    attrs = dict(extra_attrs or {})
    attrs.update(failures=failures, status="complete")
    group.attrs.update(attrs)
    return group


def remove_store(path: Path) -> None:
    """Delete a tmkt store; refuses anything that is not one (never deletes user data)."""
    if not is_store(path):
        raise StoreError(f"{path}: not a tmkt store; refusing to delete it")
    shutil.rmtree(path)
