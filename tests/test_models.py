"""Tests of tmkt_train.models: registry, output shapes, heads, time handling, parameter counts."""

from __future__ import annotations

import pytest
import torch

from tmkt_train.models import ModelError, SNNOutput, create_model, list_models
from tmkt_train.neurons import LIF


def check_output(out, T, B, K, pooled_dim, features_shape):
    assert isinstance(out, SNNOutput)
    assert out.logits.shape == (T, B, K)
    assert out.pooled.shape == (T, B, pooled_dim)
    assert out.features.shape == (T, B, *features_shape)
    assert out.mag_logits.shape == (T, B)
    assert out.mrp_logit.shape == (B,)


def test_registry():
    assert {"vgg_snn", "resnet18", "scnn", "demo"} <= set(list_models())
    with pytest.raises(ModelError) as e:
        create_model("nope", 10)
    msg = str(e.value)
    assert "nope" in msg and all(n in msg for n in list_models())
    assert isinstance(e.value, ValueError)
    with pytest.raises(ModelError, match="bogus"):
        create_model("demo", 10, bogus=1)


def test_demo_shapes_backward_and_heads():
    torch.manual_seed(0)
    m = create_model("demo", 5)
    x = torch.rand(2, 3, 2, 32, 32) * 3
    out = m(x, head="mix")
    check_output(out, 3, 2, 5, 32, (32, 16, 16))
    loss = out.logits.sum() + out.mag_logits.sum() + out.mrp_logit.sum() + out.features.sum()
    loss.backward()
    trunk = [p for p in m.trunk.parameters()]
    assert all(p.grad is not None for p in trunk)
    assert m.heads["dvs"].weight.grad is None and m.heads["mix"].weight.grad is not None
    assert sum(p.numel() for p in m.parameters()) < 30_000
    # the two heads read the same trunk
    m.eval()
    with torch.no_grad():
        a, b, c = m(x, head="dvs"), m(x, head="mix"), m(x, head="rgb")
    assert torch.equal(a.pooled, b.pooled) and not torch.allclose(a.logits, b.logits)
    assert torch.equal(b.logits, c.logits)
    with pytest.raises(ValueError, match="head"):
        m(x, head="other")
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        m(x[0])


def test_shared_head_and_no_aux():
    m = create_model("demo", 4, shared_head=True, aux_heads=False).eval()
    x = torch.rand(2, 2, 2, 16, 16)
    with torch.no_grad():
        a, b = m(x, head="dvs"), m(x, head="mix")
    assert torch.equal(a.logits, b.logits)
    assert a.mag_logits is None and a.mrp_logit is None
    assert list(m.heads) == ["shared"]


def test_time_and_batch_handling():
    """Eval mode: samples do not interact, and step t never sees later steps (causality)."""
    torch.manual_seed(1)
    m = create_model("demo", 3, in_channels=1)
    x = torch.rand(2, 4, 1, 16, 16) * 3
    # calibrate the batch norms on this batch so that the eval-mode net spikes
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None
    with torch.no_grad():
        m(x)
    m.eval()
    with torch.no_grad():
        out = m(x)
        assert out.features.sum() > 0
        both = out.logits
        alone = m(x[1:]).logits
        assert torch.allclose(both[:, 1:], alone, atol=1e-6)
        y = x.clone()
        y[:, 2:] = torch.rand(2, 2, 1, 16, 16) * 3
        changed = m(y).logits
    assert torch.allclose(changed[:2], both[:2], atol=1e-6)
    assert not torch.allclose(changed[2:], both[2:])


def test_neuron_options_and_membrane_features():
    m = create_model("demo", 3, tau=3.0, surrogate="atan", v_threshold=0.3, feature_source="membrane")
    lifs = [mod for mod in m.modules() if isinstance(mod, LIF)]
    assert lifs and all(
        (lif.tau, lif.surrogate, lif.v_threshold, lif.alpha) == (3.0, "atan", 0.3, 2.0) for lif in lifs
    )
    out = m(torch.rand(2, 3, 2, 16, 16) * 3)
    assert out.features.shape == (3, 2, 32, 8, 8)
    assert not set(out.features.unique().tolist()) <= {0.0, 1.0}  # potentials, not spikes
    default = create_model("demo", 3)
    assert all(
        lif.detach_reset and lif.surrogate == "qgate" for lif in default.modules() if isinstance(lif, LIF)
    )
    with pytest.raises(ModelError, match="feature_source"):
        create_model("demo", 3, feature_source="nope")


@pytest.mark.parametrize("name", ["demo", "scnn", "vgg_snn", "resnet18"])
def test_lif_params_equal_the_neuron_keywords(name: str) -> None:
    """neuron=LIFParams(...) builds the same network (LIF settings, state-dict keys, weights) as keywords."""
    from tmkt_train.models import LIFParams

    kw = dict(tau=3.0, v_threshold=0.3, surrogate="atan", detach_reset=False)
    torch.manual_seed(0)
    a = create_model(name, 4, **kw)
    torch.manual_seed(0)
    b = create_model(name, 4, neuron=LIFParams(**kw))
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    lifs = [m for m in b.modules() if isinstance(m, LIF)]
    assert lifs and all(
        (m.tau, m.v_threshold, m.surrogate, m.detach_reset, m.v_reset) == (3.0, 0.3, "atan", False, 0.0)
        for m in lifs
    )
    defaults = [m for m in create_model(name, 4, neuron=LIFParams()).modules() if isinstance(m, LIF)]
    assert all(
        (m.tau, m.v_threshold, m.surrogate, m.detach_reset) == (2.0, 0.5, "qgate", True) for m in defaults
    )
    with pytest.raises(ModelError, match="not both"):
        create_model(name, 4, neuron=LIFParams(), tau=3.0)


def test_scnn():
    m = create_model("scnn", 7)
    out = m(torch.rand(2, 3, 2, 28, 28) * 3)
    check_output(out, 3, 2, 7, 300, (300,))
    out.logits.sum().backward()
    # conv 2->15 5x5 + conv 15->40 5x5 (no bias) + fc 640->300 + 2 heads + mag + mrp
    expect = 2 * 15 * 25 + 15 * 40 * 25 + (640 * 300 + 300) + 2 * (300 * 7 + 7) + 2 * 301
    assert sum(p.numel() for p in m.parameters()) == expect
    m2 = create_model("scnn", 7, features_from="conv2")
    assert m2(torch.rand(1, 2, 2, 28, 28)).features.shape == (2, 1, 40, 8, 8)


def test_vgg_snn():
    torch.manual_seed(2)
    K = 11
    m = create_model("vgg_snn", K)
    out = m(torch.rand(1, 2, 2, 48, 48) * 3, head="dvs")
    check_output(out, 2, 1, K, 512, (512, 6, 6))
    out.logits.sum().backward()
    assert m.trunk.layers[0].op.module[0].weight.grad is not None
    plan = [(2, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    convs = sum(9 * a * b + 2 * b for a, b in plan)  # 3x3 weights + BN affine
    heads = 2 * (512 * 3 * 3 * K + K) + 2 * (512 + 1)
    assert sum(p.numel() for p in m.parameters()) == convs + heads
    assert m.heads["dvs"].in_features == 512 * 3 * 3
    pools = [mod.module for mod in m.trunk.layers if not hasattr(mod, "lif")]
    assert len(pools) == 4 and all(isinstance(p, torch.nn.AvgPool2d) for p in pools)
    with pytest.raises(ValueError, match="input size"):
        m(torch.rand(1, 1, 2, 32, 32))


def test_resnet18():
    torch.manual_seed(3)
    m = create_model("resnet18", 20)
    out = m(torch.rand(1, 2, 2, 48, 48) * 3)
    check_output(out, 2, 1, 20, 512, (512, 6, 6))
    out.logits.sum().backward()
    n = sum(p.numel() for p in m.parameters())
    assert 11.0e6 < n < 11.4e6


def _membrane_reference(x: torch.Tensor, tau: float = 2.0, threshold: float = 0.5) -> torch.Tensor:
    """Plain LIF loop (charge, fire at v >= threshold, hard reset to 0): membrane after reset, (T, ...)."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        v = v + (x[t] - v) / tau
        s = (v >= threshold).to(x.dtype)
        v = v * (1 - s)
        out.append(v)
    return torch.stack(out)


# model, input side, options, the LIF whose membrane CKA reads ("membrane"; None: the final batch
# norm, pooled) and the layer whose spikes it reads ("spikes")
FEATURE_CASES = [
    ("demo", 16, {}, lambda m: m.trunk.block2.lif, lambda m: m.trunk.block2.lif),
    # layers[10]: the last conv of the plan 64, 128, P, 256, 256, P, 512, 512, P, 512, 512, P
    ("vgg_snn", 16, {"input_size": 16}, lambda m: m.trunk.layers[10].lif, lambda m: m.trunk.layers[10].lif),
    ("scnn", 28, {}, lambda m: m.trunk.lif_fc, lambda m: m.trunk.lif_fc),
    ("scnn", 28, {"features_from": "conv2"}, lambda m: m.trunk.block2.lif, lambda m: m.trunk.block2.lif),
    ("resnet18", 16, {"final_lif": True}, lambda m: m.trunk.final_lif, lambda m: m.trunk.final_lif),
    ("resnet18", 16, {}, None, lambda m: m.trunk.blocks[-1].lif2),
]


@pytest.mark.parametrize(("name", "side", "opts", "mem_layer", "spike_layer"), FEATURE_CASES)
def test_membrane_and_spike_features_of_every_model(name, side, opts, mem_layer, spike_layer):
    """feature_source="membrane" gives the CKA layer's membrane potential after reset (as the
    reference's ``node.mem``; for resnet18 without a final LIF the pooled final batch norm, the
    reference's analog readout), "spikes" the last spiking layer's spikes; checked against a
    plain LIF loop on the layer's recorded input."""
    torch.manual_seed(4)
    x = torch.rand(2, 3, 2, side, side) * 3
    feats = {}
    for source in ("membrane", "spikes"):
        torch.manual_seed(5)
        m = create_model(name, 5, feature_source=source, **opts)
        seen = {}
        pick = mem_layer if source == "membrane" else spike_layer
        target = m.trunk.bn if pick is None else pick(m)
        target.register_forward_hook(lambda mod, inp, out, seen=seen: seen.update(inp=inp[0], out=out))
        out = m(x)
        feats[source] = out.features
        if source == "spikes":
            want = seen["out"]
        elif pick is None:
            want = seen["out"].mean(dim=(-2, -1))
        else:
            want = _membrane_reference(seen["inp"].detach())
            if name == "resnet18":
                want = want.mean(dim=(-2, -1))
        torch.testing.assert_close(out.features.detach(), want.detach(), rtol=1e-5, atol=1e-6)
        if source == "membrane":
            out.features.sum().backward()  # CKA's gradient reaches the trunk through the potentials
            assert next(m.trunk.parameters()).grad is not None
    assert set(feats["spikes"].unique().tolist()) <= {0.0, 1.0}
    assert not set(feats["membrane"].unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ModelError, match="feature_source"):
        create_model(name, 5, feature_source="voltage", **opts)
