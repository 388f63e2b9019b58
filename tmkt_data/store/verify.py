"""Integrity checks of a store against its recorded checksums: ``tmkt-data verify``
(:func:`verify_store`), the repair check of ``tmkt-data convert`` (:func:`check_shards`) and the
one of the pipeline's pair step (:func:`verify_groups`).

Every problem is one line naming the file and the fix: re-running the same ``tmkt-data convert``
command re-converts exactly the damaged shards, rewrites the per-sample arrays and the root
``zarr.json`` (rebuilt from its parameters when damaged); re-running ``tmkt-data pair`` rewrites
``rgb/`` and ``pairs/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from tmkt_data.store.checksums import (
    CONVERT_FIX,
    PAIR_FIX,
    crc32c,
    file_crc32c,
    group_present,
    read_manifest,
    root_problem,
)
from tmkt_data.store.checksums import unchecked_parts as _unchecked
from tmkt_data.store.core import StoreError, damaged_metadata, replace_file
from tmkt_data.store.frames import (
    StoreGeometry,
    frames_metadata,
    geometry_of,
    open_store,
    shard_chunk_crc32c,
    shard_file,
)
from tmkt_data.store.location import store_location, walk_files, zarr_target
from tmkt_data.store.records import read_record, record_path, write_record


@dataclass
class ShardCheck:
    """Shards whose record (made with the expected parameters) and file are intact (``done``), and
    those whose record or file is damaged or missing, with what is wrong (``damaged``)."""

    done: set[int] = field(default_factory=set)
    damaged: dict[int, str] = field(default_factory=dict)


def _shard_problem(path: Path, k: int, rec: dict[str, Any], blob: bytes | None) -> str | None:
    """What is wrong with shard ``k``'s file (bytes ``blob``, None: missing) given its record."""
    rel = shard_file(path, k).relative_to(path).as_posix()
    if blob is None:
        return f"shard {k}: file {rel} missing"
    crc = rec.get("shard_crc32c")
    if crc is not None and crc32c(blob) != int(crc):
        return f"shard {k}: file {rel} crc32c mismatch"
    if crc is None and hashlib.sha256(blob).hexdigest() != rec.get("shard_sha256"):
        return f"shard {k}: file {rel} sha256 mismatch"
    return None


def check_shards(path: Path, n_shards: int, key: str, *, upgrade: bool = False) -> ShardCheck:
    """Which shards are complete and intact, re-checking each record against its file (crc32c of
    the whole file, or sha256 for a record written before checksums): what ``convert`` redoes.

    ``upgrade`` (``convert`` holds the store lock) adds the checksums to the intact records of
    shards written before them, so the store then reads checked.
    """
    out = ShardCheck()
    shard_samples = _shard_samples(path) if upgrade else 0
    for k in range(n_shards):
        rec = read_record(path, k)
        if rec is None:
            if record_path(path, k).is_file() and record_path(path, k).stat().st_size > 0:
                rel = record_path(path, k).relative_to(path).as_posix()
                out.damaged[k] = f"shard {k}: completion record {rel} damaged"
            continue
        if rec.get("params_hash") != key:
            continue
        try:
            blob = shard_file(path, k).read_bytes()
        except FileNotFoundError:
            blob = None
        problem = _shard_problem(path, k, rec, blob)
        if problem is not None:
            out.damaged[k] = problem
            continue
        if upgrade and "chunk_crc32c" not in rec and blob is not None:
            try:
                chunks = shard_chunk_crc32c(blob, shard_samples)
            except ValueError as err:
                rel = shard_file(path, k).relative_to(path).as_posix()
                out.damaged[k] = f"shard {k}: file {rel} {err}"
                continue
            write_record(path, k, {**rec, "shard_crc32c": crc32c(blob), "chunk_crc32c": chunks})
        out.done.add(k)
    return out


def made_as(path: Path, geometry: StoreGeometry, key: str) -> bool:
    """For a store whose root ``zarr.json`` is damaged (its attributes cannot be trusted): True when
    what else it holds says it was made as ``convert`` would make it now, so its attributes can be
    rebuilt (:func:`~tmkt_data.store.frames.rebuild_root`) and its intact shards kept: the metadata
    of ``frames`` is intact (its recorded crc32c) and of ``geometry`` (samples, frame shape, dtype,
    shard size), and every intact shard record was written with parameters ``key``."""
    try:
        blob = (path / "frames" / "zarr.json").read_bytes()
        want = ((read_manifest(path) or {}).get("arrays") or {}).get("frames/zarr.json")
        if want is not None and crc32c(blob) != int(want):
            return False
        meta = json.loads(blob)
        shape = [geometry.n_samples, *geometry.frame_shape]
        shard = [geometry.shard_samples, *geometry.frame_shape]
        if (
            meta["shape"] != shape
            or meta["chunk_grid"]["configuration"]["chunk_shape"] != shard
            or meta["data_type"] != geometry.dtype
        ):
            return False
    except (FileNotFoundError, ValueError, KeyError, TypeError, StoreError):
        return False
    for k in range(geometry.n_shards):
        rec = read_record(path, k)
        if rec is not None and rec.get("params_hash") != key:
            return False
    return True


def repair_frames_metadata(path: Path, geometry: StoreGeometry) -> list[str]:
    """``convert``'s repair of ``frames/zarr.json`` (it holds the store lock): when the file no longer
    matches its recorded crc32c (or is missing), it is written again as :func:`create_store` writes
    it for ``geometry`` (:func:`~tmkt_data.store.finalize_store` then records its crc32c). Returns
    one line saying so, or nothing: intact, or written before checksums (left as it is)."""
    want = ((read_manifest(path) or {}).get("arrays") or {}).get("frames/zarr.json")
    if want is None:
        return []
    meta = path / "frames" / "zarr.json"
    try:
        if crc32c(meta.read_bytes()) == int(want):
            return []
        what = "crc32c mismatch"
    except FileNotFoundError:
        what = "missing"
    replace_file(meta, frames_metadata(geometry))
    return [f"file frames/zarr.json {what}, written again"]


def _shard_samples(path: Path) -> int:
    return int(json.loads((path / "zarr.json").read_bytes())["attributes"]["shard_samples"])


def _files_problems(path: Path, sums: dict[str, int], prefixes: list[str], what: str) -> list[str]:
    """Recorded files missing or with another crc32c, and unrecorded files in recorded folders."""
    problems = []
    for rel, want in sums.items():
        try:
            got = file_crc32c(path / rel)
        except FileNotFoundError:
            problems.append(f"{what}: file {rel} missing")
            continue
        if got != int(want):
            problems.append(f"{what}: file {rel} crc32c mismatch")
    for prefix in prefixes:
        for full in walk_files(path / prefix):
            rel = full.relative_to(path).as_posix()
            if rel not in sums:
                problems.append(f"{what}: file {rel} is not one the store recorded")
    return problems


def _recorded_arrays_problems(path: Path, manifest: dict[str, Any] | None) -> list[str]:
    """The files of ``checksums.arrays`` (per-sample arrays, ``frames/zarr.json``) against their crc32c."""
    arrays = (manifest or {}).get("arrays")
    if not isinstance(arrays, dict):
        return []
    sums = {k: int(v) for k, v in arrays.items()}
    folders = sorted({k.split("/", 1)[0] + "/" for k in sums if not k.startswith("frames/")})
    return _files_problems(path, sums, folders, "per-sample arrays")


def verify_groups(path: str | os.PathLike[str]) -> list[str]:
    """Problems of the store's ``rgb/`` and ``pairs/`` against their recorded checksums (each line
    naming the fix); empty when both are intact, absent, or written before checksums."""
    p = store_location(path)
    present = [name for name in ("rgb", "pairs") if group_present(p, name)]
    if not present:
        return []
    manifest = read_manifest(p) or {}
    groups = manifest.get("groups")
    if not isinstance(groups, dict) or not isinstance(groups.get("files"), dict):
        return []  # written before checksums: unchecked
    files = {k: int(v) for k, v in groups["files"].items()}
    problems = []
    for name in ("rgb", "pairs"):
        if name not in present:
            problems.append(f"{name}/ missing while {'/ and '.join(present)}/ is present")
    mine = {k: v for k, v in files.items() if k.split("/", 1)[0] in present}
    problems += _files_problems(p, mine, [f"{n}/" for n in present], "rgb/ and pairs/")
    return [f"{line}; {PAIR_FIX}" for line in problems]


def unchecked_parts(path: str | os.PathLike[str]) -> list[str]:
    """What of the store was written without checksums (read unchecked; ``verify`` compares
    the shards' sha256 and decodes them); empty when everything has checksums."""
    p = store_location(path)
    return _unchecked(p, read_manifest(p))


def verify_store(path: str | os.PathLike[str]) -> list[str]:
    """Re-check every file of a store against its records; returns the problems found (empty when
    sound), each one line naming the file and the fix.

    Checks: the root ``zarr.json`` (the attributes) has its recorded crc32c (when it does not, only
    the checks that need no attribute follow: the recorded files of the per-sample arrays and of
    ``rgb/``/``pairs/``); the store is complete; each shard has its record (intact, written with
    the store's parameters); each shard file's crc32c and sha256 equal the record's, and so do each sample
    chunk's crc32c; each shard decodes; every recorded file of the per-sample arrays and of
    ``rgb/``/``pairs/`` has its crc32c and no unrecorded file sits among them; the per-sample
    arrays have one entry per sample. A store written before checksums gets the checks its
    records allow (sha256 of the shards, decoding, shapes).
    """
    p = store_location(path)
    try:
        manifest = read_manifest(p)
        root = root_problem(p, manifest)
    except StoreError:  # an unreadable _tmkt/zarr.json: open_store names it
        manifest, root = None, None
    # damaged attributes (geometry, parameters) cannot be trusted: only the checks that need none
    # follow; a root that is not JSON at all is open_store's to name, as before
    if root is not None and damaged_metadata(p) is None:
        problems = [f"store attributes: {root}", *_recorded_arrays_problems(p, manifest)]
        return [f"{line}; {CONVERT_FIX}" for line in problems] + verify_groups(p)
    g = open_store(p)
    geo = geometry_of(g)
    key = g.attrs["params_hash"]
    raw = zarr.open_group(
        zarr_target(p, "r"), mode="r", zarr_format=3
    )  # unchecked: verify reports, never raises
    problems = []
    for k in range(geo.n_shards):
        rec = read_record(p, k)
        rel_rec = record_path(p, k).relative_to(p).as_posix()
        if rec is None:
            problems.append(f"shard {k}: completion record {rel_rec} missing, unreadable or damaged")
            continue
        if rec.get("params_hash") != key:
            problems.append(f"shard {k}: completion record {rel_rec} written with other parameters")
        sfile = shard_file(p, k)
        rel = sfile.relative_to(p).as_posix()
        try:
            blob = sfile.read_bytes()
        except FileNotFoundError:
            blob = None
        problem = _shard_problem(p, k, rec, blob)
        checked = rec.get("shard_crc32c") is not None  # else _shard_problem compared the sha256
        if problem is None and checked and hashlib.sha256(blob).hexdigest() != rec.get("shard_sha256"):
            problem = f"shard {k}: file {rel} sha256 mismatch"
        if problem is None and rec.get("chunk_crc32c") is not None:
            try:
                chunks = shard_chunk_crc32c(blob, geo.shard_samples)
            except ValueError as err:
                chunks, problem = None, f"shard {k}: file {rel} {err}"
            if chunks is not None:
                want = list(rec["chunk_crc32c"])
                bad = [i for i, w in enumerate(want) if i >= len(chunks) or chunks[i] != w]
                if bad:
                    problem = f"shard {k}: file {rel} crc32c mismatch in sample row(s) {bad[:8]}"
        if problem is None:
            a, b = geo.shard_range(k)
            try:
                np.asarray(raw["frames"][a:b])
            except Exception as err:  # noqa: BLE001 - any decode failure is corruption
                problem = f"shard {k}: file {rel} cannot be decoded ({type(err).__name__}: {err})"
        if problem is not None:
            problems.append(problem)
    problems += _recorded_arrays_problems(p, read_manifest(p))
    for name in ("labels", "split", "valid", "sample_id", "source_sha256", "n_events"):
        try:
            shape = raw[name].shape if name in raw else None
        except Exception as err:  # noqa: BLE001 - unreadable metadata is corruption
            problems.append(f"array {name!r}: file {name}/zarr.json unreadable ({type(err).__name__})")
            continue
        if shape is None:
            problems.append(f"array {name!r} missing")
        elif shape != (geo.n_samples,):
            problems.append(f"array {name!r} has shape {shape}, expected ({geo.n_samples},)")
    problems = [f"{line}; {CONVERT_FIX}" for line in problems]
    return problems + verify_groups(p)
