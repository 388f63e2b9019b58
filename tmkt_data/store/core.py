"""What every part of the store package shares: the format name and version, the error, the
cache-key hash, and the few file operations (recognise, replace atomically, delete)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tmkt_data.errors import TmktError

STORE_FORMAT = "tmkt-frame-store"
STORE_FORMAT_VERSION = 1


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
    """True when ``path`` holds a tmkt store (complete or not): its root ``zarr.json`` names the
    format, or it is damaged and the store's bookkeeping records its crc32c."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    if isinstance(attrs, dict) and attrs.get("format") == STORE_FORMAT:
        return True
    return _root_checksum_recorded(path)


def _root_checksum_recorded(path: Path) -> bool:
    """True when the bookkeeping group ``_tmkt`` records a crc32c of the root ``zarr.json``: a tmkt
    store whose attributes were damaged where they name the format (reads then report the damage,
    ``convert`` repairs it, ``--overwrite`` may delete it)."""
    try:
        doc = json.loads((path / "_tmkt" / "zarr.json").read_bytes())
    except (OSError, ValueError):
        return False
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    sums = attrs.get("checksums") if isinstance(attrs, dict) else None
    return isinstance(sums, dict) and sums.get("root") is not None


def damaged_metadata(path: Path, *, members: bool = False) -> str | None:
    """What is wrong with the Zarr metadata of the store at ``path``: its ``zarr.json`` (with
    ``members``, also those of its arrays and groups, two levels down) that cannot be read as a
    JSON object; None when every one present can."""
    if not isinstance(path, Path):
        return _damaged_remote_metadata(path, members)
    files = [path / "zarr.json"]
    if members:
        files += sorted([*path.glob("*/zarr.json"), *path.glob("*/*/zarr.json")])
    for f in files:
        if not f.is_file():
            continue
        try:
            doc = json.loads(f.read_bytes())
        except (OSError, ValueError) as err:
            why = err.strerror if isinstance(err, OSError) else "not valid JSON"
            return f"{f.relative_to(path).as_posix()}: {why}"
        if not isinstance(doc, dict):
            return f"{f.relative_to(path).as_posix()}: not a JSON object"
    return None


def _damaged_remote_metadata(path: Any, members: bool) -> str | None:
    """:func:`damaged_metadata` on object storage: one listing, the documents fetched together."""
    from tmkt_data.store.location import read_many, walk_files

    files = [path / "zarr.json"]
    if members:
        rel = [f.relative_to(path).as_posix() for f in walk_files(path)]
        files += [path / r for r in sorted(rel) if r.endswith("/zarr.json") and r.count("/") in (1, 2)]
    blobs = read_many(files)
    for f in files:
        if f not in blobs:
            continue
        try:
            doc = json.loads(blobs[f])
        except ValueError:
            return f"{f.relative_to(path).as_posix()}: not valid JSON"
        if not isinstance(doc, dict):
            return f"{f.relative_to(path).as_posix()}: not a JSON object"
    return None


def replace_file(target: Path, data: bytes, tmp: Path | None = None) -> None:
    """Write ``data`` to ``tmp`` (default ``.<name>.tmp`` beside ``target``), then rename it onto
    ``target``: readers see the old file or the new one, never a half-written one. On object
    storage (a :class:`~tmkt_data.store.location.RemotePath`) one PUT gives the same."""
    if not isinstance(target, Path):
        target.write_bytes(data)
        return
    tmp = target.with_name(f".{target.name}.tmp") if tmp is None else tmp
    tmp.write_bytes(data)
    os.replace(tmp, target)


def remove_store(path: Path) -> None:
    """Delete a tmkt store; refuses anything that is not one (never deletes user data)."""
    if not is_store(path):
        raise StoreError(f"{path}: not a tmkt store; refusing to delete it")
    if not isinstance(path, Path):
        from tmkt_data.store.location import remove_tree

        remove_tree(path)
        return
    shutil.rmtree(path)
