"""Two-digit numbers "00".."99" composed from scikit-learn's 8x8 digits: 100 classes, no files needed.

A harder embedded task than ten digits (``root`` is ignored; pass None or ``"-"``).

* Image of class ``"ab"``: the 8x8 sklearn digit ``a`` (tens, left) and digit
  ``b`` (units, right) side by side, ``8 x (16 + gap)`` grayscale uint8, with
  ``gap`` (option, default 0) black columns between them. Pixels are those of
  the ``digits`` source (``round(v * 255 / 16)``).
* Split first, then compose: the 1,797 digit images are split per digit class
  exactly as the ``digits`` source splits them (dataset order, the first
  ``ceil(train_ratio * n)`` train, option ``train_ratio``, default 0.8), and a
  pair only ever joins two images of the same split, so no digit image of a
  test pair appears in any training pair.
* Pairs per class and split: options ``per_class_train`` (default 150) and
  ``per_class_test`` (default 30) distinct ordered pairs ``(i, j)`` (``i != j``
  for ``"aa"``), drawn without replacement from all possible pairs by a
  permutation seeded by ``SeedSequence(seed, spawn_key=(split, class))`` (split
  0 train, 1 test; option ``seed``, default 0). The draw of a class and split
  does not depend on the other counts, and a larger count only appends pairs.
* Order: every training image (class 00 to 99, each in draw order), then every
  test image.
* Source ids ``"digitpairs/<i>-<j>"``: ``i`` and ``j`` the 0-based indices in
  ``load_digits()`` of the left and right digit, zero-padded to 4 digits. The
  pair of indices fixes the class and the split, so an id names one image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.rgb import RGB_SOURCES, RGBError, RGBSet, check_ratio, no_options
from tmkt_data.rgb import digits as _digits

CLASSES = [f"{a}{b}" for a in range(10) for b in range(10)]
SPLITS = ("train", "test")


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise RGBError(f"digitpairs: {name} {value!r}, expected an integer >= 0")
    return int(value)


def draw_pairs(left: np.ndarray, right: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct ordered pairs ``(left[k], right[m])`` (no pair of one image with itself), shape (n, 2).

    All ``len(left) * len(right)`` pairs are permuted by ``rng`` and the first
    ``n`` valid ones kept, so a larger ``n`` keeps the pairs of a smaller one.
    """
    order = rng.permutation(len(left) * len(right))
    pairs = np.stack([left[order // len(right)], right[order % len(right)]], axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if n > len(pairs):
        raise RGBError(f"digitpairs: {n} pairs asked, expected at most the {len(pairs)} distinct pairs")
    return pairs[:n]


@RGB_SOURCES.register("digitpairs")
def load(
    root: str | Path | None = None,
    *,
    per_class_train: int = 150,
    per_class_test: int = 30,
    seed: int = 0,
    gap: int = 0,
    train_ratio: float = 0.8,
    **options: Any,
) -> RGBSet:
    """Two-digit images ``8 x (16 + gap)`` uint8, classes ``"00"``..``"99"`` (see the module docstring)."""
    no_options("digitpairs", options)
    counts = {
        "train": _count("per_class_train", per_class_train),
        "test": _count("per_class_test", per_class_test),
    }
    seed = _count("seed", seed)
    gap = _count("gap", gap)
    ratio = check_ratio("digitpairs", train_ratio)
    base = _digits.load(None, train_ratio=ratio)
    split = np.asarray(base.split)
    blocks: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    splits: list[str] = []
    for s, sp in enumerate(SPLITS):
        pools = [np.flatnonzero((base.labels == d) & (split == sp)) for d in range(10)]
        for c in range(len(CLASSES)):
            a, b = divmod(c, 10)
            available = len(pools[a]) * (len(pools[b]) - (1 if a == b else 0))
            if counts[sp] > available:
                raise RGBError(
                    f"digitpairs: per_class_{sp}={counts[sp]} for class {CLASSES[c]!r}, expected at most "
                    f"its {available} distinct {sp} pairs"
                )
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(s, c)))
            blocks.append(draw_pairs(pools[a], pools[b], counts[sp], rng))
            labels.append(np.full(counts[sp], c, dtype=np.int64))
            splits += [sp] * counts[sp]
    pairs = np.concatenate(blocks) if blocks else np.empty((0, 2), np.int64)
    left, right = base.images[pairs[:, 0]], base.images[pairs[:, 1]]
    space = np.zeros((len(pairs), 8, gap), dtype=np.uint8)
    images = np.ascontiguousarray(np.concatenate([left, space, right], axis=2))
    ids = [f"digitpairs/{i:04d}-{j:04d}" for i, j in pairs.tolist()]
    info = {
        "split": {
            "kind": "digit images split per class (as the digits source), then paired within each split",
            "train_ratio": ratio,
        },
        "composition": f"tens digit left, units digit right, {gap} black column(s) between, 8x{16 + gap}",
        "pairs": {"per_class_train": counts["train"], "per_class_test": counts["test"], "seed": seed,
                  "draw": "permutation of all ordered pairs, SeedSequence(seed, spawn_key=(split 0/1, class))"},
        "source": "sklearn.datasets.load_digits (UCI optdigits, 8x8, values 0..16 scaled to 0..255)",
        "ignored_root": None if root in (None, "", "-") else str(root),
    }  # fmt: skip
    return RGBSet("digitpairs", None, images, np.concatenate(labels), CLASSES, ids, splits, info)
