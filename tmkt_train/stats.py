"""Paired comparisons of training runs over seeds: per-seed differences and t intervals.

Two methods trained with the same seeds on the same data are compared seed by seed
(``a - b`` for every seed both have), which removes the share of the variance that
the seed causes in both. The interval is Student's t on the per-seed differences::

    mean +- t(0.975, n - 1) * sd / sqrt(n)

Accuracies are fractions in [0, 1]; differences are reported in percentage points.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

__all__ = ["PairedDifference", "mean_interval", "paired_difference", "reading"]


def _t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its 95 % t interval (NaN bounds for one value)."""
    if not values:
        raise ValueError("no values")
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, math.nan, math.nan
    half = _t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over the seeds both have, in percentage points."""

    a: str
    b: str
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    mean: float
    low: float
    high: float

    @property
    def n(self) -> int:
        return len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "seeds": list(self.seeds), "per_seed": list(self.per_seed),
                "mean": self.mean, "ci95": [self.low, self.high]}  # fmt: skip

    def text(self) -> str:
        """``"tmkt - scratch: +3.10 points (95 % CI +1.20 to +5.00, 5 seeds)"``."""
        ci = "" if math.isnan(self.low) else f"95 % CI {self.low:+.2f} to {self.high:+.2f}, "
        return f"{self.a} - {self.b}: {self.mean:+.2f} points ({ci}{self.n} seed{'s' * (self.n != 1)})"


def paired_difference(
    rows: list[dict[str, Any]], a: str, b: str, key: str = "test_acc_at_best", by: str = "run"
) -> PairedDifference | None:
    """Per-seed ``rows[a][key] - rows[b][key]`` (in points) for the seeds both runs have.

    ``rows`` are result rows with ``by`` (the run's name), ``seed`` and ``key``; None when
    the two share no seed.
    """

    def values(name: str) -> dict[int, float]:
        return {int(r["seed"]): float(r[key]) for r in rows if r.get(by) == name and r.get(key) is not None}

    va, vb = values(a), values(b)
    seeds = tuple(sorted(set(va) & set(vb)))
    if not seeds:
        return None
    diffs = tuple(100.0 * (va[s] - vb[s]) for s in seeds)
    m, lo, hi = mean_interval(list(diffs))
    return PairedDifference(a, b, seeds, diffs, m, lo, hi)


def reading(d: PairedDifference) -> str:
    """One plain sentence on what the interval says (no claim from a single seed)."""
    if d.n < 2:
        return f"{d.a} vs {d.b}: one seed only, no conclusion."
    if d.low > 0:
        return f"{d.a} is better than {d.b} here (the whole 95 % interval is above zero)."
    if d.high < 0:
        return f"{d.a} is worse than {d.b} here (the whole 95 % interval is below zero)."
    return f"{d.a} and {d.b} are not distinguishable here with {d.n} seeds (the 95 % interval includes zero)."
