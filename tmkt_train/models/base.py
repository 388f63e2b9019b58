"""What every spiking classifier shares: the output record, the trunk contract, the heads.

A model is a *trunk* (the spiking feature extractor) plus per-stream linear
classification heads and two light auxiliary heads (docs/method.md section 4):

- ``heads["dvs"]`` and ``heads["mix"]``: separate linear heads on the shared
  trunk for the DVS and the mixed stream (the reference code's ``dvs_fc`` and
  ``rgb_fc``); ``shared_head=True`` gives one head that both names select.
  ``"rgb"`` is accepted as another name of the mixed-stream head.
- ``mag_head``: ``Linear(F, 1)`` on each step's pooled trunk feature, predicting
  whether frame t is an event frame (MAG).
- ``mrp_head``: ``Linear(F, 1)`` on the time-averaged pooled feature, whose
  sigmoid estimates the sequence's event ratio rho (MRP).

``forward(x, head="dvs")`` takes ``x`` of shape ``(B, T, C, H, W)`` and returns
an :class:`SNNOutput` whose tensors are time-major, ``(T, B, ...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from tmkt_data.errors import TmktError
from tmkt_data.registry import Registry
from tmkt_train.neurons import LIF, fold_time

__all__ = [
    "NEURON_KEYS",
    "ConvBNLIF",
    "FEATURE_SOURCES",
    "LIFParams",
    "MODELS",
    "ModelError",
    "check_feature_source",
    "reject_unknown",
    "SNNOutput",
    "SpikingClassifier",
    "TrunkOutput",
    "make_lif",
    "neuron_params",
    "split_neuron_kwargs",
]


@dataclass(frozen=True)
class LIFParams:
    """The settings every LIF layer of a model shares (:class:`tmkt_train.neurons.LIF`'s arguments).

    Model defaults: docs/method.md section 6 (tau 2, threshold 0.5, hard reset to 0, quadratic
    gate, alpha None: the surrogate's own 2). The reset is detached as in He et al.'s LIFNode
    (``mem * (1 - spike.detach())``). Every model takes it as ``neuron=`` or as the same keywords.
    """

    tau: float = 2.0
    v_threshold: float = 0.5
    v_reset: float | None = 0.0
    decay_input: bool = True
    surrogate: str = "qgate"
    alpha: float | None = None
    detach_reset: bool = True

    def lif(self, record_v: bool = False) -> LIF:
        """A :class:`LIF` layer with these settings."""
        return LIF(record_v=record_v, **asdict(self))


# Keyword arguments of create_model() that configure every LIF layer of a model.
NEURON_KEYS = tuple(f.name for f in fields(LIFParams))


class SNNOutput(NamedTuple):
    """A forward pass's results, time-major.

    Attributes:
        logits: ``(T, B, classes)`` per-step outputs of the selected head (readout = mean over T).
        pooled: ``(T, B, F)`` per-step globally pooled trunk features (MAG and MRP inputs).
        features: ``(T, B, ...)`` CKA input: the last spiking layer's spikes, or its membrane
            potential with ``feature_source="membrane"`` (see each model).
        mag_logits: ``(T, B)`` per-step event-frame logits, or None without aux heads.
        mrp_logit: ``(B,)`` ratio logit on the time-averaged pooled feature, or None.
    """

    logits: Tensor
    pooled: Tensor
    features: Tensor
    mag_logits: Tensor | None = None
    mrp_logit: Tensor | None = None


class TrunkOutput(NamedTuple):
    """What a trunk returns for ``(T, B, C, H, W)`` input.

    Attributes:
        flat: ``(T, B, D)`` the classification heads' input.
        pooled: ``(T, B, F)`` globally pooled features.
        features: ``(T, B, ...)`` the last spiking layer's output (or membrane, see the model).
    """

    flat: Tensor
    pooled: Tensor
    features: Tensor


class ModelError(TmktError, ValueError):
    """An unknown model name or an option a model does not take."""


#: Model name -> ``fn(num_classes, in_channels=2, **kw)``; each model module registers its own
#: (``@MODELS.register("vgg_snn")``); :func:`tmkt_train.models.create_model` builds one by name.
MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "model",
    ModelError,
    modules=[f"tmkt_train.models.{m}" for m in ("vgg_snn", "resnet", "scnn", "demo")],
)


def reject_unknown(model: str, rest: dict) -> None:
    """Raise :class:`ModelError` naming the options ``model`` does not take."""
    if rest:
        raise ModelError(
            f"{model}: unknown option(s) {', '.join(sorted(rest))}; LIF options are {', '.join(NEURON_KEYS)}"
        )


def split_neuron_kwargs(kw: dict[str, Any]) -> tuple[LIFParams, dict[str, Any]]:
    """Split ``kw`` into (LIF settings with the model defaults filled in, the rest)."""
    neuron = {k: v for k, v in kw.items() if k in NEURON_KEYS}
    rest = {k: v for k, v in kw.items() if k not in NEURON_KEYS}
    return LIFParams(**neuron), rest


def neuron_params(model: str, neuron: LIFParams | None, kw: dict[str, Any]) -> LIFParams:
    """A model's LIF settings from ``neuron=`` or the LIF keywords in ``kw`` (not both).

    Raises:
        ModelError: an option the model does not take, or ``neuron=`` together with LIF keywords.
    """
    params, rest = split_neuron_kwargs(kw)
    reject_unknown(model, rest)
    if neuron is None:
        return params
    given = sorted(set(kw) & set(NEURON_KEYS))
    if given:
        raise ModelError(
            f"{model}: give the LIF settings as neuron= or as keywords, not both ({', '.join(given)})"
        )
    return neuron


def make_lif(neuron: LIFParams, record_v: bool = False) -> LIF:
    """A :class:`LIF` layer with the given settings."""
    return neuron.lif(record_v=record_v)


FEATURE_SOURCES = ("spikes", "membrane")


def check_feature_source(feature_source: str) -> None:
    """Raise :class:`ModelError` unless ``feature_source`` is ``"spikes"`` or ``"membrane"``."""
    if feature_source not in FEATURE_SOURCES:
        raise ModelError(
            f"feature_source must be one of {', '.join(FEATURE_SOURCES)}, got {feature_source!r}"
        )


class ConvBNLIF(nn.Module):
    """``Conv2d (no bias by default) -> BatchNorm2d`` on time folded into the batch, then a LIF over time.

    Input and output are ``(T, B, C, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        neuron: LIFParams,
        kernel_size: int = 3,
        padding: int | None = None,
        bn: bool = True,
        record_v: bool = False,
        bias: bool = False,
    ):
        super().__init__()
        pad = kernel_size // 2 if padding is None else padding
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad, bias=bias)
        self.op = fold_time(conv, nn.BatchNorm2d(out_channels)) if bn else fold_time(conv)
        self.lif = make_lif(neuron, record_v=record_v)

    def forward(self, x: Tensor) -> Tensor:
        return self.lif(self.op(x))


class SpikingClassifier(nn.Module):
    """Trunk + per-stream heads + auxiliary heads; see the module docstring.

    Args:
        trunk: module mapping ``(T, B, C, H, W)`` to a :class:`TrunkOutput`.
        flat_dim: D, the width of ``TrunkOutput.flat``.
        pooled_dim: F, the width of ``TrunkOutput.pooled``.
        num_classes: classes of the heads.
        shared_head: one head for both streams.
        aux_heads: create ``mag_head`` and ``mrp_head``.
        head_names: names of the per-stream heads.
    """

    HEAD_ALIASES = {"rgb": "mix"}

    def __init__(
        self,
        trunk: nn.Module,
        flat_dim: int,
        pooled_dim: int,
        num_classes: int,
        shared_head: bool = False,
        aux_heads: bool = True,
        head_names: tuple[str, ...] = ("dvs", "mix"),
    ):
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
        self.trunk = trunk
        self.num_classes = int(num_classes)
        self.flat_dim = int(flat_dim)
        self.pooled_dim = int(pooled_dim)
        self.shared_head = bool(shared_head)
        self.head_names = tuple(head_names)
        if self.shared_head:
            self.heads = nn.ModuleDict({"shared": nn.Linear(self.flat_dim, self.num_classes)})
        else:
            self.heads = nn.ModuleDict({n: nn.Linear(self.flat_dim, self.num_classes) for n in head_names})
        if aux_heads:
            self.mag_head = nn.Linear(self.pooled_dim, 1)
            self.mrp_head = nn.Linear(self.pooled_dim, 1)
        else:
            self.mag_head = None
            self.mrp_head = None

    def head(self, name: str) -> nn.Linear:
        """The classification head a stream name selects."""
        key = self.HEAD_ALIASES.get(name, name)
        if key not in self.head_names:
            raise ValueError(f"unknown head {name!r}; expected one of {', '.join(self.head_names)}")
        return self.heads["shared" if self.shared_head else key]

    def forward(self, x: Tensor, head: str = "dvs") -> SNNOutput:
        if x.dim() != 5:
            raise ValueError(f"expected input of shape (B, T, C, H, W), got {tuple(x.shape)}")
        lin = self.head(head)
        out = self.trunk(x.transpose(0, 1))
        if out.flat.shape[-1] != self.flat_dim:
            raise ValueError(
                f"{type(self).__name__}: trunk gave {out.flat.shape[-1]} features for input "
                f"{tuple(x.shape)}, the head expects {self.flat_dim} (wrong input size?)"
            )
        logits = lin(out.flat)
        mag = mrp = None
        if self.mag_head is not None:
            mag = self.mag_head(out.pooled).squeeze(-1)
            mrp = self.mrp_head(out.pooled.mean(0)).squeeze(-1)
        return SNNOutput(logits, out.pooled, out.features, mag, mrp)

    @torch.no_grad()
    def predict(self, x: Tensor, head: str = "dvs") -> Tensor:
        """Class scores of the readout (mean over T of the head's outputs), ``(B, classes)``."""
        return self.forward(x, head=head).logits.mean(0)
