"""Integrity check of a finished store (``tmkt-data verify``): records, shard hashes, decoding, arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tmkt_data.store.core import file_sha256
from tmkt_data.store.frames import geometry_of, open_store, shard_file
from tmkt_data.store.records import read_record


def verify_store(path: str | os.PathLike[str]) -> list[str]:
    """Re-check every shard of a store; returns the problems found (empty when sound).

    Checks: the store is complete; each shard has its record, written with the
    store's parameters; each shard file's sha256 equals the record's; each shard
    decodes; the per-sample arrays have one entry per sample.
    """
    p = Path(path)
    g = open_store(p)
    geo = geometry_of(g)
    key = g.attrs["params_hash"]
    problems = []
    frames = g["frames"]
    for k in range(geo.n_shards):
        rec = read_record(p, k)
        if rec is None:
            problems.append(f"shard {k}: completion record missing or unreadable")
            continue
        if rec.get("params_hash") != key:
            problems.append(f"shard {k}: written with other parameters")
        sfile = shard_file(p, k)
        expected = rec.get("shard_sha256")
        actual = file_sha256(sfile) if sfile.exists() else None
        if actual != expected:
            what = (
                "missing" if actual is None else f"sha256 {actual[:16]}..., expected {str(expected)[:16]}..."
            )
            problems.append(f"shard {k}: file {sfile.relative_to(p)} {what}")
            continue
        a, b = geo.shard_range(k)
        try:
            np.asarray(frames[a:b])
        except Exception as err:  # noqa: BLE001 - any decode failure is corruption
            problems.append(f"shard {k}: cannot decode ({type(err).__name__}: {err})")
    for name in ("labels", "split", "valid", "sample_id", "source_sha256", "n_events"):
        if name not in g:
            problems.append(f"array {name!r} missing")
        elif g[name].shape != (geo.n_samples,):
            problems.append(f"array {name!r} has shape {g[name].shape}, expected ({geo.n_samples},)")
    return problems
