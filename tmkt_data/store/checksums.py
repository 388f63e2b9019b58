"""Checksums of every file a store serves, recorded when written and checked when read.

Where they live (``docs/store-format.md``, "Checksums"):

- ``frames``: each shard's completion record (:mod:`tmkt_data.store.records`) holds the crc32c
  of the whole shard file (``shard_crc32c``) and of each sample's compressed chunk in it
  (``chunk_crc32c``), next to the file's sha256; the record carries its own crc32c
  (``record_crc32c``);
- the per-sample arrays (``labels``, ``valid``, ``split``, ...) and ``frames/zarr.json``: the
  attribute ``checksums.arrays`` of the bookkeeping group ``_tmkt`` (written by
  :func:`tmkt_data.store.finalize_store`), ``{file relative to the store: crc32c}``;
- ``rgb/`` and ``pairs/``: ``checksums.groups`` of ``_tmkt`` (written by
  :class:`tmkt_data.store.GroupsWriter` before it renames the groups into place),
  ``{"pairing_id": ..., "files": {file: crc32c}}``;
- the root ``zarr.json`` (the store's attributes): ``checksums.root`` of ``_tmkt`` (written by
  :func:`tmkt_data.store.frames.write_root_attrs` just before the file, when the store is
  finalised or its damaged attributes rebuilt); stores written before it have none and read
  their attributes unchecked, without a warning.

Reading: :func:`tmkt_data.store.open_store` opens the store on a :class:`CheckedStore`, so every
file zarr reads (the root ``zarr.json``, metadata and chunks) is checked against its recorded crc32c; a recorded file
that is missing, a mismatch, or an unrecorded file inside a checked array is a
:class:`~tmkt_data.store.core.StoreError` naming the file and ``tmkt-data verify``.
:class:`tmkt_data.store.ShardReader` checks each sample's chunk before decoding it. A store
written before checksums existed reads unchecked (a warning says so, once per store and process).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import google_crc32c
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import FsspecStore, LocalStore

from tmkt_data.store.core import StoreError, replace_file
from tmkt_data.store.location import RemotePath, async_filesystem, read_many, remote_error, walk_files
from tmkt_data.store.records import read_record, record_path

#: the attribute of ``_tmkt`` holding the checksums, and the algorithm
MANIFEST_ATTR = "checksums"
ALGORITHM = "crc32c"
BOOKKEEPING_META = "_tmkt/zarr.json"
ROOT_META = "zarr.json"  # the store's attributes; its crc32c is ``checksums.root``
CONVERT_FIX = "re-run the same `tmkt-data convert` command to rewrite it"
PAIR_FIX = "re-run `tmkt-data pair` (same arguments) to rewrite rgb/ and pairs/"

_FRAMES_KEY = re.compile(r"frames/c/(\d+)/0/0/0/0")
_checks = True  # switched off only by benchmarks (set_checks) to measure what checking costs
_warned: set[str] = set()


def crc32c(data: bytes) -> int:
    """crc32c of ``data`` (bytes)."""
    return int(google_crc32c.value(bytes(data)))


def file_crc32c(path: str | os.PathLike[str] | RemotePath, chunk: int = 8 << 20) -> int:
    """crc32c of a file's bytes (raises FileNotFoundError when it is missing)."""
    if isinstance(path, RemotePath):
        return crc32c(path.read_bytes())
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            crc = google_crc32c.extend(crc, block)
    return int(crc)


def set_checks(enabled: bool) -> None:
    """Switch read-time checking on or off in this process (and processes forked from it).
    For ``benchmarks/bench_read.py``, which measures what checking costs; never switch it off
    to read a damaged store."""
    global _checks
    _checks = bool(enabled)


def checks_enabled() -> bool:
    return _checks


def damaged(path: Path | str, what: str, store: Path | str) -> StoreError:
    """The read-time error: one line naming the file and the command that tells what to do."""
    return StoreError(f"{path}: {what}; the store is damaged, run `tmkt-data verify {store}`")


# ---------------------------------------------------------------------------- the manifest


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The ``checksums`` attribute of the store's ``_tmkt`` group, or None (written before checksums)."""
    try:
        meta = json.loads((path / BOOKKEEPING_META).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        raise StoreError(
            f"{path / BOOKKEEPING_META}: unreadable (damaged); {CONVERT_FIX} (`tmkt-data verify {path}`)"
        ) from None
    sums = meta.get("attributes", {}).get(MANIFEST_ATTR) if isinstance(meta, dict) else None
    return sums if isinstance(sums, dict) else None


def update_manifest(path: Path, parts: dict[str, Any]) -> None:
    """Set ``checksums[part]`` for each of ``parts`` in the attributes of ``_tmkt`` (its
    ``zarr.json`` replaced atomically; the group is created when a store has none). The caller
    holds the store lock."""
    meta_path = path / BOOKKEEPING_META
    try:
        meta = json.loads(meta_path.read_bytes())
    except (FileNotFoundError, ValueError):
        meta = {"zarr_format": 3, "node_type": "group", "attributes": {}}
    attrs = meta.setdefault("attributes", {})
    sums = attrs.get(MANIFEST_ATTR)
    sums = dict(sums) if isinstance(sums, dict) else {}
    sums["algorithm"] = ALGORITHM
    sums.update(parts)
    attrs[MANIFEST_ATTR] = sums
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(meta_path, json.dumps(meta, indent=2).encode())


def tree_crc32c(root: Path, folder: str, rename: str | None = None) -> dict[str, int]:
    """crc32c of every file below ``root / folder``, keyed by path relative to ``root`` (with the
    first component ``folder`` written as ``rename`` when given)."""
    out: dict[str, int] = {}
    base = root / folder
    if isinstance(base, RemotePath):
        blobs = read_many(list(walk_files(base)))
        for full, data in blobs.items():
            out[f"{rename or folder}/{full.relative_to(base).as_posix()}"] = crc32c(data)
        return dict(sorted(out.items()))
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            full = Path(dirpath) / name
            rel = full.relative_to(base).as_posix()
            out[f"{rename or folder}/{rel}"] = file_crc32c(full)
    return dict(sorted(out.items()))


def group_present(path: Path, name: str) -> bool:
    return (path / name / "zarr.json").is_file()


def expected_files(path: Path, manifest: dict[str, Any] | None) -> tuple[dict[str, int], tuple[str, ...]]:
    """({file: crc32c} that must be served as recorded, folder prefixes whose every file must be
    recorded): the per-sample arrays, and ``rgb/``/``pairs/`` when the store holds them."""
    if not manifest:
        return {}, ()
    sums: dict[str, int] = {}
    prefixes: list[str] = []
    try:
        if manifest.get("root") is not None:  # stores written before it: attributes unchecked
            sums[ROOT_META] = int(manifest["root"])
        arrays = manifest.get("arrays")
        if isinstance(arrays, dict):
            sums.update({str(k): int(v) for k, v in arrays.items()})
            prefixes += sorted({k.split("/", 1)[0] + "/" for k in arrays if not k.startswith("frames/")})
        groups = manifest.get("groups")
        if isinstance(groups, dict) and isinstance(groups.get("files"), dict):
            for name in ("rgb", "pairs"):  # a group deleted as a whole is absent, not damaged
                if group_present(path, name):
                    prefixes.append(f"{name}/")
                    sums.update({k: int(v) for k, v in groups["files"].items() if k.startswith(f"{name}/")})
    except (TypeError, ValueError):
        raise damaged(path / BOOKKEEPING_META, "the checksums it records are unreadable", path) from None
    return sums, tuple(prefixes)


def root_problem(path: Path, manifest: dict[str, Any] | None) -> str | None:
    """What is wrong with the store's root ``zarr.json`` against its recorded crc32c (``checksums.root``):
    ``"file zarr.json missing"`` or ``"file zarr.json crc32c mismatch"``; None when it matches or
    no crc32c was recorded (a store written before it)."""
    want = (manifest or {}).get("root")
    if want is None:
        return None
    try:
        got = crc32c((path / ROOT_META).read_bytes())
    except FileNotFoundError:
        return f"file {ROOT_META} missing"
    try:
        if got == int(want):
            return None
    except (TypeError, ValueError):
        raise damaged(path / BOOKKEEPING_META, "the checksums it records are unreadable", path) from None
    return f"file {ROOT_META} crc32c mismatch"


def root_damaged(path: Path) -> bool:
    """True when the store's root ``zarr.json`` does not match its recorded crc32c (its attributes
    cannot be trusted); False when it does or none was recorded."""
    try:
        return root_problem(path, read_manifest(path)) is not None
    except StoreError:  # an unreadable manifest: the root's checksum is unknown
        return False


def unchecked_parts(path: Path, manifest: dict[str, Any] | None) -> list[str]:
    """What of the store was written without checksums (empty: everything is checked). A store
    whose root ``zarr.json`` has no recorded crc32c (written before it, everything else checked)
    is not listed: its attributes read unchecked, as they always did, without a warning."""
    if manifest is None or not isinstance(manifest.get("arrays"), dict):
        return ["the whole store"]
    out = []
    if manifest.get("frames_unchecked"):
        out.append(f"{manifest['frames_unchecked']} frames shard(s)")
    if (group_present(path, "rgb") or group_present(path, "pairs")) and not isinstance(
        manifest.get("groups"), dict
    ):
        out.append("rgb/ and pairs/")
    return out


def warn_unchecked(path: Path, manifest: dict[str, Any] | None) -> None:
    """Say once per store and process that (part of) a store was written without checksums."""
    key = str(path)
    if key in _warned:
        return
    parts = unchecked_parts(path, manifest)
    if not parts:
        return
    _warned.add(key)
    fix = "re-run the same `tmkt-data convert` command"
    if parts == ["rgb/ and pairs/"]:
        fix = "re-run `tmkt-data pair`"
    elif group_present(path, "rgb") or group_present(path, "pairs"):
        fix += ", then `tmkt-data pair`,"
    warnings.warn(
        f"{path}: {', '.join(parts)} written without checksums (by an older tmkt), read unchecked; "
        f"{fix} to add them",
        UserWarning,
        stacklevel=3,
    )


# ---------------------------------------------------------------------------- reading through zarr


def _slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[max(0, len(data) - byte_range.suffix) :]
    raise TypeError(f"unexpected byte range {byte_range!r}")


class _Checking:
    """What :class:`CheckedStore` (a local store) and :class:`CheckedFsspecStore` (object storage)
    check: every file served against its recorded crc32c (see :class:`CheckedStore`)."""

    where: Path | RemotePath  # the store, for messages and its records

    def _init_checks(self, where: Path | RemotePath, sums: dict[str, int], prefixes: tuple[str, ...]) -> None:
        self.where = where
        self.sums = sums
        self.prefixes = prefixes
        self._shard_sums: dict[int, int | None] = {}
        # the last shard file read and checked (key, signature, bytes): zarr reads a sample as
        # two ranges of one shard (its index, then its chunk), and neighbours share the shard
        self._last: tuple[str, Any, bytes] | None = None

    def _shard_crc(self, k: int) -> int | None:
        if k not in self._shard_sums:
            rec = read_record(self.where, k)
            if rec is None:
                raise damaged(record_path(self.where, k), "completion record missing or damaged", self.where)
            crc = rec.get("shard_crc32c")
            self._shard_sums[k] = int(crc) if crc is not None else None
        return self._shard_sums[k]

    def _signature(self, path: Any, k: int) -> Any:
        """What tells a shard file's cached bytes are still the file's (local: size and mtime)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            raise damaged(path, f"missing (frames shard {k})", self.where) from None
        return (st.st_size, st.st_mtime_ns)

    async def _raw_get(
        self, key: str, prototype: BufferPrototype | None, byte_range: ByteRequest | None
    ) -> Buffer | None:
        return await super().get(key, prototype, byte_range)  # type: ignore[misc]

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        if not _checks:
            return await self._raw_get(key, prototype, byte_range)
        shard = _FRAMES_KEY.fullmatch(key)
        if shard is not None:
            return await self._get_shard(key, int(shard[1]), prototype, byte_range)
        expected = self.sums.get(key)
        if expected is None:
            buf = await self._raw_get(key, prototype, byte_range)
            if buf is not None and key.startswith(self.prefixes) and not key.endswith("zarr.json"):
                raise damaged(self.where / key, "a file no checksum was recorded for", self.where)
            return buf
        buf = await self._raw_get(key, prototype, None)
        if buf is None and key.endswith("zarr.json"):
            return None  # an array or group deleted as a whole: absent (callers say so; verify too)
        if buf is None:
            raise damaged(self.where / key, "missing", self.where)
        data = buf.to_bytes()
        if crc32c(data) != expected:
            raise damaged(self.where / key, "checksum mismatch", self.where)
        if byte_range is None:
            return buf
        proto = prototype or default_buffer_prototype()
        return proto.buffer.from_bytes(_slice(data, byte_range))

    async def _get_shard(
        self, key: str, k: int, prototype: BufferPrototype | None, byte_range: ByteRequest | None
    ) -> Buffer | None:
        expected = self._shard_crc(k)
        proto = prototype or default_buffer_prototype()
        path = self.where / key
        sig = self._signature(path, k)
        if expected is not None and self._last is not None and self._last[:2] == (key, sig):
            return proto.buffer.from_bytes(_slice(self._last[2], byte_range))
        buf = await self._raw_get(key, prototype, None if expected is not None else byte_range)
        if buf is None:
            raise damaged(path, f"missing (frames shard {k})", self.where)
        if expected is None:
            return buf
        data = buf.to_bytes()
        if crc32c(data) != expected:
            raise damaged(path, f"checksum mismatch (frames shard {k})", self.where)
        self._last = (key, sig, data)
        return buf if byte_range is None else proto.buffer.from_bytes(_slice(data, byte_range))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]


class CheckedStore(_Checking, LocalStore):
    """A read-only zarr ``LocalStore`` that checks every file it serves against its recorded crc32c.

    ``sums``: ``{key: crc32c}`` of the per-sample arrays and groups; ``prefixes``: folders whose
    every file must be in ``sums``; ``frames/c/<k>/0/0/0/0``: shard ``k``'s record gives the crc32c
    of the whole file (a ranged read of a shard reads and checks the whole file, then serves the
    range: only ``show``, ``verify`` and ``pair``'s orientation check read frames through zarr; the
    trainer and :class:`~tmkt_data.FrameDataset` use :class:`~tmkt_data.store.ShardReader`).
    """

    def __init__(self, root: Path, sums: dict[str, int], prefixes: tuple[str, ...]) -> None:
        super().__init__(root, read_only=True)
        self._init_checks(Path(self.root), sums, prefixes)


class CheckedFsspecStore(_Checking, FsspecStore):
    """:class:`CheckedStore` on object storage (a read-only ``zarr.storage.FsspecStore``).

    The same checks; a shard file's checked bytes are kept for the next reads of the same shard
    while it is the last one read (no request to re-validate them: a store being rewritten while
    it is read is refused by the lock for writers only, as on a local disk). A failure to reach
    the store is one :class:`~tmkt_data.store.core.StoreError` line.
    """

    def __init__(self, root: RemotePath, sums: dict[str, int], prefixes: tuple[str, ...]) -> None:
        super().__init__(async_filesystem(root), read_only=True, path=root.key)
        self._init_checks(root, sums, prefixes)

    def _signature(self, path: Any, k: int) -> Any:
        return None

    async def _raw_get(
        self, key: str, prototype: BufferPrototype | None, byte_range: ByteRequest | None
    ) -> Buffer | None:
        try:
            return await FsspecStore.get(self, key, prototype or default_buffer_prototype(), byte_range)
        except Exception as err:
            mapped = remote_error(self.where, err)
            if mapped is None:
                raise
            raise mapped from None


def checked_store(
    path: Path | RemotePath, sums: dict[str, int], prefixes: tuple[str, ...]
) -> CheckedStore | CheckedFsspecStore:
    """The checking zarr store for the store at ``path`` (local or on object storage)."""
    if isinstance(path, RemotePath):
        return CheckedFsspecStore(path, sums, prefixes)
    return CheckedStore(path, sums, prefixes)
