"""RGB counterparts of the event datasets: one reader module per source, read from local files.

Each source reads the dataset's own files from a folder the user points at
(nothing is downloaded) and returns an :class:`RGBSet`:

* ``cifar10``, ``cifar100`` (:mod:`~tmkt_data.rgb.cifar`): the python pickle
  batches; CIFAR-100 with ``labels="fine"`` or ``"coarse"``; official split.
* ``caltech101`` (:mod:`~tmkt_data.rgb.caltech101`):
  ``101_ObjectCategories/<class>/image_NNNN.jpg``; per-class sorted split.
* ``mnist`` (:mod:`~tmkt_data.rgb.mnist`): IDX files, optionally ``.gz``; official split.
* ``omniglot`` (:mod:`~tmkt_data.rgb.omniglot`): ``images_background/`` (train),
  ``images_evaluation/`` (test); ``split="drawers"``: 15 of each character's 20 drawers train.
* ``imagefolder`` (:mod:`~tmkt_data.rgb.imagefolder`): ``<class>/**/*.png|jpg|jpeg|bmp``,
  optional ``train/`` + ``test/``.
* ``digits`` (:mod:`~tmkt_data.rgb.digits`): scikit-learn's bundled 8x8 digits, no
  files needed (the embedded default); per-class sorted split.
* ``digitpairs`` (:mod:`~tmkt_data.rgb.digitpairs`): 100 classes ``"00"``..``"99"``,
  two of those digits side by side (8x16), composed within each split; no files needed.

:func:`tmkt_data.rgb.encode.encode_images` turns the images into the DVS frame
geometry; :mod:`tmkt_data.pairing` stores them with the pairing index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.errors import TmktError
from tmkt_data.mapping import check_no_options
from tmkt_data.registry import Registry
from tmkt_data.splits import check_train_ratio


class RGBError(TmktError, ValueError):
    """An RGB source is missing, malformed, or was given a bad option (one line naming the file)."""


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def read_image(path: Path, expected: str) -> np.ndarray:
    """Decode one image file into ``HxW`` (grayscale) or ``HxWx3`` (colour) uint8.

    Bilevel, grayscale and 16-bit grayscale images become ``HxW``; everything
    else (palette, RGBA, CMYK...) is converted to RGB (alpha dropped).

    Raises:
        RGBError: the file is missing or cannot be decoded, naming it and ``expected``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
                if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                    arr = np.asarray(img, dtype=np.float64)
                    top = 65535.0 if mode.startswith("I;16") else max(1.0, float(arr.max()))
                    return np.clip(np.round(arr * 255.0 / top), 0, 255).astype(np.uint8)
                return np.asarray(img.convert("L"), dtype=np.uint8).copy()
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise RGBError(f"{path}: missing file, expected {expected}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise RGBError(f"{path}: cannot decode as an image ({err}), expected {expected}") from None


class ImageFiles(Sequence):
    """A lazy list of image files: item ``i`` is decoded (by :func:`read_image`) when accessed.

    Keeps large folder datasets (Caltech101, Omniglot) out of memory until they
    are encoded, one image at a time.
    """

    def __init__(self, paths: Sequence[Path], expected: str):
        self.paths = [Path(p) for p in paths]
        self.expected = expected

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return ImageFiles(self.paths[i], self.expected)
        return read_image(self.paths[i], self.expected)

    def __iter__(self) -> Iterator[np.ndarray]:
        for p in self.paths:
            yield read_image(p, self.expected)

    def subset(self, indices: Sequence[int]) -> ImageFiles:
        return ImageFiles([self.paths[int(i)] for i in indices], self.expected)


@dataclass
class RGBSet:
    """Images of one RGB source with their labels and split.

    Attributes:
        kind: source name (a name in :data:`RGB_SOURCES`).
        root: the folder read (absolute), or None for the embedded ``digits``.
        images: ``HxWx3`` / ``HxW`` uint8 images: an array ``(N, H, W[, 3])``,
            a list of arrays, or a lazy :class:`ImageFiles`.
        labels: (N,) int64 class index into ``class_names``.
        class_names: the source's class names.
        source_ids: (N,) unique stable names (``"train/00012"``,
            ``"accordion/image_0001.jpg"``...).
        split: (N,) ``"train"`` or ``"test"``.
        info: how the split was made and other facts worth recording.
    """

    kind: str
    root: str | None
    images: Any
    labels: np.ndarray
    class_names: list[str]
    source_ids: list[str]
    split: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.labels)
        where = self.root or self.kind
        for name, seq in (("images", self.images), ("source_ids", self.source_ids), ("split", self.split)):
            if len(seq) != n:
                raise RGBError(f"{where}: {len(seq)} {name} for {n} labels, expected one per image")
        if n == 0:
            raise RGBError(f"{where}: no images found for RGB source {self.kind}")
        if self.labels.min() < 0 or self.labels.max() >= len(self.class_names):
            raise RGBError(
                f"{where}: labels outside 0..{len(self.class_names) - 1} ({len(self.class_names)} classes)"
            )
        bad = sorted(set(self.split) - {"train", "test"})
        if bad:
            raise RGBError(f"{where}: split values {bad}, expected 'train' or 'test'")
        if len(set(self.source_ids)) != n:
            raise RGBError(f"{where}: source ids are not unique")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Sequence[int]) -> RGBSet:
        """The images at ``indices`` (in that order), with their labels, ids and split."""
        idx = [int(i) for i in indices]
        if isinstance(self.images, ImageFiles):
            images: Any = self.images.subset(idx)
        elif isinstance(self.images, np.ndarray):
            images = self.images[np.asarray(idx, dtype=np.int64)]
        else:
            images = [self.images[i] for i in idx]
        return RGBSet(
            self.kind,
            self.root,
            images,
            self.labels[np.asarray(idx, dtype=np.int64)],
            list(self.class_names),
            [self.source_ids[i] for i in idx],
            [self.split[i] for i in idx],
            dict(self.info),
        )

    def selected(
        self, per_class: Mapping[str, int] | None = None, limit: int | None = None
    ) -> tuple[RGBSet, list[int]]:
        """The images chosen by :func:`per_class_indices` and then ``limit`` (:func:`balanced_indices`).

        Returns the subset and the chosen images' indices in this set (source
        order), so each can be simulated with its source index's seed.
        """
        chosen = (
            list(range(len(self)))
            if per_class is None
            else per_class_indices(self.labels.tolist(), self.split, per_class)
        )
        if limit is not None:
            keep = balanced_indices(
                [int(self.labels[i]) for i in chosen], [self.split[i] for i in chosen], limit
            )
            chosen = [chosen[k] for k in keep]
        return (self.take(chosen) if len(chosen) < len(self) else self), chosen

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class and split: ``{class: {"train": n, "test": m}}``."""
        out = {c: {"train": 0, "test": 0} for c in self.class_names}
        for lab, sp in zip(self.labels.tolist(), self.split, strict=True):
            out[self.class_names[lab]][sp] += 1
        return out


def balanced_indices(labels: Sequence[int], split: Sequence[str], limit: int | None) -> list[int]:
    """At most ``limit`` image indices spread evenly over the (split, class) groups, in source order.

    Takes one image from each group in turn (the training groups first, class by
    class, then the test groups; images within a group in source order) until
    ``limit`` are chosen, so a limit of at least the number of classes covers
    every class in training, and one of twice that covers both splits. ``None``
    or a limit of at least ``len(labels)`` selects everything.
    """
    n = len(labels)
    if limit is None or limit >= n:
        return list(range(n))
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (lab, sp) in enumerate(zip(labels, split, strict=True)):
        groups.setdefault((str(sp), int(lab)), []).append(i)
    queues = [groups[k] for k in sorted(groups, key=lambda k: (k[0] != "train", k))]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for q in queues:
            if depth < len(q) and len(chosen) < limit:
                chosen.append(q[depth])
        depth += 1
    return sorted(chosen)


def per_class_indices(labels: Sequence[int], split: Sequence[str], per_class: Mapping[str, int]) -> list[int]:
    """The first ``per_class[sp]`` images (source order) of every class in split ``sp``, in source order.

    ``per_class`` maps ``"train"`` and/or ``"test"`` to a count >= 0; a split it
    does not name keeps all its images. A class with fewer images gives all it has.

    Raises:
        RGBError: a key other than train/test, or a count that is not an integer >= 0.
    """
    bad = sorted(set(per_class) - {"train", "test"})
    if bad:
        raise RGBError(f"per-class counts for {bad}, expected the splits 'train' and/or 'test'")
    for sp, v in per_class.items():
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise RGBError(f"per-class count {sp}={v!r}, expected an integer >= 0")
    taken: dict[tuple[str, int], int] = {}
    chosen = []
    for i, (lab, sp) in enumerate(zip(labels, split, strict=True)):
        cap = per_class.get(str(sp))
        key = (str(sp), int(lab))
        if cap is None or taken.get(key, 0) < cap:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(i)
    return chosen


def check_ratio(kind: str, train_ratio: Any) -> float:
    """``train_ratio`` as a fraction in (0, 1]; otherwise one line :class:`RGBError`."""
    return check_train_ratio(kind, train_ratio, None, RGBError)


def no_options(kind: str, options: dict[str, Any]) -> None:
    check_no_options(kind, options, RGBError)


def require_root(kind: str, root: str | Path | None) -> Path:
    if root is None or str(root) in ("", "-"):
        raise RGBError(f"{kind}: needs RGB_ROOT, the folder holding the dataset's files")
    p = Path(root).expanduser().resolve()
    if not p.is_dir():
        raise RGBError(f"{p}: RGB root is not a folder")
    return p


#: Source name -> its loader ``load(root, **options) -> RGBSet``; each source module registers its
#: own (``@RGB_SOURCES.register("mnist")``), imported on the first lookup.
RGB_SOURCES: Registry[Callable[..., RGBSet]] = Registry(
    "RGB source",
    RGBError,
    modules=[
        f"tmkt_data.rgb.{m}"
        for m in ("cifar", "caltech101", "mnist", "omniglot", "imagefolder", "digits", "digitpairs")
    ],
)

#: Sources built into the toolkit: they read no folder (``root`` None or ``"-"``).
EMBEDDED_SOURCES = ("digits", "digitpairs")


def load_rgb(kind: str, root: str | Path | None = None, **options: Any) -> RGBSet:
    """Read the RGB source ``kind`` (a name in :data:`RGB_SOURCES`) from ``root``.

    ``root`` may be None (or ``"-"``) only for :data:`EMBEDDED_SOURCES`. Options go to the
    source's loader (e.g. ``labels="coarse"`` for ``cifar100``,
    ``train_ratio=0.9`` for ``caltech101``); an unknown option is an error.
    """
    loader = RGB_SOURCES.get(kind)
    if root is not None and str(root) in ("", "-"):
        root = None
    return loader(root, **options)


__all__ = [
    "EMBEDDED_SOURCES",
    "IMAGE_EXTENSIONS",
    "RGB_SOURCES",
    "ImageFiles",
    "RGBError",
    "RGBSet",
    "balanced_indices",
    "load_rgb",
    "per_class_indices",
    "read_image",
]
