"""SCNN: the small convolutional SNN for 28 x 28 N-Omniglot, as in He et al.'s ``Transfer_SCNN``.

Architecture (input ``(B, T, 2, 28, 28)``; no batch norm, as in the reference):

    conv 5x5, 2 -> 15, no bias   -> LIF -> AvgPool 2     28 -> 24 -> 12
    conv 5x5, 15 -> 40, no bias  -> LIF -> AvgPool 2     12 ->  8 ->  4
    flatten 40 * 4 * 4 = 640 -> Linear(640, 300) -> LIF  (the trunk ends here)
    head: Linear(300, classes)

Init as in the reference: convs Kaiming-normal, the linear layers uniform in
[-0.1, 0.1]. ``bn=True`` adds BatchNorm after each conv (an option).

Outputs: ``pooled`` and the head input are the 300 fc1 spikes ``(T, B, 300)``
(the sequence is already global after fc1). ``features`` (CKA input) is the fc1
LIF layer by default, the layer the reference aligns (``node1.mem``);
``features_from="conv2"`` takes the second conv's LIF output ``(T, B, 40, 8, 8)``
instead. ``feature_source="membrane"`` gives that LIF's membrane potential after
reset rather than its spikes (the reference uses the membrane).
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
    make_lif,
    neuron_params,
)
from tmkt_train.neurons import fold_time

__all__ = ["SCNN", "SCNNTrunk", "scnn"]


class SCNNTrunk(nn.Module):
    """Two 5x5 conv + LIF + pool stages and a 300-unit spiking fc layer."""

    def __init__(
        self,
        in_channels: int,
        neuron: LIFParams,
        input_size: int = 28,
        channels: tuple[int, int] = (15, 40),
        hidden: int = 300,
        bn: bool = False,
        features_from: str = "fc1",
        feature_source: str = "spikes",
    ):
        super().__init__()
        if features_from not in ("fc1", "conv2"):
            raise ModelError(f"features_from must be 'fc1' or 'conv2', got {features_from!r}")
        check_feature_source(feature_source)
        mem = feature_source == "membrane"
        self.features_from = features_from
        self.feature_source = feature_source
        c1, c2 = channels
        self.block1 = ConvBNLIF(in_channels, c1, neuron, kernel_size=5, padding=0, bn=bn)
        self.pool1 = fold_time(nn.AvgPool2d(2))
        self.block2 = ConvBNLIF(
            c1, c2, neuron, kernel_size=5, padding=0, bn=bn, record_v=mem and features_from == "conv2"
        )
        self.pool2 = fold_time(nn.AvgPool2d(2))
        side = ((input_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ModelError(f"scnn: input_size {input_size} is too small (needs >= 16)")
        self.fc1 = nn.Linear(c2 * side * side, hidden)
        self.lif_fc = make_lif(neuron, record_v=mem and features_from == "fc1")
        self.out_features = hidden
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
        nn.init.uniform_(self.fc1.weight, -0.1, 0.1)

    def forward(self, x: Tensor) -> TrunkOutput:
        c2 = self.block2(self.pool1(self.block1(x)))
        h = self.lif_fc(self.fc1(self.pool2(c2).flatten(2)))
        if self.features_from == "conv2":
            feats = self.block2.lif.last_v if self.feature_source == "membrane" else c2
        else:
            feats = self.lif_fc.last_v if self.feature_source == "membrane" else h
        return TrunkOutput(h, h, feats)


class SCNN(SpikingClassifier):
    """SCNN classifier (default 1623 Omniglot classes are set by the caller)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 2,
        input_size: int = 28,
        bn: bool = False,
        features_from: str = "fc1",
        feature_source: str = "spikes",
        shared_head: bool = False,
        aux_heads: bool = True,
        neuron: LIFParams | None = None,
        **neuron_kw,
    ):
        neuron = neuron_params("scnn", neuron, neuron_kw)
        trunk = SCNNTrunk(
            in_channels,
            neuron,
            input_size=input_size,
            bn=bn,
            features_from=features_from,
            feature_source=feature_source,
        )
        super().__init__(
            trunk,
            flat_dim=trunk.out_features,
            pooled_dim=trunk.out_features,
            num_classes=num_classes,
            shared_head=shared_head,
            aux_heads=aux_heads,
        )
        for lin in self.heads.values():
            nn.init.uniform_(lin.weight, -0.1, 0.1)


@MODELS.register("scnn")
def scnn(num_classes: int, in_channels: int = 2, **kw) -> SCNN:
    """Registry constructor of :class:`SCNN`."""
    return SCNN(num_classes, in_channels=in_channels, **kw)
