"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images, the embedded default.

Needs no files (``root`` is ignored; pass None or ``"-"``). The UCI optdigits
test set as shipped inside scikit-learn (``sklearn.datasets.load_digits``).

* Read from scikit-learn's ``datasets/data/digits.csv.gz`` directly (fast).
* Pixels 0..16 become uint8 ``round(v * 255 / 16)``; grayscale ``8x8``.
* Classes ``"0"`` ... ``"9"``.
* Split: none is published. Per class, in dataset order (sorted index), the
  first ``ceil(r * n)`` train and the rest test, ``r`` = option
  ``train_ratio`` (default 0.8).
* Source ids ``"digits/<i>"``, ``i`` the 0-based index in ``load_digits()``,
  zero-padded to 4 digits.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.rgb import RGB_SOURCES, RGBError, RGBSet, check_ratio, no_options
from tmkt_data.splits import per_class_split

CLASSES = [str(d) for d in range(10)]


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images (1797, 8, 8) float 0..16, targets)``: scikit-learn's ``digits.csv.gz``.

    The file inside the installed scikit-learn is read directly (importing
    scikit-learn costs seconds); the result equals ``load_digits()``.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RGBError("digits: scikit-learn is not installed; it ships the 8x8 digits")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    try:
        with gzip.open(path, "rt") as fh:
            data = np.loadtxt(fh, delimiter=",")
    except (OSError, ValueError) as err:
        from sklearn.datasets import load_digits  # the slow way, should the file move

        try:
            bunch = load_digits()
        except Exception:
            raise RGBError(f"{path}: cannot read scikit-learn's digits ({err})") from None
        return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target)
    if data.ndim != 2 or data.shape[1] != 65:
        raise RGBError(f"{path}: shape {data.shape}, expected (n, 65): 64 pixels and the digit")
    return data[:, :64].reshape(-1, 8, 8), data[:, 64].astype(np.int64)


@RGB_SOURCES.register("digits")
def load(root: str | Path | None = None, *, train_ratio: float = 0.8, **options: Any) -> RGBSet:
    """The 1,797 scikit-learn digits as uint8 8x8 images (see the module docstring)."""
    no_options("digits", options)
    ratio = check_ratio("digits", train_ratio)
    raw, target = _read_digits()
    images = np.clip(np.round(raw * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = np.asarray(target, dtype=np.int64)
    split = [""] * len(labels)
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(labels == c)
        for i, sp in zip(idx.tolist(), per_class_split(len(idx), ratio), strict=True):
            split[i] = sp
    ids = [f"digits/{i:04d}" for i in range(len(labels))]
    info = {
        "split": {"kind": "per_class_sorted", "train_ratio": ratio, "order": "dataset index"},
        "source": "sklearn.datasets.load_digits (UCI optdigits, 8x8, values 0..16 scaled to 0..255)",
        "ignored_root": None if root in (None, "", "-") else str(root),
    }
    return RGBSet("digits", None, images, labels, CLASSES, ids, split, info)
