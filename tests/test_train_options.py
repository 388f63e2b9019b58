"""Training options taken from He et al.'s reference code: weight-decay groups, batch-norm recalibration."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tmkt_train.config import make_config
from tmkt_train.losses import StepWeights
from tmkt_train.models import create_model
from tmkt_train.trainer import make_optimizer, recalibrate_bn


@pytest.mark.parametrize("decay_1d", [False, True])
def test_weight_decay_skips_1d_parameters_and_step_weights(decay_1d: bool) -> None:
    """With zero gradients an AdamW step only applies the decoupled decay p <- p (1 - lr wd)."""
    torch.manual_seed(0)
    model = create_model("demo", 5)
    sw = StepWeights(4)
    with torch.no_grad():  # make every parameter non-zero so that decay would show
        for p in [*model.parameters(), *sw.parameters()]:
            p.add_(0.5)
    cfg = make_config(lr=0.1, weight_decay=0.2, decay_1d=decay_1d)
    opt = make_optimizer(cfg, model, sw)
    named = [*model.named_parameters(), *(("sw." + n, p) for n, p in sw.named_parameters())]
    before = {n: p.detach().clone() for n, p in named}
    for _, p in named:
        p.grad = torch.zeros_like(p)
    opt.step()
    factor = 1 - 0.1 * 0.2
    one_d = {n for n, p in named if p.ndim == 1}
    # BN weights and biases, linear and head biases, MAG/MRP biases and c_t are the 1-D ones
    assert "sw.c" in one_d and "trunk.block1.op.module.1.weight" in one_d and "heads.dvs.bias" in one_d
    for n, p in named:
        decayed = decay_1d or n not in one_d
        want = before[n] * factor if decayed else before[n]
        torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-7, msg=n)


def _batches(x: torch.Tensor, size: int) -> list[dict[str, torch.Tensor]]:
    return [{"frames": x[i : i + size]} for i in range(0, len(x), size)]


def test_bn_recalibration_gives_exact_event_statistics() -> None:
    torch.manual_seed(1)
    model = create_model("demo", 3)
    x = (torch.rand(12, 3, 2, 16, 16) * 3).round()  # (B, T, 2, H, W) event counts
    cfg = make_config()
    model.eval()
    # several batches: the first batch norm's input (conv1 of the frames) does not depend on any
    # other normalisation, so its statistics are those of all 12 samples, computed here with numpy
    n = recalibrate_bn(model, _batches(x, 5), torch.device("cpu"), cfg)
    assert n == 12 and not model.training  # the mode is restored
    conv = model.trunk.block1.op.module[0]
    bn = model.trunk.block1.op.module[1]
    w = conv.weight.detach().double().numpy()
    frames = x.flatten(0, 1).double().numpy()  # (36, 2, 16, 16)
    padded = np.pad(frames, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((frames.shape[0], w.shape[0], 16, 16))
    for dy in range(3):
        for dx in range(3):
            y += np.einsum("nchw,oc->nohw", padded[:, :, dy : dy + 16, dx : dx + 16], w[:, :, dy, dx])
    per_channel = y.transpose(1, 0, 2, 3).reshape(w.shape[0], -1)
    np.testing.assert_allclose(bn.running_mean.double().numpy(), per_channel.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.double().numpy(), per_channel.var(1, ddof=1), rtol=1e-5)

    # one batch holding everything: every layer equals torch's own cumulative batch-norm estimate
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, that batch's mean and unbiased var
    ref.train()
    with torch.no_grad():
        ref(x)
    recalibrate_bn(model, _batches(x, 12), torch.device("cpu"), cfg)
    pairs = [
        (a, b)
        for a, b in zip(model.modules(), ref.modules(), strict=True)
        if isinstance(a, torch.nn.BatchNorm2d)
    ]
    assert len(pairs) == 2
    for a, b in pairs:
        torch.testing.assert_close(a.running_mean, b.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-5, atol=1e-6)


def test_bn_recalibration_without_batch_norm_is_a_no_op() -> None:
    model = create_model("scnn", 4)  # no batch norm, as in the reference
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 2, 2, 28, 28)
    assert recalibrate_bn(model, _batches(x, 2), torch.device("cpu"), make_config()) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
