"""Tests of tmkt_train.losses against hand computations and an explicit-matrix numpy CKA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tmkt_train.losses import (
    StepWeights,
    ce_mean_loss,
    cka_loss,
    linear_cka,
    mag_loss,
    mrp_loss,
    step_weighted_ce,
    tet_loss,
)

# ---------------------------------------------------------------- CKA


def numpy_cka(x, y):
    """Kornblith et al.: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with H = I - 11^T/n."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def test_cka_matches_explicit_formula():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = torch.randn(9, 3, 4, generator=g, dtype=torch.float64)
        y = torch.randn(9, 7, generator=g, dtype=torch.float64) + x.reshape(9, -1)[:, :7]
        assert linear_cka(x, y).item() == pytest.approx(numpy_cka(x, y), abs=1e-6)


def test_cka_identity_scaling_orthogonal():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 10, generator=g)
    assert linear_cka(x, x).item() == pytest.approx(1.0, abs=1e-5)
    for s in [1e-2, 3.0, 100.0]:
        assert linear_cka(x, s * x).item() == pytest.approx(1.0, abs=1e-5)
    q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g))
    assert linear_cka(x, x @ q).item() == pytest.approx(1.0, abs=1e-5)
    y = torch.randn(16, 6, generator=g)
    base = linear_cka(x, y).item()
    q6, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert linear_cka(2.5 * x @ q, y @ q6).item() == pytest.approx(base, abs=1e-5)
    # a per-feature offset is removed by the centring
    assert linear_cka(x + 4.0, y).item() == pytest.approx(base, abs=1e-5)


def test_cka_in_unit_interval():
    g = torch.Generator().manual_seed(2)
    for _ in range(50):
        b = int(torch.randint(3, 12, (1,), generator=g))
        x = torch.randn(b, 5, generator=g)
        y = torch.randn(b, 8, generator=g)
        c = linear_cka(x, y).item()
        assert -1e-6 <= c <= 1 + 1e-6
    spikes = (torch.rand(10, 30, generator=g) < 0.2).float()
    assert 0 <= linear_cka(spikes, spikes.roll(1, 0)).item() <= 1


def test_constant_features_give_zero_cka_and_finite_grad():
    x = torch.zeros(4, 6, requires_grad=True)
    y = torch.randn(4, 6)
    c = linear_cka(x, y)
    assert c.item() == 0.0
    c.backward()
    assert torch.isfinite(x.grad).all()


def test_cka_loss():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(3, 5, 2, 4, generator=g)
    assert cka_loss(a, a).item() == pytest.approx(0.0, abs=1e-5)
    b = torch.randn(3, 5, 2, 4, generator=g)
    per_t = torch.stack([1 - linear_cka(a[t], b[t]) for t in range(3)])
    assert cka_loss(a, b).item() == pytest.approx(per_t.mean().item(), abs=1e-6)
    w = torch.tensor([0.2, 0.5, 0.9])
    assert cka_loss(a, b, w).item() == pytest.approx((w * per_t).mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match="step weights"):
        cka_loss(a, b, torch.ones(2))
    with pytest.raises(ValueError, match="differ"):
        cka_loss(a, b[:, :4])


# ---------------------------------------------------------------- MAG, MRP


def test_mag_loss_hand_values():
    z = torch.tensor([[0.0, 2.0], [-1.0, 0.5], [3.0, -2.0]])  # (T=3, B=2)
    m = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])  # (B=2, T=3)

    def bce(zz, yy):
        s = 1 / (1 + math.exp(-zz))
        return -(yy * math.log(s) + (1 - yy) * math.log(1 - s))

    expect = sum(bce(z[t, b].item(), m[b, t].item()) for t in range(3) for b in range(2)) / 6
    assert mag_loss(z, m).item() == pytest.approx(expect, rel=1e-6)
    with pytest.raises(ValueError, match="MAG"):
        mag_loss(z, m.t())


def test_mrp_loss_hand_values():
    z = torch.tensor([0.0, 1.0, -2.0])
    rho = torch.tensor([0.5, 0.2, 0.0])
    s = [1 / (1 + math.exp(-v)) for v in z.tolist()]
    mse = sum((si - ri) ** 2 for si, ri in zip(s, rho.tolist(), strict=True)) / 3
    bce = (
        -sum(ri * math.log(si) + (1 - ri) * math.log(1 - si) for si, ri in zip(s, rho.tolist(), strict=True))
        / 3
    )
    assert mrp_loss(z, rho).item() == pytest.approx(mse, rel=1e-6)
    assert mrp_loss(z, rho, kind="bce").item() == pytest.approx(bce, rel=1e-6)
    with pytest.raises(ValueError, match="kind"):
        mrp_loss(z, rho, kind="l1")


# ---------------------------------------------------------------- TET and CE


def manual_tet(logits, y, lam, phi, convex=True, w=None):
    """He et al.'s loop: per-step CE and MSE-to-phi, each weighted, averaged over T."""
    T = logits.shape[0]
    w = torch.ones(T) if w is None else w
    first = sum(w[t] * F.cross_entropy(logits[t], y) for t in range(T)) / T
    second = sum(w[t] * F.mse_loss(logits[t], torch.full_like(logits[t], phi)) for t in range(T)) / T
    return ((1 - lam) if convex else 1.0) * first + lam * second


def test_tet_against_manual_loop():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(4, 5, 7, generator=g)
    y = torch.randint(0, 7, (5,), generator=g)
    assert tet_loss(logits, y).item() == pytest.approx(manual_tet(logits, y, 1e-3, 0.5).item(), rel=1e-6)
    got = tet_loss(logits, y, lambda_tet=0.05, phi=1.0, convex=False).item()
    assert got == pytest.approx(manual_tet(logits, y, 0.05, 1.0, convex=False).item(), rel=1e-6)
    w = torch.tensor([0.1, 0.4, 0.6, 0.9])
    got = tet_loss(logits, y, lambda_tet=0.2, step_weights=w).item()
    assert got == pytest.approx(manual_tet(logits, y, 0.2, 0.5, w=w).item(), rel=1e-6)
    # lambda 0: plain mean of per-step CE
    ce_loop = sum(F.cross_entropy(logits[t], y) for t in range(4)) / 4
    assert tet_loss(logits, y, lambda_tet=0.0).item() == pytest.approx(ce_loop.item(), rel=1e-6)


def test_ce_mean_and_step_weighted_ce():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, 6, generator=g)
    y = torch.randint(0, 6, (4,), generator=g)
    assert ce_mean_loss(logits, y).item() == pytest.approx(
        F.cross_entropy(logits.mean(0), y).item(), rel=1e-6
    )
    sw = StepWeights(3)
    w = sw.dvs_weights()
    assert torch.allclose(w, torch.full((3,), 1 - 1 / (1 + math.exp(-1.0))))
    expect = sum(w[t] * F.cross_entropy(logits[t], y) for t in range(3)) / 3
    assert step_weighted_ce(logits, y, w).item() == pytest.approx(expect.item(), rel=1e-6)
    with pytest.raises(ValueError, match="logits"):
        tet_loss(logits[0], y)


def test_step_weights_learnable():
    sw = StepWeights(4)
    assert torch.allclose(sw(), torch.sigmoid(torch.ones(4)))
    assert torch.allclose(sw.cka_weights() + sw.dvs_weights(), torch.ones(4))
    g = torch.Generator().manual_seed(6)
    a, b = torch.randn(4, 6, 5, generator=g), torch.randn(4, 6, 5, generator=g)
    logits, y = torch.randn(4, 6, 3, generator=g), torch.randint(0, 3, (6,), generator=g)
    loss = cka_loss(a, b, sw.cka_weights()) + tet_loss(logits, y, step_weights=sw.dvs_weights())
    loss.backward()
    assert sw.c.grad is not None and torch.all(sw.c.grad != 0)
