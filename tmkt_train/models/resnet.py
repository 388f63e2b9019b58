"""Spiking ResNet-18 for 48 x 48 event frames, as in He et al.'s ``Transfer_ResNet18``.

The reference (BrainCog's ``ResNet`` for DVS data) is a pre-activation network:

- stem: ``conv3x3(C_in, 64)``, stride 1, no BN/LIF (the first block starts with BN + LIF);
- four stages of two basic blocks, 64/128/256/512 channels, strides 1/2/2/2
  (48 -> 48 -> 24 -> 12 -> 6); a block is
  ``BN -> LIF -> conv3x3(stride) -> BN -> LIF -> conv3x3``, added to the identity
  or to the shortcut ``BN -> LIF -> conv1x1(stride)`` when the shape changes;
- a final BN, global average pooling and the linear heads (from 512).

All convs have no bias; convs get Kaiming-normal (fan_out) init, BNs weight 1 / bias 0.
The reference has no LIF after the final BN (its readout is analog);
``final_lif=True`` adds one.

Outputs: ``pooled`` is the final BN map's spatial mean ``(T, B, 512)`` (after
the LIF when ``final_lif``); the heads read ``pooled``. ``features`` (the CKA
input) depends on ``feature_source``:

- ``"spikes"`` (default): the last spiking layer's output, ``(T, B, 512, 6, 6)``
  at 48 x 48: the final LIF's spikes with ``final_lif``, otherwise the spikes of
  the last block's second LIF;
- ``"membrane"``: the analog state the reference aligns, ``(T, B, 512)``. The
  reference's ResNet has no neuron after its final BN and feeds the pooled BN
  output to CKA, so that is what this gives; with ``final_lif`` it is the
  final LIF's membrane potential after reset, pooled over space.
"""

from __future__ import annotations

from torch import Tensor, nn

from tmkt_train.models.base import (
    MODELS,
    LIFParams,
    SpikingClassifier,
    TrunkOutput,
    check_feature_source,
    make_lif,
    neuron_params,
)
from tmkt_train.neurons import fold_time

__all__ = ["PreActBlock", "ResNetTrunk", "SpikingResNet", "resnet18"]


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """Spiking pre-activation basic block on ``(T, B, C, H, W)``."""

    def __init__(self, c_in: int, c_out: int, stride: int, neuron: LIFParams):
        super().__init__()
        #: keep the second LIF's spikes of the last call in ``last_spikes`` (the CKA input)
        self.keep_spikes = False
        self.last_spikes: Tensor | None = None
        self.bn1 = fold_time(nn.BatchNorm2d(c_in))
        self.lif1 = make_lif(neuron)
        self.conv1 = fold_time(_conv3x3(c_in, c_out, stride))
        self.bn2 = fold_time(nn.BatchNorm2d(c_out))
        self.lif2 = make_lif(neuron)
        self.conv2 = fold_time(_conv3x3(c_out, c_out))
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                fold_time(nn.BatchNorm2d(c_in)),
                make_lif(neuron),
                fold_time(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)),
            )
        else:
            self.shortcut = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.lif1(self.bn1(x)))
        spikes = self.lif2(self.bn2(out))
        if self.keep_spikes:
            self.last_spikes = spikes
        out = self.conv2(spikes)
        identity = x if self.shortcut is None else self.shortcut(x)
        return out + identity


class ResNetTrunk(nn.Module):
    """Pre-activation spiking ResNet trunk; ``layers`` blocks per stage."""

    def __init__(
        self,
        in_channels: int,
        neuron: LIFParams,
        layers=(2, 2, 2, 2),
        width: int = 64,
        final_lif: bool = False,
        feature_source: str = "spikes",
    ):
        super().__init__()
        check_feature_source(feature_source)
        self.feature_source = feature_source
        self.stem = fold_time(_conv3x3(in_channels, width))
        blocks = []
        c = width
        for stage, n in enumerate(layers):
            c_out = width * 2**stage
            for j in range(n):
                stride = 2 if (stage > 0 and j == 0) else 1
                blocks.append(PreActBlock(c, c_out, stride, neuron))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = fold_time(nn.BatchNorm2d(c))
        mem = feature_source == "membrane"
        self.final_lif = make_lif(neuron, record_v=mem) if final_lif else None
        if self.final_lif is None and not mem:
            blocks[-1].keep_spikes = True
        self.out_channels = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> TrunkOutput:
        x = self.bn(self.blocks(self.stem(x)))
        if self.final_lif is not None:
            x = self.final_lif(x)
        pooled = x.mean(dim=(-2, -1))
        if self.feature_source == "membrane":
            feats = pooled if self.final_lif is None else self.final_lif.last_v.mean(dim=(-2, -1))
        else:
            feats = x if self.final_lif is not None else self.blocks[-1].last_spikes
        return TrunkOutput(pooled, pooled, feats)


class SpikingResNet(SpikingClassifier):
    """Spiking ResNet classifier (any input size: global average pooling before the heads)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 2,
        layers=(2, 2, 2, 2),
        width: int = 64,
        final_lif: bool = False,
        feature_source: str = "spikes",
        shared_head: bool = False,
        aux_heads: bool = True,
        neuron: LIFParams | None = None,
        **neuron_kw,
    ):
        neuron = neuron_params("resnet", neuron, neuron_kw)
        trunk = ResNetTrunk(
            in_channels,
            neuron,
            layers=layers,
            width=width,
            final_lif=final_lif,
            feature_source=feature_source,
        )
        super().__init__(
            trunk,
            flat_dim=trunk.out_channels,
            pooled_dim=trunk.out_channels,
            num_classes=num_classes,
            shared_head=shared_head,
            aux_heads=aux_heads,
        )


@MODELS.register("resnet18")
def resnet18(num_classes: int, in_channels: int = 2, **kw) -> SpikingResNet:
    """Registry constructor: spiking pre-activation ResNet-18."""
    return SpikingResNet(num_classes, in_channels=in_channels, layers=(2, 2, 2, 2), **kw)
