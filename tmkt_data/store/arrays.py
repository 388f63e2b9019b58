"""The per-sample arrays (``labels``, ``split``, ``valid``, ``sample_id``, ...): one chunk each,
written without zarr-python (byte for byte what it writes; ``tests/test_store.py``), and
:func:`finalize_store`, which gathers the shard records into them, records the crc32c of each
array file (``checksums.arrays`` of ``_tmkt``: :mod:`tmkt_data.store.checksums`) and marks the
store complete (its root ``zarr.json`` and that file's crc32c, ``checksums.root``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from tmkt_data.store.checksums import ROOT_META, crc32c
from tmkt_data.store.core import StoreError, replace_file
from tmkt_data.store.frames import geometry_of, write_root_attrs
from tmkt_data.store.location import zarr_target
from tmkt_data.store.records import read_record

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


def write_sample_array(path: Path, name: str, values: np.ndarray) -> dict[str, int]:
    """Write (or replace) the per-sample array ``name`` of the store at ``path``: the chunk,
    then the metadata, each to a temporary name and renamed into place. Returns the crc32c of
    the files written, keyed by path relative to the store."""
    meta, chunk = sample_array_files(values)
    folder = path / name
    (folder / "c").mkdir(parents=True, exist_ok=True)
    sums: dict[str, int] = {}
    if values.shape[0]:
        replace_file(folder / "c" / "0", chunk)
        sums[f"{name}/c/0"] = crc32c(chunk)
    blob = json.dumps(meta, indent=2).encode()
    replace_file(folder / "zarr.json", blob)
    sums[f"{name}/zarr.json"] = crc32c(blob)
    return sums


def finalize_store(path: Path, extra_attrs: dict[str, Any] | None = None) -> zarr.Group:
    """Gather every shard record into the per-sample arrays, record their checksums and mark the
    store complete: the root ``zarr.json`` gets ``extra_attrs``, ``failures`` and ``status =
    "complete"``, its crc32c recorded (``checksums.root``) with the arrays' before it is written."""
    geo = geometry_of(zarr.open_group(zarr_target(path, "r"), mode="r", zarr_format=3))
    rows: list[dict[str, Any]] = []
    unchecked = 0  # shards whose record has no checksums (written before them)
    for k in range(geo.n_shards):
        rec = read_record(path, k)
        if rec is None:
            raise StoreError(f"{path}: shard {k} has no completion record; cannot finalise")
        rows.extend(rec["samples"])
        unchecked += "chunk_crc32c" not in rec
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
    sums = {"frames/zarr.json": crc32c((path / "frames" / "zarr.json").read_bytes())}
    for name, values in arrays.items():  # replaces them when finalising again
        sums.update(write_sample_array(path, name, values))
    failures = [
        {"sample_id": r["sample_id"], "path": r["source_path"], "reason": r["failure"]}
        for r in rows
        if r.get("failure")
    ]
    doc = json.loads((path / ROOT_META).read_bytes())
    attrs = {**doc["attributes"], **(extra_attrs or {}), "failures": failures, "status": "complete"}
    # the root's crc32c is recorded with the arrays', then the root replaced (write_root_attrs)
    manifest = {"arrays": dict(sorted(sums.items())), "frames_unchecked": unchecked}
    write_root_attrs(path, attrs, manifest, doc)
    return zarr.open_group(zarr_target(path, "r+"), mode="r+", zarr_format=3)
