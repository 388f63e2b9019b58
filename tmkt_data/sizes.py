"""Sizes given by a person: one parser per axis order, named after it.

A size is written ``S`` (square), ``"A,B"``, ``"AxB"`` or ``[A, B]``. Sensors and simulator
renders are (width, height), as event cameras report them (:func:`parse_size_wh`: ``--sensor``,
``--render``, the layout option ``sensor_size``); stored frames are (height, width), as arrays
are indexed (:func:`parse_size_hw`: ``tmkt-data convert --size``, a recipe's ``[convert] size``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tmkt_data.errors import TmktError


class SizeError(TmktError, ValueError):
    """A size is not S or two positive integers."""


def as_count(value: Any) -> int | None:
    """A non-negative integer from an int or a digit string, else None (a bool is not a count)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value) if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _two_sizes(value: Any, what: str, order: str, error: type[TmktError]) -> tuple[int, int]:
    if isinstance(value, str):
        parts: list[Any] = value.replace("x", ",").split(",")
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        parts = [value]
    vals = [as_count(p) for p in parts]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or any(v is None or v < 1 for v in vals):
        raise error(f"{what} {value!r}: expected S or {order} with positive integers")
    return int(vals[0]), int(vals[1])  # type: ignore[arg-type]


def parse_size_wh(value: Any, what: str = "size", *, error: type[TmktError] = SizeError) -> tuple[int, int]:
    """``34`` or ``"34"`` -> (34, 34); ``[W, H]``, ``"W,H"`` or ``"WxH"`` -> (W, H).

    Raises:
        error: anything else, or a size below 1 (one line naming ``what``).
    """
    return _two_sizes(value, what, "W,H", error)


def parse_size_hw(value: Any, what: str = "size", *, error: type[TmktError] = SizeError) -> tuple[int, int]:
    """``48`` or ``"48"`` -> (48, 48); ``[H, W]``, ``"H,W"`` or ``"HxW"`` -> (H, W).

    Raises:
        error: anything else, or a size below 1 (one line naming ``what``).
    """
    return _two_sizes(value, what, "H,W", error)


__all__ = ["SizeError", "as_count", "parse_size_hw", "parse_size_wh"]
