"""The ``rgb/`` and ``pairs/`` groups ``tmkt-data pair`` adds to a store, and reading a store back.

Writing (:class:`GroupsWriter`): both groups are written as ``_rgb_tmp/`` and ``_pairs_tmp/``
inside the store, then renamed into place (an existing ``rgb/``/``pairs/`` is renamed to
``_rgb_old/``/``_pairs_old/`` and deleted afterwards); a failed run removes its temporary
groups and leaves the store as it was. ``rgb/images`` is float16 in chunks of about 1 MiB
(:func:`rgb_chunk`), Blosc zstd 5 bit-shuffle (:func:`rgb_compressor`); the 1-D index
arrays are one chunk each (zarr-python's default codecs). Before the rename, the crc32c of
every file of both groups is recorded in ``checksums.groups`` of ``_tmkt``
(:mod:`tmkt_data.store.checksums`); reads through :func:`open_store` check them.

Reading (:class:`StoreView`): a read-only view of a store's attributes, members and
arrays, for the pairing code and the training side, which never open Zarr themselves.
"""

from __future__ import annotations

import os
import shutil
from types import TracebackType
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from tmkt_data.store.checksums import tree_crc32c, update_manifest
from tmkt_data.store.core import StoreError
from tmkt_data.store.frames import open_store
from tmkt_data.store.location import RemotePath, copy_tree, remove_tree, store_location, zarr_target

GROUP_NAMES = ("rgb", "pairs")
_TMP = {"rgb": "_rgb_tmp", "pairs": "_pairs_tmp"}
_OLD = {"rgb": "_rgb_old", "pairs": "_pairs_old"}


def rgb_compressor() -> BloscCodec:
    """The codec of ``rgb/images``: Blosc zstd level 5 with bit-shuffle."""
    return BloscCodec(cname="zstd", clevel=5, shuffle=BloscShuffle.bitshuffle)


def rgb_chunk(size: tuple[int, int]) -> int:
    """Images per chunk of ``rgb/images``: about 1 MiB uncompressed, between 16 and 1024."""
    per = 2 * size[0] * size[1] * 2
    return int(min(1024, max(16, (1 << 20) // per)))


def _index_values(values: Any, dtype: Any) -> np.ndarray:
    if dtype is not str:
        return np.asarray(values, dtype=dtype)
    if not len(values):
        return np.zeros(0, str)
    return np.asarray([str(v) for v in values], dtype=object).astype(str)


class GroupsWriter:
    """Writes a store's ``rgb/`` and ``pairs/`` under temporary names; :meth:`commit` swaps them in.

    A context manager: entering removes temporary groups a crashed run left and creates
    empty ones; leaving by an exception, or without :meth:`commit`, removes them again, so
    the store is left as it was. The caller holds the store lock (:func:`store_lock`).

    On object storage (no rename) the swap deletes the old groups and copies the temporary ones
    into place, after recording the new checksums: a crash during it leaves ``rgb/``/``pairs/``
    that every read refuses as damaged (``verify`` names them, ``pair`` again repairs), never a
    silent mix (``docs/store-format.md``, "Stores on object storage").
    """

    def __init__(self, store: str | os.PathLike[str] | RemotePath) -> None:
        self.store = store_location(store)
        self._groups: dict[str, zarr.Group] = {}
        self._images: zarr.Array | None = None
        self._committed = False

    def __enter__(self) -> GroupsWriter:
        self._remove_tmp()
        try:
            for name in GROUP_NAMES:
                tmp = zarr_target(self.store / _TMP[name], "w")
                self._groups[name] = zarr.open_group(tmp, mode="w", zarr_format=3)
        except BaseException:
            self._remove_tmp()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._committed:
            self._remove_tmp()

    def create_images(self, n: int, size: tuple[int, int]) -> int:
        """Create ``rgb/images`` for ``n`` encoded images of ``size`` (H, W); returns the rows
        per :meth:`write_images` call that keep the writes aligned to whole chunks (4 chunks)."""
        chunk = min(rgb_chunk(size), n)
        self._images = self._groups["rgb"].create_array(
            "images",
            shape=(n, 2, *size),
            chunks=(chunk, 2, *size),
            dtype="float16",
            compressors=rgb_compressor(),
            fill_value=0,
            dimension_names=("image", "polarity", "y", "x"),
        )
        return chunk * 4

    def write_images(self, start: int, block: np.ndarray) -> None:
        """Rows ``start:start + len(block)`` of ``rgb/images``."""
        if self._images is None:
            raise RuntimeError("create_images first")
        self._images[start : start + len(block)] = block

    @property
    def images(self) -> Any:
        """The ``rgb/images`` written so far, read-only (indexable like a numpy array)."""
        return zarr.open_array(zarr_target(self.store / _TMP["rgb"] / "images", "r"), mode="r")

    def put(self, name: str, values: Any, dtype: Any) -> None:
        """A 1-D index array ``name`` (``"rgb/labels"``, ``"pairs/train/dvs"``): one chunk,
        dimension ``item``; ``dtype`` ``str`` stores strings."""
        top, _, rest = name.partition("/")
        group = self._groups[top]
        *parents, leaf = rest.split("/")
        for sub in parents:
            group = group[sub] if sub in group else group.create_group(sub)
        arr = _index_values(values, dtype)
        out = group.create_array(
            leaf,
            shape=arr.shape,
            dtype=str if dtype is str else arr.dtype,
            chunks=(max(1, len(arr)),),
            dimension_names=("item",),
        )
        if len(arr):
            out[:] = arr

    def commit(self, attrs: dict[str, dict[str, Any]]) -> None:
        """Set each group's attributes (``{"rgb": {...}, "pairs": {...}}``, JSON values), record the
        crc32c of every file of both groups, then rename the groups into place, replacing any
        earlier ``rgb/`` and ``pairs/``."""
        for name in GROUP_NAMES:
            self._groups[name].attrs.update(attrs.get(name, {}))
        files: dict[str, int] = {}
        for name in GROUP_NAMES:
            files.update(tree_crc32c(self.store, _TMP[name], rename=name))
        pairing_id = attrs.get("rgb", {}).get("pairing_id")
        update_manifest(self.store, {"groups": {"pairing_id": pairing_id, "files": files}})
        self._swap_in()
        self._committed = True

    def _swap_in(self) -> None:
        store = self.store
        if isinstance(store, RemotePath):
            for name in GROUP_NAMES:
                remove_tree(store / _OLD[name])
                remove_tree(store / name)
                copy_tree(store / _TMP[name], store / name)
            self._remove_tmp()
            return
        for name in GROUP_NAMES:
            old = store / _OLD[name]
            if old.exists():
                shutil.rmtree(old)
        for name in GROUP_NAMES:
            target, old = store / name, store / _OLD[name]
            if target.exists():
                os.rename(target, old)
            os.rename(store / _TMP[name], target)
        for name in GROUP_NAMES:
            shutil.rmtree(store / _OLD[name], ignore_errors=True)

    def _remove_tmp(self) -> None:
        for name in GROUP_NAMES:
            remove_tree(self.store / _TMP[name], ignore_errors=True)


class StoreView:
    """Read-only access to a store: attributes, members and arrays by path (``"labels"``,
    ``"pairs/train/dvs"``, ``"rgb/images"``).

    Raises:
        StoreError: missing, not a tmkt store, or (``require_complete``) not complete.
    """

    def __init__(self, path: str | os.PathLike[str] | RemotePath, *, require_complete: bool = True) -> None:
        self.path = store_location(path)
        self._group = open_store(self.path, require_complete=require_complete)
        self.attrs: dict[str, Any] = dict(self._group.attrs)

    def has(self, name: str) -> bool:
        """True when the store holds an array or group at ``name``."""
        return name in self._group

    def is_group(self, name: str) -> bool:
        """True when ``name`` is a group of the store."""
        return name in self._group and isinstance(self._group[name], zarr.Group)

    def group_attrs(self, name: str) -> dict[str, Any]:
        """The attributes of the group or array ``name``."""
        return dict(self._group[name].attrs)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._group[name].shape)

    def read(self, name: str, dtype: Any = None) -> np.ndarray:
        """The whole array ``name`` as numpy (in ``dtype`` when given)."""
        return np.asarray(self._group[name][:], dtype=dtype)

    def strings(self, name: str) -> list[str]:
        """A string array as a list of ``str``."""
        return [str(s) for s in np.asarray(self._group[name][:], dtype=object).tolist()]

    def lazy(self, name: str) -> Any:
        """The array ``name`` unread (read-only; ``[i]`` and slices read what they select)."""
        return self._group[name]


def read_group_attrs(store: str | os.PathLike[str], name: str) -> dict[str, Any] | None:
    """The attributes of the store's group ``name`` (e.g. ``"pairs"``), or None without one or when
    its metadata is damaged (the group is then as good as absent: ``tmkt-data pair`` rewrites it)."""
    view = StoreView(store, require_complete=False)
    try:
        return view.group_attrs(name) if view.is_group(name) else None
    except (StoreError, ValueError, KeyError, TypeError):  # unreadable metadata
        return None
