"""TMKT losses (docs/method.md section 4): TET, MAG, MRP and linear-CKA alignment.

Readings:

- **TET** (Deng et al. 2022, "Temporal Efficient Training of Spiking Neural
  Network via Gradient Re-weighting"): ``L = (1 - lambda) * L_TET + lambda * L_MSE``
  with ``L_TET = (1/T) sum_t CE(o_t, y)`` and ``L_MSE = (1/T) sum_t MSE(o_t, phi)``.
  Deng et al.'s code fills the target with ``means = 1.0`` (the threshold of
  their neurons); He et al.'s training code (``main_transfer.py``) fills it with
  ``args.threshold`` = 0.5 and keeps the ``(1 - lambda)`` / ``lambda`` weighting.
  Defaults follow He et al.: ``phi = 0.5``, ``lambda = 1e-3``, convex weighting
  (``convex=False`` gives ``L_TET + lambda L_MSE``).
- **Per-step weights** (He et al.'s "spatio-temporal regularisation"): learnable
  ``c_t`` (init 1); ``sigma(c_t)`` multiplies the CKA term of step t and
  ``1 - sigma(c_t)`` multiplies the DVS stream's CE *and* MSE terms of step t
  (both are averaged over T afterwards, as in the reference).
- **MAG**: BCE-with-logits of per-step event-frame logits against the mask,
  averaged over batch and time.
- **MRP**: ``sigmoid(z)`` against rho, MSE (default) or BCE with the soft target.
- **CKA** (Kornblith et al. 2019): linear CKA from centred Gram matrices,
  ``<K_c, L_c>_F / (||K_c||_F ||L_c||_F)`` with ``K_c = H X X^T H``; features are
  flattened per sample; the loss is ``mean_t w_t (1 - CKA_t)``. Linear CKA is
  never negative, so the reference's ``abs`` is not needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "StepWeights",
    "ce_mean_loss",
    "cka_loss",
    "linear_cka",
    "mag_loss",
    "mrp_loss",
    "per_step_ce",
    "step_weighted_ce",
    "tet_loss",
]


def _check_logits(logits: Tensor, y: Tensor) -> tuple[int, int]:
    if logits.dim() != 3:
        raise ValueError(f"expected per-step logits (T, B, classes), got shape {tuple(logits.shape)}")
    T, B = logits.shape[0], logits.shape[1]
    if y.shape[0] != B:
        raise ValueError(f"labels have batch {y.shape[0]}, logits {B}")
    return T, B


def _check_weights(w: Tensor | None, T: int) -> None:
    if w is not None and w.shape != (T,):
        raise ValueError(f"step weights must have shape ({T},), got {tuple(w.shape)}")


def per_step_ce(logits: Tensor, y: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of each step's output, ``(T,)`` (mean over the batch)."""
    T, B = _check_logits(logits, y)
    ce = F.cross_entropy(
        logits.reshape(T * B, -1).float(),
        y.repeat(T),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return ce.view(T, B).mean(dim=1)


def step_weighted_ce(
    logits: Tensor, y: Tensor, step_weights: Tensor | None = None, label_smoothing: float = 0.0
) -> Tensor:
    """``(1/T) sum_t w_t CE(o_t, y)``; with ``StepWeights.dvs_weights()`` this is the reference's DVS term."""
    ce = per_step_ce(logits, y, label_smoothing)
    _check_weights(step_weights, ce.shape[0])
    if step_weights is not None:
        ce = ce * step_weights
    return ce.mean()


def tet_loss(
    logits: Tensor,
    y: Tensor,
    lambda_tet: float = 1e-3,
    phi: float = 0.5,
    convex: bool = True,
    step_weights: Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """TET loss of per-step outputs ``(T, B, classes)``.

    ``(1 - lambda) (1/T) sum_t w_t CE(o_t, y) + lambda (1/T) sum_t w_t MSE(o_t, phi)``
    (``w_t = 1`` without ``step_weights``; without ``convex`` the first factor is 1).
    """
    T, _ = _check_logits(logits, y)
    _check_weights(step_weights, T)
    ce = per_step_ce(logits, y, label_smoothing)
    mse = (logits.float() - phi).square().mean(dim=(1, 2))
    if step_weights is not None:
        ce = ce * step_weights
        mse = mse * step_weights
    first = (1.0 - lambda_tet) if convex else 1.0
    return first * ce.mean() + lambda_tet * mse.mean()


def ce_mean_loss(logits: Tensor, y: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Plain CE on the readout (time-averaged outputs) -- the option to TET."""
    _check_logits(logits, y)
    return F.cross_entropy(logits.float().mean(dim=0), y, label_smoothing=label_smoothing)


def mag_loss(mag_logits: Tensor, mask: Tensor) -> Tensor:
    """Modality Aware Guidance: BCE-with-logits of ``(T, B)`` logits against the ``(B, T)`` event mask."""
    if mag_logits.dim() != 2 or mask.shape != (mag_logits.shape[1], mag_logits.shape[0]):
        raise ValueError(
            f"MAG logits must be (T, B) and the mask (B, T); got {tuple(mag_logits.shape)} "
            f"and {tuple(mask.shape)}"
        )
    return F.binary_cross_entropy_with_logits(mag_logits.float(), mask.t().float())


def mrp_loss(mrp_logit: Tensor, rho: Tensor, kind: str = "mse") -> Tensor:
    """Mixup Ratio Perception: ``sigmoid(z)`` against the realised ratio rho, both ``(B,)``."""
    if mrp_logit.shape != rho.shape:
        raise ValueError(f"MRP logit and rho differ in shape: {tuple(mrp_logit.shape)} vs {tuple(rho.shape)}")
    z = mrp_logit.float()
    if kind == "mse":
        return (torch.sigmoid(z) - rho.float()).square().mean()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(z, rho.float())
    raise ValueError(f"MRP loss kind must be 'mse' or 'bce', got {kind!r}")


def _centred_gram(x: Tensor) -> Tensor:
    # H X X^T H = (X - mean) (X - mean)^T, batched over any leading dims: (..., B, D) -> (..., B, B)
    xc = x - x.mean(dim=-2, keepdim=True)
    return xc @ xc.transpose(-1, -2)


def _cka_from_features(x: Tensor, y: Tensor, eps: float) -> Tensor:
    k = _centred_gram(x)
    l_ = _centred_gram(y)
    hsic = (k * l_).sum(dim=(-1, -2))
    norm = torch.linalg.matrix_norm(k) * torch.linalg.matrix_norm(l_)
    return hsic / norm.clamp_min(eps)


def linear_cka(x: Tensor, y: Tensor, eps: float = 1e-12) -> Tensor:
    """Linear CKA of two feature sets over the same B samples (features flattened per sample).

    In [0, 1]; 1 for features equal up to an orthogonal transform and isotropic
    scaling; 0 when either set is constant over the batch. Computed in float32.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same samples: batch {x.shape[0]} vs {y.shape[0]}")
    return _cka_from_features(x.reshape(x.shape[0], -1).float(), y.reshape(y.shape[0], -1).float(), eps)


def cka_loss(
    feat_mix: Tensor, feat_dvs: Tensor, step_weights: Tensor | None = None, eps: float = 1e-12
) -> Tensor:
    """``(1/T) sum_t w_t (1 - CKA(feat_mix[t], feat_dvs[t]))`` for ``(T, B, ...)`` features."""
    if feat_mix.shape[:2] != feat_dvs.shape[:2]:
        raise ValueError(
            f"CKA features differ in (T, B): {tuple(feat_mix.shape[:2])} vs {tuple(feat_dvs.shape[:2])}"
        )
    T, B = feat_mix.shape[0], feat_mix.shape[1]
    _check_weights(step_weights, T)
    cka = _cka_from_features(feat_mix.reshape(T, B, -1).float(), feat_dvs.reshape(T, B, -1).float(), eps)
    loss = 1.0 - cka
    if step_weights is not None:
        loss = loss * step_weights
    return loss.mean()


class StepWeights(nn.Module):
    """Learnable per-step weights ``sigma(c_t)``, ``c_t`` initialised to ``init`` (1, as the reference).

    ``cka_weights()`` = ``sigma(c)`` weights the CKA term of each step; ``dvs_weights()``
    = ``1 - sigma(c)`` weights the DVS stream's per-step classification terms.
    """

    def __init__(self, T: int, init: float = 1.0):
        super().__init__()
        if int(T) < 1:
            raise ValueError(f"T must be >= 1, got {T!r}")
        self.c = nn.Parameter(torch.full((int(T),), float(init)))

    def cka_weights(self) -> Tensor:
        return torch.sigmoid(self.c)

    def dvs_weights(self) -> Tensor:
        return 1.0 - torch.sigmoid(self.c)

    def forward(self) -> Tensor:
        return self.cka_weights()
