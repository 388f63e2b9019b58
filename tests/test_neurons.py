"""Tests of tmkt_train.neurons against hand-computed LIF traces and closed-form surrogate derivatives."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tmkt_train.neurons import LIF, fold_time, lif_multistep, lif_step, spike_fn


def seq(values, *shape) -> torch.Tensor:
    """A (T, *shape) float64 tensor with value values[t] at step t."""
    v = torch.tensor(values, dtype=torch.float64)
    return v.reshape(-1, *([1] * len(shape))).expand(-1, *shape).clone()


# ---------------------------------------------------------------- forward values


def test_constant_input_hard_reset_hand_values():
    # tau 2, threshold 0.5, reset 0, x = 0.6:
    # v: 0.3, 0.45, 0.525 -> spike -> 0, then the cycle repeats.
    x = seq([0.6] * 6, 2)
    s, v = lif_multistep(x, return_v=True)
    assert s[:, 0].tolist() == [0, 0, 1, 0, 0, 1]
    assert torch.allclose(v[:, 0], torch.tensor([0.3, 0.45, 0.0, 0.3, 0.45, 0.0], dtype=torch.float64))
    assert torch.equal(s[:, 0], s[:, 1])


def test_constant_input_soft_reset_hand_values():
    # soft reset subtracts the threshold: 0.525 -> 0.025; then 0.3125, 0.45625, 0.528125 -> 0.028125
    x = seq([0.6] * 6, 1)
    s, v = lif_multistep(x, v_reset=None, return_v=True)
    assert s[:, 0].tolist() == [0, 0, 1, 0, 0, 1]
    expect = [0.3, 0.45, 0.025, 0.3125, 0.45625, 0.028125]
    assert torch.allclose(v[:, 0], torch.tensor(expect, dtype=torch.float64))


def test_step_input_hand_values():
    # x = 1.2 for three steps: v = 0.6 each step (fires, resets to 0), then decays with x = 0.
    x = seq([0, 0, 1.2, 1.2, 1.2, 0, 0], 1)
    s, v = lif_multistep(x, return_v=True)
    assert s[:, 0].tolist() == [0, 0, 1, 1, 1, 0, 0]
    assert v[:, 0].tolist() == [0, 0, 0, 0, 0, 0, 0]
    # a sub-threshold pulse decays by half each step
    x = seq([0.8, 0, 0, 0], 1)
    s, v = lif_multistep(x, return_v=True)
    assert s.sum() == 0
    assert torch.allclose(v[:, 0], torch.tensor([0.4, 0.2, 0.1, 0.05], dtype=torch.float64))


def test_no_decay_input_and_nonzero_reset():
    # v <- v - (v - v_reset)/tau + x with v_reset = -0.1, x = 0.3, starting at -0.1:
    # v1 = -0.1 + 0.3 = 0.2; v2 = 0.2 - 0.15 + 0.3 = 0.35; v3 = 0.35 - 0.225 + 0.3 = 0.425;
    # v4 = 0.425 - 0.2625 + 0.3 = 0.4625; v5 = 0.48125; v6 = 0.490625 ... never reaches 0.5
    x = seq([0.3] * 4, 1)
    s, v = lif_multistep(x, v_reset=-0.1, decay_input=False, return_v=True)
    assert s.sum() == 0
    assert torch.allclose(v[:, 0], torch.tensor([0.2, 0.35, 0.425, 0.4625], dtype=torch.float64))
    # with x = 0.4: v1 = 0.3, v2 = 0.3 - 0.2 + 0.4 = 0.5 -> spike -> reset to -0.1
    x = seq([0.4] * 3, 1)
    s, v = lif_multistep(x, v_reset=-0.1, decay_input=False, return_v=True)
    assert s[:, 0].tolist() == [0, 1, 0]
    assert torch.allclose(v[:, 0], torch.tensor([0.3, -0.1, 0.3], dtype=torch.float64))


def test_decay_input_with_nonzero_reset():
    # v <- v + (x - (v - v_reset))/tau, v_reset = 0.1, x = 0.5, start 0.1: v1 = 0.1 + 0.25 = 0.35,
    # v2 = 0.35 + (0.5 - 0.25)/2 = 0.475, v3 = 0.475 + (0.5 - 0.375)/2 = 0.5375 -> spike -> 0.1
    x = seq([0.5] * 3, 1)
    s, v = lif_multistep(x, v_reset=0.1, return_v=True)
    assert s[:, 0].tolist() == [0, 0, 1]
    assert torch.allclose(v[:, 0], torch.tensor([0.35, 0.475, 0.1], dtype=torch.float64))


def test_threshold_equality_fires():
    # H(0) = 1 (spikingjelly's heaviside): x = 1 gives v = 0.5 exactly at the first step.
    s = lif_multistep(seq([1.0], 1))
    assert s.item() == 1.0


def reference_lif(x, tau, th, v_reset, decay_input):
    """Plain-Python scalar LIF, for random sequences."""
    out = []
    vr = 0.0 if v_reset is None else v_reset
    v = vr
    for xt in x:
        v = v + (xt - (v - vr)) / tau if decay_input else v - (v - vr) / tau + xt
        s = 1.0 if v >= th else 0.0
        v = v - s * th if v_reset is None else (v * (1 - s) + vr * s)
        out.append(s)
    return out


@pytest.mark.parametrize("v_reset", [0.0, None, -0.2])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("tau", [1.0, 2.0, 3.5])
def test_matches_scalar_reference(v_reset, decay_input, tau):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 5, generator=g, dtype=torch.float64) * 0.8
    s = lif_multistep(x, tau=tau, v_threshold=0.5, v_reset=v_reset, decay_input=decay_input)
    for j in range(5):
        ref = reference_lif(x[:, j].tolist(), tau, 0.5, v_reset, decay_input)
        assert s[:, j].tolist() == ref


def test_lif_step_matches_multistep_and_shapes():
    x = torch.rand(4, 2, 3, 5, 5)
    s = lif_multistep(x, surrogate="atan")
    v = torch.zeros_like(x[0])
    for t in range(4):
        st, v = lif_step(x[t], v, surrogate="atan")
        assert torch.equal(st, s[t])
    assert s.shape == x.shape and s.dtype == x.dtype
    assert set(s.unique().tolist()) <= {0.0, 1.0}


# ---------------------------------------------------------------- surrogate gradients


def qgate_grad(x, a):
    return torch.where(x.abs() < 1 / a, a - a * a * x.abs(), torch.zeros_like(x))


def sigmoid_grad(x, a):
    s = 1 / (1 + torch.exp(-a * x))
    return a * s * (1 - s)


def atan_grad(x, a):
    return a / 2 / (1 + (math.pi / 2 * a * x) ** 2)


@pytest.mark.parametrize(
    "name,formula,alphas",
    [
        ("qgate", qgate_grad, [2.0, 1.0, 5.0]),
        ("sigmoid", sigmoid_grad, [4.0, 1.0, 10.0]),
        ("atan", atan_grad, [2.0, 0.5, 7.0]),
    ],
)
def test_surrogate_gradients_closed_form(name, formula, alphas):
    x = torch.linspace(-2, 2, 801, dtype=torch.float64)
    for a in alphas:
        xg = x.clone().requires_grad_(True)
        y = spike_fn(xg, name, a)
        w = torch.linspace(0.5, 1.5, x.numel(), dtype=torch.float64)  # non-uniform upstream gradient
        (y * w).sum().backward()
        assert torch.allclose(xg.grad, formula(x, a) * w, atol=1e-12)
        assert torch.equal(y, (x >= 0).double())


def test_default_alphas():
    x = torch.tensor([0.1], dtype=torch.float64, requires_grad=True)
    for name, formula, a in [
        ("qgate", qgate_grad, 2.0),
        ("sigmoid", sigmoid_grad, 4.0),
        ("atan", atan_grad, 2.0),
    ]:
        x.grad = None
        spike_fn(x, name).sum().backward()
        assert torch.allclose(x.grad, formula(x.detach(), a))


def qgate_primitive(x, a):
    # the piecewise quadratic whose derivative is qgate_grad
    inner = -0.5 * a * a * x.abs() * x + a * x + 0.5
    return torch.where(x < -1 / a, torch.zeros_like(x), torch.where(x > 1 / a, torch.ones_like(x), inner))


def straight_through_lif(x, tau, th, detach_reset, a=2.0):
    """LIF whose spike is H(v - th) forward and d/dv qgate_primitive backward, via plain autograd."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        v = v + (x[t] - v) / tau
        g = qgate_primitive(v - th, a)
        s = (v - th >= 0).to(v.dtype) + (g - g.detach())
        r = s.detach() if detach_reset else s
        v = v * (1 - r)
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("detach_reset", [False, True])
def test_bptt_gradient_matches_autograd_reference(detach_reset):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(8, 40, generator=g, dtype=torch.float64)
    w = torch.randn(8, 40, generator=g, dtype=torch.float64)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    s1 = lif_multistep(x1, detach_reset=detach_reset)
    s2 = straight_through_lif(x2, 2.0, 0.5, detach_reset)
    assert torch.equal(s1, s2.detach())
    (s1 * w).sum().backward()
    (s2 * w).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-12)
    assert x1.grad.abs().sum() > 0


def test_detach_reset_changes_gradient_not_forward():
    x = torch.full((6, 1), 0.6, dtype=torch.float64)
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    sa = lif_multistep(xa, detach_reset=False)
    sb = lif_multistep(xb, detach_reset=True)
    assert torch.equal(sa, sb)
    sa.sum().backward()
    sb.sum().backward()
    assert not torch.allclose(xa.grad, xb.grad)


# ---------------------------------------------------------------- module, folding, errors


def test_module_matches_function_and_records_v():
    x = torch.rand(5, 3, 4)
    m = LIF(tau=3.0, v_threshold=0.4, v_reset=None, surrogate="sigmoid", record_v=True)
    s = m(x)
    s_ref, v_ref = lif_multistep(
        x, tau=3.0, v_threshold=0.4, v_reset=None, surrogate="sigmoid", return_v=True
    )
    assert torch.equal(s, s_ref) and torch.equal(m.last_v, v_ref)
    assert "surrogate=sigmoid(alpha=4.0)" in repr(m)


def test_fold_time_equals_per_step():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.rand(4, 2, 2, 6, 6)
    y = fold_time(conv)(x)
    assert y.shape == (4, 2, 3, 6, 6)
    for t in range(4):
        assert torch.allclose(y[t], conv(x[t]), atol=1e-6)
    y2 = fold_time(conv, nn.AvgPool2d(2))(x)
    assert y2.shape == (4, 2, 3, 3, 3)


def test_errors():
    x = torch.rand(3, 2)
    with pytest.raises(ValueError, match="surrogate"):
        lif_multistep(x, surrogate="nope")
    with pytest.raises(ValueError, match="tau"):
        lif_multistep(x, tau=0.5)
    with pytest.raises(ValueError, match="v_reset"):
        lif_multistep(x, v_reset=0.6, v_threshold=0.5)
    with pytest.raises(ValueError, match="alpha"):
        spike_fn(x, "qgate", -1.0)
