"""Spiking networks by name (timm-style registry).

>>> from tmkt_train.models import create_model
>>> model = create_model("vgg_snn", num_classes=101)          # doctest: +SKIP
>>> out = model(x, head="dvs")   # x: (B, T, 2, 48, 48)        # doctest: +SKIP
>>> out.logits.shape             # (T, B, 101)                 # doctest: +SKIP

Every model takes ``(B, T, C, H, W)`` and returns an :class:`SNNOutput`
(``logits``, ``pooled``, ``features``, ``mag_logits``, ``mrp_logit``; see
:mod:`tmkt_train.models.base`). Keyword options common to all models:
``shared_head``, ``aux_heads``, ``feature_source`` (``"spikes"`` or ``"membrane"``:
what ``features``, the CKA input, holds; the trainer's ``cka_features``) and the LIF
settings ``tau``, ``v_threshold``, ``v_reset``, ``decay_input``, ``surrogate``,
``alpha``, ``detach_reset`` (defaults: docs/method.md section 6, reset detached as in
the reference code), given as keywords or as one :class:`LIFParams` (``neuron=``).

| name | network | input |
|---|---|---|
| ``vgg_snn`` | VGG-SNN, 8 conv + BN + LIF, avg pools | 48 x 48 (``input_size``) |
| ``resnet18`` | pre-activation spiking ResNet-18 | any, 48 x 48 in the recipes |
| ``scnn`` | 2 conv + fc 300 SNN for N-Omniglot | 28 x 28 (``input_size``) |
| ``demo`` | 2 conv (16/32) + BN + LIF, CPU demo | any >= 8, 32 x 32 intended |

Each model module registers its factory in :data:`MODELS` (``@MODELS.register("vgg_snn")``,
:class:`tmkt_data.registry.Registry`); :func:`register_model` adds one of your own.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tmkt_train.models.base import (
    MODELS,
    NEURON_KEYS,
    LIFParams,
    ModelError,
    SNNOutput,
    SpikingClassifier,
    TrunkOutput,
)

__all__ = [
    "MODELS",
    "NEURON_KEYS",
    "LIFParams",
    "ModelError",
    "SNNOutput",
    "SpikingClassifier",
    "TrunkOutput",
    "create_model",
    "list_models",
    "register_model",
]


def register_model(name: str, fn: Callable[..., nn.Module] | None = None):
    """Register ``fn(num_classes, in_channels=2, **kw)`` under ``name`` (usable as a decorator)."""
    return MODELS.register(name, fn)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS.names())


def create_model(name: str, num_classes: int, in_channels: int = 2, **kw) -> SpikingClassifier:
    """Build the model registered as ``name``.

    Raises:
        ModelError: unknown name (the message lists the known ones) or an option the model does not take.
    """
    return MODELS.get(name)(num_classes, in_channels=in_channels, **kw)
