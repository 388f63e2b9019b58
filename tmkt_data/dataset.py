"""A map-style dataset over a tmkt frame store, for your own training loop (no torch import).

:class:`FrameDataset` gives ``len(ds)`` samples of one split; ``ds[i]`` is
``(frames, label)``, or ``(frames, rgb, label)`` with ``rgb=True`` on a store
paired by ``tmkt-data pair``::

    from torch.utils.data import DataLoader
    from tmkt_data import FrameDataset

    ds = FrameDataset("nmnist.zarr", "train")
    loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=2)
    for frames, labels in loader:      # (64, T, 2, H, W) float32, (64,) int64
        ...

Splits (``split=``):

* ``"train"``, ``"val"``, ``"test"``: on a paired store (``pairs/`` and ``rgb/``
  groups), the pairing index's splits as :func:`tmkt_data.pairing.read_pairs`
  returns them (``train`` already reduced by ``--dvs-fraction``, ``val`` carved
  from the store's train split, matched classes only). On an unpaired store,
  ``"train"``/``"test"`` are the valid samples of the store's ``split`` array,
  and ``"val"`` is an error (there is none before ``tmkt-data pair``).
* ``"ARRAY:PART"``: the valid samples whose store array ``ARRAY`` equals
  ``PART``, ignoring any pairing: ``"split:train"`` (the store's whole train
  split), ``"split_drawers:test"``, ``"split_first100:train"`` (alternative
  splits; ``"drawers:test"`` is short for ``"split_drawers:test"``).

Samples are visited in ascending store order (``ds.indices``); the frames are
decoded straight from the shard files (:class:`tmkt_data.store.ShardReader`)
and cast to float32; every byte read (frames chunks, ``rgb/images`` chunks, the per-sample
arrays) is checked against its recorded crc32c, and a mismatch or a missing file raises
:class:`~tmkt_data.store.StoreError` naming the file and ``tmkt-data verify``. The dataset is picklable and opens nothing until it is
read, in the process that reads, so it works with DataLoader workers.
"""

from __future__ import annotations

import operator
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from tmkt_data.errors import TmktError
from tmkt_data.store import ShardReader, geometry_of, open_store
from tmkt_data.store.location import store_location

__all__ = ["DatasetError", "DatasetIndexError", "FrameDataset"]

SPLITS = ("train", "val", "test")
_RGB_SALT = 0x72676270  # "rgbp": seed material of the partner draws
_RGB_CACHE_BYTES = 128 << 20  # decoded rgb/images chunks kept per process (float16)
_F16_TABLE: np.ndarray | None = None  # float32 value of every float16 bit pattern (256 KiB)


class DatasetError(TmktError, ValueError):
    """A :class:`FrameDataset` cannot be made as asked (split name, unpaired store, ...)."""


class DatasetIndexError(DatasetError, IndexError):
    """An index outside ``[-len(ds), len(ds))`` or not an integer."""


def _str_values(arr: Any) -> np.ndarray:
    """A zarr string array as a numpy ``<U`` array."""
    return np.asarray(arr[:], dtype=object).astype(str)


def _split_arrays(group: Any) -> list[str]:
    """The store's split arrays: ``split`` and every ``split_<name>``."""
    names = sorted(k for k in group.array_keys() if k == "split" or k.startswith("split_"))
    return names


def _to_float32(x: np.ndarray) -> np.ndarray:
    """``x`` as float32 (a new array unless it is float32 already). float16 goes through a
    65,536-entry lookup table: the same values as ``astype`` (the table is made by it), faster
    than numpy's float16 cast (docs/benchmarks.md, "Reading a store")."""
    global _F16_TABLE
    if x.dtype == np.float32:
        return x
    if x.dtype != np.float16:
        return x.astype(np.float32)
    if _F16_TABLE is None:
        _F16_TABLE = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    return np.take(_F16_TABLE, x.view(np.uint16))


def _is_paired(group: Any) -> bool:
    return "pairs" in group or "rgb" in group


class FrameDataset:
    """Samples of one split of a tmkt store: ``(frames, label)`` or ``(frames, rgb, label)``.

    Args:
        store: path of a complete tmkt store (``tmkt-data convert``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"ARRAY:PART"`` (see the module doc).
        rgb: also return an RGB partner: an image of the pairing's pool for the
            sample's class (``tmkt-data pair`` needed), drawn with a generator seeded by
            ``(seed, epoch, store sample index)``, so a sample gets the same partner
            every time it is read in an epoch (:meth:`set_epoch` draws anew).
        transform: called on the frames (float32 numpy ``(T, 2, H, W)``); its result is returned.
        target_transform: called on the label (``int``).
        rgb_transform: called on the RGB partner (float32 numpy ``(2, H, W)``).
        seed: base of the partner draws.

    Items: ``frames`` float32 numpy ``(T, 2, H, W)`` (event counts per frame, or resized
    values, exactly the stored ones), ``label`` an ``int`` indexing ``ds.classes``, ``rgb``
    the stored encoded image (``rgb/images``: values in [0, 1], the same in both
    polarity channels) as float32 numpy ``(2, H, W)``; the trainer repeats it over
    the T steps (``rgb[None].repeat(T, 0)``, or ``x.unsqueeze(1).expand(-1, T, -1, -1, -1)``
    on a batch).

    Attributes:
        indices: (len,) int64 store sample indices of the split, ascending.
        labels: (len,) int64 labels of those samples.
        classes: the store's class names (label = index).
        frame_shape: ``(T, 2, H, W)``; ``rgb_shape``: ``(2, H, W)`` (``rgb=True`` only).
        pairs: the pairing index (:class:`tmkt_data.pairing.Pairs`, ``rgb_images`` left
            out) when it was read (plain split names on a paired store, or ``rgb=True``), else None.

    Raises:
        StoreError: the store is missing, not a tmkt store, or incomplete; when reading, a file
            that is missing or does not match its recorded checksum.
        PairingError: the store's pairing index is inconsistent (from ``read_pairs``).
        DatasetError: an unknown split, ``"val"`` or ``rgb=True`` on an unpaired store.
    """

    def __init__(
        self,
        store: str | os.PathLike[str],
        split: str = "train",
        *,
        rgb: bool = False,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        rgb_transform: Callable[[np.ndarray], Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.path = store_location(store)  # a local Path, or a URL on object storage
        group = open_store(self.path)
        geo = geometry_of(group)
        self.split = split
        self.rgb = bool(rgb)
        self.transform = transform
        self.target_transform = target_transform
        self.rgb_transform = rgb_transform
        self.seed = int(seed)
        self.epoch = 0
        self.classes: list[str] = [str(c) for c in group.attrs.get("classes", [])]
        self.frame_shape = tuple(int(v) for v in geo.frame_shape)
        self.shard_samples = int(geo.shard_samples)
        self._dtype = str(geo.dtype)
        self.pairs: Any = None
        store_labels = np.asarray(group["labels"][:], dtype=np.int64)

        array, part = self._parse_split(group, split)
        paired = _is_paired(group)
        if array is None:  # a plain train / val / test
            if paired:
                self.pairs = self._read_pairs()
                self.indices = np.asarray(self.pairs.dvs[part], dtype=np.int64)
            elif part == "val":
                raise DatasetError(
                    f"{self.path}: split 'val' comes from a pairing index and this store has none; "
                    f"run `tmkt-data pair {self.path} RGB_KIND RGB_ROOT` first, or use 'train' / 'test'"
                )
            else:
                array = "split"
        if array is not None:
            self.indices = self._from_array(group, array, part)
        if self.rgb:
            if not paired:
                raise DatasetError(
                    f"{self.path}: rgb=True needs RGB partners (rgb/, pairs/) and this store has none; "
                    f"run `tmkt-data pair {self.path} RGB_KIND RGB_ROOT` first"
                )
            if self.pairs is None:
                self.pairs = self._read_pairs()
            self._check_pools(store_labels)
            images = group["rgb"]["images"]
            self.rgb_shape = tuple(int(v) for v in images.shape[1:])
            self._rgb_chunk = int(images.chunks[0])
            self._rgb_count = int(images.shape[0])
            chunk_bytes = self._rgb_chunk * int(np.prod(self.rgb_shape)) * images.dtype.itemsize
            self._rgb_cache_chunks = max(1, _RGB_CACHE_BYTES // chunk_bytes)
        self.labels = store_labels[self.indices]
        self._reader: ShardReader | None = None
        self._rgb_images: Any = None
        self._rgb_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pid = -1

    # ------------------------------------------------------------------ construction helpers

    def _parse_split(self, group: Any, split: Any) -> tuple[str | None, str]:
        """(store array or None for a plain split name, part)."""
        arrays = _split_arrays(group)
        expected = (
            f"expected train, val, test or ARRAY:PART with ARRAY one of {', '.join(arrays) or '(none)'}"
        )
        if not isinstance(split, str):
            raise DatasetError(f"{self.path}: split {split!r}: {expected}")
        if ":" not in split:
            if split not in SPLITS:
                raise DatasetError(f"{self.path}: split {split!r}: {expected}")
            return None, split
        array, part = split.split(":", 1)
        if array not in arrays and f"split_{array}" in arrays:
            array = f"split_{array}"
        if array not in arrays:
            raise DatasetError(f"{self.path}: split {split!r}: no split array {array!r}; {expected}")
        if not part:
            raise DatasetError(f"{self.path}: split {split!r}: no PART after ':' (e.g. {array}:train)")
        return array, part

    def _from_array(self, group: Any, array: str, part: str) -> np.ndarray:
        """Valid samples whose ``array`` value is ``part``, ascending."""
        values = _str_values(group[array])
        held = sorted(set(values.tolist()) - {""})
        if part not in held and part not in ("train", "test"):
            hint = ""
            if part == "val":
                hint = "; 'val' comes from a pairing index: split='val' on a store paired by tmkt-data pair"
            raise DatasetError(
                f"{self.path}: split array {array!r} holds no {part!r} samples "
                f"(it holds {', '.join(held) or 'nothing'}){hint}"
            )
        valid = np.asarray(group["valid"][:], dtype=bool)
        return np.flatnonzero((values == part) & valid).astype(np.int64)

    def _read_pairs(self) -> Any:
        from tmkt_data.pairing import read_pairs

        return replace(read_pairs(self.path), rgb_images=None)  # images: read lazily per process

    def _check_pools(self, store_labels: np.ndarray) -> None:
        """Every class of the split has RGB partners to draw from."""
        off = self.pairs.pool_offsets
        present = np.unique(store_labels[self.indices])
        empty = [int(c) for c in present if off[c + 1] <= off[c]]
        if empty:
            names = ", ".join(self.classes[c] for c in empty)
            raise DatasetError(f"{self.path}: split {self.split!r}: no RGB partners for class(es) {names}")

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"FrameDataset({str(self.path)!r}, split={self.split!r}, rgb={self.rgb}, len={len(self)})"

    def _position(self, i: Any) -> int:
        """``i`` as a position in ``[0, len)``; DatasetIndexError otherwise."""
        n = len(self.indices)
        try:
            j = operator.index(i)
        except TypeError:
            raise DatasetIndexError(f"index {i!r}: expected an integer in [-{n}, {n})") from None
        if not -n <= j < n:
            raise DatasetIndexError(f"index {j} out of range for split {self.split!r} of {n} samples")
        return j + n if j < 0 else j

    def _open(self) -> None:
        """Per-process readers (after a fork or unpickling, the first read opens them again)."""
        if self._pid != os.getpid():
            self._reader = ShardReader(self.path, self.frame_shape, self._dtype, self.shard_samples)
            self._rgb_images = None
            self._rgb_cache = OrderedDict()
            self._pid = os.getpid()

    def frames(self, i: int) -> np.ndarray:
        """Frames of item ``i``: float32 ``(T, 2, H, W)``, before ``transform``."""
        self._open()
        s = int(self.indices[self._position(i)])
        k, row = divmod(s, self.shard_samples)
        return _to_float32(self._reader.read(k, np.array([row], dtype=np.int64))[0])

    def partner(self, i: int) -> int:
        """Row of ``rgb/images`` drawn as item ``i``'s partner in the current epoch."""
        if not self.rgb:
            raise DatasetError("partner(): this dataset was made with rgb=False")
        s = int(self.indices[self._position(i)])
        rng = np.random.default_rng([self.seed, self.epoch, s, _RGB_SALT])
        return int(self.pairs.draw_partners(np.array([s], dtype=np.int64), rng)[0])

    def rgb_image(self, row: int) -> np.ndarray:
        """Stored RGB image ``row`` of ``rgb/images`` as float32 ``(2, H, W)``."""
        self._open()
        c = int(row) // self._rgb_chunk
        block = self._rgb_cache.get(c)
        if block is None:
            if self._rgb_images is None:
                self._rgb_images = open_store(self.path)["rgb"]["images"]
            a = c * self._rgb_chunk
            block = np.asarray(self._rgb_images[a : min(a + self._rgb_chunk, self._rgb_count)])
            self._rgb_cache[c] = block
            if len(self._rgb_cache) > self._rgb_cache_chunks:
                self._rgb_cache.popitem(last=False)
        else:
            self._rgb_cache.move_to_end(c)
        return _to_float32(block[int(row) - c * self._rgb_chunk])

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        j = self._position(i)
        x: Any = self.frames(j)
        y: Any = int(self.labels[j])
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        if not self.rgb:
            return x, y
        r: Any = self.rgb_image(self.partner(j))
        if self.rgb_transform is not None:
            r = self.rgb_transform(r)
        return x, r, y

    def set_epoch(self, epoch: int) -> None:
        """Draw the RGB partners of ``epoch`` from now on: call it before creating each epoch's
        DataLoader iterator (workers get the dataset then; not with ``persistent_workers=True``)."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_reader=None, _rgb_images=None, _rgb_cache=OrderedDict(), _pid=-1)
        return state
