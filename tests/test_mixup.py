"""Tests of tmkt_train.mixup: docs/method.md's check values, the truncated geometric law, fixed shapes."""

from __future__ import annotations

import math

import pytest
import torch

from tmkt_train.mixup import (
    RmSchedule,
    event_ratio,
    expected_event_ratio,
    replacement_probability,
    sliding_probability,
    sliding_replace,
    time_step_mixup,
)

# ---------------------------------------------------------------- replacement probability


@pytest.mark.parametrize(
    "r_m,T,p",
    [
        (0.1, 10, 0.0193),
        (0.3, 10, 0.0661),
        (0.5, 10, 0.1312),
        (0.7, 10, 0.2373),
        (0.9, 10, 0.4998),
        (0.5, 6, 0.1954),
        (0.5, 12, 0.1126),
    ],
)
def test_check_values(r_m, T, p):
    assert round(replacement_probability(r_m, T), 4) == p


def closed_form(p, T):
    q = 1 - p
    return 1 - q * (1 - q**T) / (p * T)


@pytest.mark.parametrize("T", [1, 2, 6, 10, 12, 40])
def test_ratio_matches_closed_form_and_inverts(T):
    for p in [1e-3, 0.01, 0.1, 0.3, 0.5, 0.9, 1.0]:
        assert expected_event_ratio(p, T) == pytest.approx(closed_form(p, T), abs=1e-12)
        # the normalized reading: the same mean conditioned on t* <= T (the naive
        # quotient loses digits to cancellation at small p, hence the looser bound)
        q = 1 - p
        assert expected_event_ratio(p, T, normalized=True) == pytest.approx(
            closed_form(p, T) / (1 - q**T), abs=1e-9
        )
    # exact at T = 2: r = (2 + q) / (2 (1 + q))
    q = 0.999
    assert expected_event_ratio(1 - q, 2, normalized=True) == pytest.approx(
        (2 + q) / (2 * (1 + q)), abs=1e-15
    )
    for r in [0.01, 0.2, 0.5, 0.77, 0.99]:
        p = replacement_probability(r, T)
        assert expected_event_ratio(p, T) == pytest.approx(r, abs=1e-8)


def test_monotone():
    ps = [replacement_probability(r / 100, 10) for r in range(0, 101)]
    assert all(a < b for a, b in zip(ps, ps[1:], strict=False))
    assert ps[0] == 0.0 and ps[-1] == 1.0
    rs = [expected_event_ratio(p / 200, 10) for p in range(201)]
    assert all(a < b for a, b in zip(rs, rs[1:], strict=False))


def test_normalized_floor_and_infeasible():
    T = 10
    floor = (T + 1) / (2 * T)
    assert expected_event_ratio(0.0, T, normalized=True) == pytest.approx(floor)
    assert replacement_probability(floor, T, normalized=True) == 0.0
    p = replacement_probability(0.7, T, normalized=True)
    assert expected_event_ratio(p, T, normalized=True) == pytest.approx(0.7, abs=1e-8)
    with pytest.raises(ValueError, match=r"unreachable.*0\.55"):
        replacement_probability(0.5, T, normalized=True)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_ratio_raises(bad):
    with pytest.raises(ValueError, match="r_m"):
        replacement_probability(bad, 10)


def test_bad_T_raises():
    with pytest.raises(ValueError, match="T"):
        replacement_probability(0.5, 0)


# ---------------------------------------------------------------- the law of K under time_step_mixup


def k_law(p, T, normalized=False):
    """P(K = k), k = 0..T: K = 0 w.p. q^T, K = k >= 1 w.p. p q^(T-k) (renormalised without K = 0)."""
    q = 1 - p
    probs = [q**T] + [p * q ** (T - k) for k in range(1, T + 1)]
    if normalized:
        z = 1 - q**T
        probs = [0.0] + [x / z for x in probs[1:]]
    return probs


@pytest.mark.parametrize("r_m,normalized", [(0.1, False), (0.5, False), (0.9, False), (0.7, True)])
def test_empirical_event_ratio(r_m, normalized):
    T, N = 10, 20000
    p = replacement_probability(r_m, T, normalized=normalized)
    g = torch.Generator().manual_seed(1234)
    x_rgb = torch.zeros(N, T, 1)
    x_dvs = torch.ones(N, T, 1)
    _, mask = time_step_mixup(x_rgb, x_dvs, p, generator=g, normalized=normalized)
    probs = k_law(p, T, normalized)
    mean = sum(k / T * pk for k, pk in enumerate(probs))
    var = sum((k / T) ** 2 * pk for k, pk in enumerate(probs)) - mean**2
    assert mean == pytest.approx(r_m, abs=1e-8)
    rho = event_ratio(mask)
    assert abs(rho.mean().item() - r_m) < 4 * math.sqrt(var / N)
    # the whole law of K, cell by cell (binomial 5-sigma bounds)
    K = mask.sum(1).round().long()
    counts = torch.bincount(K, minlength=T + 1).double() / N
    for k, pk in enumerate(probs):
        assert abs(counts[k].item() - pk) <= 5 * math.sqrt(pk * (1 - pk) / N) + 1e-12


@pytest.mark.parametrize("normalized", [False, True])
def test_masks_are_prefix_rgb_suffix_dvs(normalized):
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(500, 7, 1)
    _, mask = time_step_mixup(x, x + 1, 0.2, generator=g, normalized=normalized)
    assert mask.shape == (500, 7) and mask.dtype == torch.float32
    assert torch.all(mask[:, 1:] >= mask[:, :-1])
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    if normalized:
        assert torch.all(mask[:, -1] == 1)


def test_extreme_probabilities():
    x_rgb = torch.zeros(64, 5, 2, 3, 3)
    x_dvs = torch.ones(64, 5, 2, 3, 3)
    xm, m = time_step_mixup(x_rgb, x_dvs, 0.0)
    assert torch.all(m == 0) and torch.equal(xm, x_rgb)
    xm, m = time_step_mixup(x_rgb, x_dvs, 1.0)
    assert torch.all(m == 1) and torch.equal(xm, x_dvs)
    # per-sample p
    p = torch.tensor([0.0, 1.0]).repeat(32)
    xm, m = time_step_mixup(x_rgb, x_dvs, p)
    assert torch.all(m[0::2] == 0) and torch.all(m[1::2] == 1)
    # normalized with p = 0: t* uniform, never all RGB
    _, m = time_step_mixup(x_rgb, x_dvs, 0.0, normalized=True)
    assert torch.all(m[:, -1] == 1)


def test_values_come_from_the_right_source():
    B, T = 6, 8
    g = torch.Generator().manual_seed(7)
    x_rgb = -torch.rand(B, T, 2, 4, 4, generator=g) - 1  # in (-2, -1]
    x_dvs = torch.rand(B, T, 2, 4, 4, generator=g) + 1  # in [1, 2)
    xm, m = time_step_mixup(x_rgb, x_dvs, 0.3, generator=g)
    assert xm.shape == x_rgb.shape and xm.dtype == x_rgb.dtype
    for b in range(B):
        for t in range(T):
            src = x_dvs if m[b, t] == 1 else x_rgb
            assert torch.equal(xm[b, t], src[b, t])


def test_reproducible_with_generator_and_shape_checks():
    x = torch.zeros(4, 6, 1, 2, 2)
    a = time_step_mixup(x, x + 1, 0.3, generator=torch.Generator().manual_seed(5))[1]
    b = time_step_mixup(x, x + 1, 0.3, generator=torch.Generator().manual_seed(5))[1]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="shape"):
        time_step_mixup(x, torch.zeros(4, 5, 1, 2, 2), 0.3)
    with pytest.raises(ValueError, match="p must"):
        time_step_mixup(x, x, torch.zeros(3))


def test_integer_frames_give_float_mask():
    x = torch.zeros(3, 4, 2, dtype=torch.int16)
    xm, m = time_step_mixup(x, x + 5, 1.0)
    assert xm.dtype == torch.int16 and m.dtype == torch.float32 and torch.all(xm == 5)


# ---------------------------------------------------------------- sliding replacement and schedules


def test_sliding_probability_and_replace():
    assert sliding_probability(0.5) == 0.125
    assert sliding_probability(-1) == 0.0 and sliding_probability(2) == 1.0
    N, T = 20000, 3
    x_rgb = torch.zeros(N, T, 1)
    x_dvs = torch.ones(N, T, 1)
    x, m = sliding_replace(x_rgb, x_dvs, 0.0)
    assert torch.all(m == 0) and torch.equal(x, x_rgb)
    x, m = sliding_replace(x_rgb, x_dvs, 1.0)
    assert torch.all(m == 1) and torch.equal(x, x_dvs)
    g = torch.Generator().manual_seed(11)
    x, m = sliding_replace(x_rgb, x_dvs, 0.5, generator=g)
    assert m.shape == (N, T)
    # whole sequences: every row all-RGB or all-DVS, and values follow the mask
    assert torch.all(m.min(1).values == m.max(1).values)
    assert torch.equal(x[..., 0], m)
    frac = m[:, 0].mean().item()
    assert abs(frac - 0.125) < 4 * math.sqrt(0.125 * 0.875 / N)


def test_rm_schedules():
    c = RmSchedule("constant", 0.4)
    assert c(0.0) == c(0.7) == c(1.0) == 0.4
    lin = RmSchedule("linear", 0.2, 0.8)
    assert (
        lin(0.0) == pytest.approx(0.2) and lin(0.5) == pytest.approx(0.5) and lin(1.0) == pytest.approx(0.8)
    )
    cub = RmSchedule("cubic", 0.0, 1.0)
    assert cub(0.5) == pytest.approx(0.125) and cub(2.0) == pytest.approx(1.0) and cub(-1) == 0.0
    with pytest.raises(ValueError, match="schedule"):
        RmSchedule("exp", 0.1, 0.9)
    with pytest.raises(ValueError, match="r_end"):
        RmSchedule("linear", 0.1)
    with pytest.raises(ValueError, match="r_start"):
        RmSchedule("constant", 1.5)
