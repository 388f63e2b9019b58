"""The per-class train/test split by ratio, one function for both sides of a pair.

The dataset layouts (:mod:`tmkt_data.layouts`) and the RGB sources (:mod:`tmkt_data.rgb`) split
a class of ``n`` name-sorted items the same way, so an event sample and the image it was made
from land in the same split.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any


def check_train_ratio(name: str, value: Any, default: float | None, error: type[Exception]) -> float:
    """``value`` (None: ``default``, when there is one) as a train fraction in (0, 1]; otherwise
    one line ``error`` naming ``name`` (a layout or RGB source) and the value."""
    if value is None and default is not None:
        return float(default)
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        ratio = float("nan")
    if not 0.0 < ratio <= 1.0:
        raise error(f"{name}: train_ratio {value!r}, expected 0 < ratio <= 1")
    return ratio


def train_count(n: int, train_ratio: float) -> int:
    """``ceil(train_ratio * n)``, the product first rounded to 9 decimals.

    The rounding removes the float error that would push an exact product one above:
    ``0.55 * 100`` is ``55.00000000000001`` in floating point, and a plain ``ceil`` gives
    56 (spikingjelly's ``split_to_train_test_set`` does); this gives 55.
    """
    return math.ceil(round(train_ratio * n, 9))


def per_class_split(n: int, train_ratio: float) -> list[str]:
    """Split ``n`` name-sorted items of one class: the first :func:`train_count` train, the rest test."""
    n_train = train_count(n, train_ratio)
    return ["train"] * n_train + ["test"] * (n - n_train)


def split_within_groups(groups: Sequence[Hashable], train_ratio: float) -> list[str]:
    """:func:`per_class_split` applied within each group: item ``i`` belongs to group
    ``groups[i]``, and each group's items are split in the order they appear."""
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    out = [""] * len(groups)
    for rows in members.values():
        for i, sp in zip(rows, per_class_split(len(rows), train_ratio), strict=True):
            out[i] = sp
    return out


__all__ = ["per_class_split", "split_within_groups", "train_count"]
