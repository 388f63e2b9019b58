"""MNIST, the original IDX files (optionally gzip-compressed).

Expected files in ``root`` (or in ``root/MNIST/raw`` or ``root/raw``, torchvision's layout)::

    train-images-idx3-ubyte   train-labels-idx1-ubyte     60,000 train
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte      10,000 test

each optionally ending ``.gz``; the dotted spelling ``train-images.idx3-ubyte``
is accepted too.

* Image file: big-endian int32 magic 2051 (``0x00000803``), count, rows,
  columns, then ``count * rows * cols`` uint8 pixels. Label file: magic 2049
  (``0x00000801``), count, then ``count`` uint8 labels 0..9. Wrong magic,
  truncated or over-long data, or differing counts are errors naming the file.
* Classes ``"0"`` ... ``"9"``; split official (train / t10k = test).
* Source ids ``"train/<i>"`` / ``"test/<i>"``, ``i`` the 0-based index in the
  file, zero-padded to 5 digits. N-MNIST's file ``<k>.bin`` is MNIST sample
  ``i = k - 1`` of the same split (see :mod:`tmkt_data.pairing`).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.rgb import RGB_SOURCES, RGBError, RGBSet, no_options, require_root

CLASSES = [str(d) for d in range(10)]
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
SPLITS = (("train", "train"), ("t10k", "test"))


def _find(base: Path, prefix: str, what: str, idx: str) -> Path:
    for folder in (base, base / "MNIST" / "raw", base / "raw"):
        for sep in ("-", "."):
            for ext in ("", ".gz"):
                p = folder / f"{prefix}-{what}{sep}{idx}-ubyte{ext}"
                if p.is_file():
                    return p
    raise RGBError(
        f"{base / f'{prefix}-{what}-{idx}-ubyte'}: missing file, expected the MNIST IDX file (or .gz)"
    )


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:
        raise RGBError(f"{path}: cannot read ({err})") from None


def read_idx_images(path: Path) -> np.ndarray:
    """``(n, rows, cols)`` uint8 from an IDX3 image file; RGBError when malformed."""
    blob = _read_bytes(path)
    if len(blob) < 16:
        raise RGBError(f"{path}: {len(blob)} bytes, expected a 16-byte IDX3 header (magic 2051)")
    magic, n, rows, cols = struct.unpack(">iiii", blob[:16])
    if magic != IMAGES_MAGIC:
        raise RGBError(f"{path}: magic number {magic}, expected {IMAGES_MAGIC} (IDX3 uint8 images)")
    if n < 0 or rows <= 0 or cols <= 0:
        raise RGBError(f"{path}: header says {n} images of {rows}x{cols}, expected positive sizes")
    size = 16 + n * rows * cols
    if len(blob) != size:
        raise RGBError(f"{path}: {len(blob)} bytes, expected {size} for {n} images of {rows}x{cols}")
    return np.frombuffer(blob, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def read_idx_labels(path: Path) -> np.ndarray:
    """``(n,)`` uint8 labels from an IDX1 label file; RGBError when malformed."""
    blob = _read_bytes(path)
    if len(blob) < 8:
        raise RGBError(f"{path}: {len(blob)} bytes, expected an 8-byte IDX1 header (magic 2049)")
    magic, n = struct.unpack(">ii", blob[:8])
    if magic != LABELS_MAGIC:
        raise RGBError(f"{path}: magic number {magic}, expected {LABELS_MAGIC} (IDX1 uint8 labels)")
    if n < 0 or len(blob) != 8 + n:
        raise RGBError(f"{path}: {len(blob)} bytes, expected {8 + max(n, 0)} for {n} labels")
    labels = np.frombuffer(blob, dtype=np.uint8, offset=8)
    if labels.size and labels.max() > 9:
        raise RGBError(f"{path}: label {int(labels.max())}, expected digits 0..9")
    return labels


@RGB_SOURCES.register("mnist")
def load(root: str | Path | None, **options: Any) -> RGBSet:
    """Read MNIST's IDX files (see the module docstring)."""
    no_options("mnist", options)
    base = require_root("mnist", root)
    images, labels, split, ids, files = [], [], [], [], {}
    for prefix, sp in SPLITS:
        ip, lp = _find(base, prefix, "images", "idx3"), _find(base, prefix, "labels", "idx1")
        imgs, labs = read_idx_images(ip), read_idx_labels(lp)
        if len(imgs) != len(labs):
            raise RGBError(f"{lp}: {len(labs)} labels for the {len(imgs)} images of {ip.name}")
        if images and imgs.shape[1:] != images[0].shape[1:]:
            raise RGBError(f"{ip}: images are {imgs.shape[1:]}, the train images {images[0].shape[1:]}")
        images.append(imgs)
        labels.append(labs.astype(np.int64))
        split += [sp] * len(imgs)
        ids += [f"{sp}/{i:05d}" for i in range(len(imgs))]
        files[sp] = [str(ip.relative_to(base)), str(lp.relative_to(base))]
    info = {"split": {"kind": "official", "train": "train-*", "test": "t10k-*"}, "files": files}
    return RGBSet(
        "mnist", str(base), np.concatenate(images), np.concatenate(labels), CLASSES, ids, split, info
    )
