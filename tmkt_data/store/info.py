"""A finished store in plain JSON: shape, classes, splits, sizes, failures (``tmkt-data inspect``)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.store.frames import geometry_of, open_store
from tmkt_data.store.location import RemotePath, store_location, tree_bytes


def dir_bytes(path: Path | RemotePath) -> int:
    """Total size in bytes of the files under ``path`` (a folder, or a prefix on object storage)."""
    return tree_bytes(path)


def store_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Plain-JSON description of a complete store: shape, classes, splits, sizes, failures, and the
    event filters applied before binning (``filters``, in order; empty for none) with the sensor
    size before (``sensor_size``) and after them (``filtered_sensor_size``, None without filters)."""
    p = store_location(path)
    g = open_store(p)
    geo = geometry_of(g)
    labels = np.asarray(g["labels"][:])
    split = np.asarray(g["split"][:], dtype=object)
    valid = np.asarray(g["valid"][:])
    classes = list(g.attrs["classes"])
    per_class: dict[str, dict[str, int]] = {}
    for (lab, sp), n in Counter(zip(labels[valid].tolist(), split[valid].tolist(), strict=True)).items():
        per_class.setdefault(classes[lab], {})[sp] = n
    raw = geo.n_samples * int(np.prod(geo.frame_shape)) * np.dtype(geo.dtype).itemsize
    on_disk = dir_bytes(p / "frames")
    params = g.attrs["params"]
    return {
        "store": str(p),
        "dataset": g.attrs["dataset"],
        "format_version": g.attrs["format_version"],
        "tmkt_version": g.attrs.get("tmkt_version"),
        "synthetic": bool(g.attrs.get("synthetic", False)),
        "samples": geo.n_samples,
        "valid_samples": int(valid.sum()),
        "frame_shape": list(geo.frame_shape),
        "dtype": geo.dtype,
        "classes": len(classes),
        "splits": dict(Counter(split[valid].tolist())),
        "per_class": {c: per_class.get(c, {}) for c in classes},
        "events": int(np.asarray(g["n_events"][:]).sum()),
        "shards": geo.n_shards,
        "shard_samples": geo.shard_samples,
        "frames_bytes_raw": raw,
        "frames_bytes_on_disk": on_disk,
        "store_bytes_on_disk": dir_bytes(p),
        "compression_ratio": (raw / on_disk) if on_disk else None,
        "failures": list(g.attrs.get("failures", [])),
        "conversion": params["conversion"],
        "filters": list(params["conversion"].get("filters", [])),
        "sensor_size": params.get("sensor_size"),
        "filtered_sensor_size": params.get("filtered_sensor_size"),
        "params_hash": g.attrs["params_hash"],
    }
