"""A tiny spiking CNN that trains in minutes on a CPU (the demo pipeline and tests).

Architecture (any input size >= 8; 2 x 32 x 32 is the intended one):

    conv 3x3, C -> 16 + BN + LIF -> AvgPool 2
    conv 3x3, 16 -> 32 + BN + LIF -> AvgPool 2
    AdaptiveAvgPool to 4 x 4 -> flatten 32 * 16 = 512 -> heads Linear(512, classes)

About 5 k trunk parameters. ``pooled`` is the last map's spatial mean
``(T, B, 32)``; ``features`` the second conv's LIF output ``(T, B, 32, H/2, W/2)``
(membrane potential with ``feature_source="membrane"``).
"""

from __future__ import annotations

from torch import Tensor, nn

from tmkt_train.models.base import (
    MODELS,
    ConvBNLIF,
    LIFParams,
    SpikingClassifier,
    TrunkOutput,
    check_feature_source,
    neuron_params,
)
from tmkt_train.neurons import fold_time

__all__ = ["DemoNet", "DemoTrunk", "demo"]


class DemoTrunk(nn.Module):
    """Two conv + BN + LIF + pool stages and a fixed-size adaptive pool."""

    def __init__(
        self,
        in_channels: int,
        neuron: LIFParams,
        channels: tuple[int, int] = (16, 32),
        out_side: int = 4,
        feature_source: str = "spikes",
    ):
        super().__init__()
        check_feature_source(feature_source)
        self.feature_source = feature_source
        c1, c2 = channels
        self.block1 = ConvBNLIF(in_channels, c1, neuron)
        self.pool1 = fold_time(nn.AvgPool2d(2))
        self.block2 = ConvBNLIF(c1, c2, neuron, record_v=feature_source == "membrane")
        self.pool2 = fold_time(nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(out_side))
        self.out_channels = c2
        self.out_side = out_side

    def forward(self, x: Tensor) -> TrunkOutput:
        if x.shape[-1] < 8 or x.shape[-2] < 8:
            raise ValueError(f"demo net needs inputs of at least 8 x 8, got {tuple(x.shape[-2:])}")
        f = self.block2(self.pool1(self.block1(x)))
        feats = self.block2.lif.last_v if self.feature_source == "membrane" else f
        y = self.pool2(f)
        return TrunkOutput(y.flatten(2), y.mean(dim=(-2, -1)), feats)


class DemoNet(SpikingClassifier):
    """Tiny classifier for CPU demos."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 2,
        channels: tuple[int, int] = (16, 32),
        feature_source: str = "spikes",
        shared_head: bool = False,
        aux_heads: bool = True,
        neuron: LIFParams | None = None,
        **neuron_kw,
    ):
        neuron = neuron_params("demo", neuron, neuron_kw)
        trunk = DemoTrunk(in_channels, neuron, channels=channels, feature_source=feature_source)
        super().__init__(
            trunk,
            flat_dim=trunk.out_channels * trunk.out_side**2,
            pooled_dim=trunk.out_channels,
            num_classes=num_classes,
            shared_head=shared_head,
            aux_heads=aux_heads,
        )


@MODELS.register("demo")
def demo(num_classes: int, in_channels: int = 2, **kw) -> DemoNet:
    """Registry constructor of :class:`DemoNet`."""
    return DemoNet(num_classes, in_channels=in_channels, **kw)
