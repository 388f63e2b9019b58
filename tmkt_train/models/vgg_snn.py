"""VGG-SNN (docs/method.md section 6), as in He et al.'s ``Transfer_VGG_SNN``.

Trunk: conv 64, 128, pool, 256, 256, pool, 512, 512, pool, 512, 512, pool; each
conv is 3x3 (padding 1, no bias) + BatchNorm + LIF; the pools are
``AvgPool2d(2)`` as in the reference code (``pool="max"`` is an option). At
48 x 48 input the last map is 512 x 3 x 3 and the heads are
``Linear(512 * 3 * 3, classes)``.

Outputs: ``pooled`` is the last (pooled) 512 x 3 x 3 map averaged over space,
``(T, B, 512)``; ``features`` is the output of the last conv's LIF before the
last pool, ``(T, B, 512, 6, 6)`` at 48 x 48 (the layer whose state the
reference aligns with CKA). ``feature_source="membrane"`` returns that LIF's
membrane potential after reset instead of its spikes, which is what the
reference code feeds to CKA (``feature[-2].node.mem``).
"""

from __future__ import annotations

from torch import Tensor, nn

from tmkt_train.models.base import (
    MODELS,
    ConvBNLIF,
    LIFParams,
    ModelError,
    SpikingClassifier,
    TrunkOutput,
    check_feature_source,
    neuron_params,
)
from tmkt_train.neurons import fold_time

__all__ = ["VGGSNN", "VGGTrunk", "vgg_snn"]

# Channel plan; "P" is a 2 x 2 pool.
VGG_PLAN = (64, 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P")


class VGGTrunk(nn.Module):
    """The VGG-SNN feature extractor on ``(T, B, C, H, W)``."""

    def __init__(
        self,
        in_channels: int,
        neuron: LIFParams,
        plan=VGG_PLAN,
        pool: str = "avg",
        feature_source: str = "spikes",
    ):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ModelError(f"pool must be 'avg' or 'max', got {pool!r}")
        check_feature_source(feature_source)
        self.feature_source = feature_source
        convs = [i for i, c in enumerate(plan) if c != "P"]
        last_conv = convs[-1]
        layers = []
        c_in = in_channels
        for i, c in enumerate(plan):
            if c == "P":
                layers.append(fold_time(nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2)))
            else:
                rec = i == last_conv and feature_source == "membrane"
                layers.append(ConvBNLIF(c_in, c, neuron, kernel_size=3, record_v=rec))
                c_in = c
        self.layers = nn.ModuleList(layers)
        self.last_conv = last_conv
        self.out_channels = c_in
        self.n_pools = sum(1 for c in plan if c == "P")

    def forward(self, x: Tensor) -> TrunkOutput:
        feats = x
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == self.last_conv:
                feats = layer.lif.last_v if self.feature_source == "membrane" else x
        pooled = x.mean(dim=(-2, -1))
        return TrunkOutput(x.flatten(2), pooled, feats)


class VGGSNN(SpikingClassifier):
    """VGG-SNN classifier; ``input_size`` (default 48) fixes the head width."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 2,
        input_size: int = 48,
        pool: str = "avg",
        feature_source: str = "spikes",
        shared_head: bool = False,
        aux_heads: bool = True,
        neuron: LIFParams | None = None,
        **neuron_kw,
    ):
        neuron = neuron_params("vgg_snn", neuron, neuron_kw)
        trunk = VGGTrunk(in_channels, neuron, pool=pool, feature_source=feature_source)
        div = 2**trunk.n_pools
        if input_size < div:
            raise ModelError(f"vgg_snn: input_size must be >= {div}, got {input_size}")
        side = input_size // div
        super().__init__(
            trunk,
            flat_dim=trunk.out_channels * side * side,
            pooled_dim=trunk.out_channels,
            num_classes=num_classes,
            shared_head=shared_head,
            aux_heads=aux_heads,
        )
        self.input_size = input_size


@MODELS.register("vgg_snn")
def vgg_snn(num_classes: int, in_channels: int = 2, **kw) -> VGGSNN:
    """Registry constructor of :class:`VGGSNN`."""
    return VGGSNN(num_classes, in_channels=in_channels, **kw)
