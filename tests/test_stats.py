"""Paired run comparisons against hand-computed values."""

from __future__ import annotations

import math

import pytest

from tmkt_train.stats import mean_interval, paired_difference, reading


def _rows(name: str, accs: dict[int, float]) -> list[dict]:
    return [{"run": name, "seed": s, "test_acc_at_best": a} for s, a in accs.items()]


def test_interval_hand_computed() -> None:
    # values 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302652729911275
    m, lo, hi = mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert m == 2.0
    assert lo == pytest.approx(2.0 - half, abs=1e-9)
    assert hi == pytest.approx(2.0 + half, abs=1e-9)


def test_one_value_has_no_interval() -> None:
    m, lo, hi = mean_interval([0.5])
    assert m == 0.5 and math.isnan(lo) and math.isnan(hi)


def test_paired_uses_common_seeds_only() -> None:
    rows = _rows("tmkt", {1: 0.50, 2: 0.60, 3: 0.70, 9: 0.99}) + _rows("scratch", {1: 0.40, 2: 0.45, 3: 0.70})
    d = paired_difference(rows, "tmkt", "scratch")
    assert d is not None
    assert d.seeds == (1, 2, 3)
    assert d.per_seed == pytest.approx((10.0, 15.0, 0.0))
    assert d.mean == pytest.approx(25.0 / 3)
    sd = math.sqrt(((10 - 25 / 3) ** 2 + (15 - 25 / 3) ** 2 + (25 / 3) ** 2) / 2)
    assert d.high - d.mean == pytest.approx(4.302652729911275 * sd / math.sqrt(3))
    assert "3 seeds" in d.text()


def test_readings() -> None:
    up = paired_difference(
        _rows("a", {1: 0.6, 2: 0.7, 3: 0.65}) + _rows("b", {1: 0.5, 2: 0.6, 3: 0.56}), "a", "b"
    )
    down = paired_difference(_rows("a", {1: 0.4, 2: 0.5}) + _rows("b", {1: 0.5, 2: 0.61}), "a", "b")
    mixed = paired_difference(_rows("a", {1: 0.6, 2: 0.4}) + _rows("b", {1: 0.5, 2: 0.5}), "a", "b")
    assert "better" in reading(up)
    assert "worse" in reading(down)
    assert "not distinguishable" in reading(mixed)
    assert paired_difference(_rows("a", {1: 0.6}) + _rows("b", {2: 0.5}), "a", "b") is None
