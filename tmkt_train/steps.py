"""One training step for every method, sharing one code path with flags (docs/method.md section 5).

``method_losses`` takes a batch already on the device (DVS frames, RGB
partners, labels) and returns the total loss and its terms:

| method | streams | terms |
|---|---|---|
| ``scratch`` | DVS | ``cls_dvs`` |
| ``finetune`` | RGB (first phase) or DVS | ``cls_dvs`` (the same head in both phases) |
| ``sliding`` | sliding-replaced + DVS | ``cls_mix``, ``cls_dvs`` (step-weighted), ``cka`` |
| ``tmkt`` | time-step mixed + DVS | ``cls_mix``, ``cls_dvs`` (step-weighted), ``cka``, ``mag``, ``mrp`` |

MAG and MRP supervise the mixed stream only (the DVS stream's mask is all
ones) **(choice)**. Each auxiliary term stays behind its own flag; turning
the sliding schedule off does not turn CKA off (a defect of the reference code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tmkt_train.config import TrainConfig
from tmkt_train.losses import StepWeights, ce_mean_loss, cka_loss, mag_loss, mrp_loss, tet_loss
from tmkt_train.mixup import RmSchedule, replacement_probability, sliding_replace, time_step_mixup


class Streams(nn.Module):
    """The model and the per-step weights behind one ``forward``: one or two streams per call.

    DistributedDataParallel allows one forward per backward and needs every
    trained parameter inside its module, so the two streams and the learnable
    step weights all go through this wrapper.
    """

    def __init__(self, model: nn.Module, step_weights: StepWeights | None = None):
        super().__init__()
        self.model = model
        self.step_weights = step_weights

    def forward(self, x1: Tensor, head1: str, x2: Tensor | None = None, head2: str = "dvs"):
        out1 = self.model(x1, head=head1)
        out2 = self.model(x2, head=head2) if x2 is not None else None
        w = None
        if self.step_weights is not None and x2 is not None:
            w = (self.step_weights.cka_weights(), self.step_weights.dvs_weights())
        return out1, out2, w


@dataclass
class StepInputs:
    """A batch on the device. ``x_dvs`` and ``x_rgb``: (B, T, 2, H, W) float; ``y``: (B,) int64."""

    x_dvs: Tensor
    x_rgb: Tensor | None
    y: Tensor


def rm_schedule(cfg: TrainConfig) -> RmSchedule:
    """The r_m schedule a config asks for (constant r_m by default)."""
    if cfg.r_m_schedule == "constant":
        return RmSchedule("constant", cfg.r_m)
    return RmSchedule(cfg.r_m_schedule, cfg.r_m_start, cfg.r_m_end)


def classification_loss(cfg: TrainConfig, logits: Tensor, y: Tensor, weights: Tensor | None = None) -> Tensor:
    """TET (default) or CE on the time-averaged output; ``weights`` (T,) weight TET's steps."""
    if cfg.loss == "ce":
        return ce_mean_loss(logits, y)
    return tet_loss(logits, y, lambda_tet=cfg.lambda_tet, phi=cfg.v_threshold, step_weights=weights)


def finetune_on_rgb(cfg: TrainConfig, epoch: int) -> bool:
    """True while the ``finetune`` method is in its RGB phase."""
    return cfg.method == "finetune" and epoch < math.ceil(cfg.finetune_rgb_fraction * cfg.epochs)


def method_losses(
    net: nn.Module,
    batch: StepInputs,
    cfg: TrainConfig,
    *,
    progress: float,
    epoch: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Total loss, its named terms, and the per-step logits used for training accuracy.

    The accuracy logits are the DVS stream's (``scratch``, ``sliding``, ``tmkt``,
    ``finetune`` on DVS) or the RGB phase's (``finetune`` on RGB).

    Args:
        net: a :class:`Streams` (possibly wrapped in DDP or compiled).
        progress: iteration / total iterations in [0, 1] (sliding schedule, r_m schedule).
        epoch: current epoch (the finetune phase).
        generator: device generator for the mixing draws (reproducible runs).
    """
    y = batch.y
    terms: dict[str, Tensor] = {}
    if cfg.method in ("scratch", "finetune"):
        x = batch.x_rgb if finetune_on_rgb(cfg, epoch) else batch.x_dvs
        out = net(x, "dvs")[0]
        terms["cls_dvs"] = classification_loss(cfg, out.logits, y)
        return terms["cls_dvs"], terms, out.logits.detach()

    if batch.x_rgb is None:
        raise ValueError(f"method {cfg.method} needs RGB partners")
    if cfg.method == "sliding":
        x_mix, mask = sliding_replace(batch.x_rgb, batch.x_dvs, progress, generator=generator)
    else:
        T = batch.x_dvs.shape[1]
        p = replacement_probability(rm_schedule(cfg)(progress), T, normalized=cfg.mixup_normalized)
        x_mix, mask = time_step_mixup(
            batch.x_rgb, batch.x_dvs, p, generator=generator, normalized=cfg.mixup_normalized
        )
    out_mix, out_dvs, weights = net(x_mix, "mix", batch.x_dvs, "dvs")
    w_cka, w_dvs = weights if weights is not None else (None, None)
    terms["cls_mix"] = classification_loss(cfg, out_mix.logits, y)
    terms["cls_dvs"] = classification_loss(cfg, out_dvs.logits, y, w_dvs)
    total = terms["cls_mix"] + terms["cls_dvs"]
    if cfg.cka:
        terms["cka"] = cka_loss(out_mix.features, out_dvs.features, w_cka)
        total = total + cfg.lambda_cka * terms["cka"]
    if cfg.method == "tmkt":
        if cfg.mag:
            terms["mag"] = mag_loss(out_mix.mag_logits, mask)
            total = total + cfg.lambda_mag * terms["mag"]
        if cfg.mrp:
            terms["mrp"] = mrp_loss(out_mix.mrp_logit, mask.float().mean(1), kind=cfg.mrp_loss)
            total = total + cfg.lambda_mrp * terms["mrp"]
    terms["event_ratio"] = mask.float().mean().detach()
    return total, terms, out_dvs.logits.detach()


def check_finite(terms: dict[str, Tensor]) -> None:
    """Raise :class:`FloatingPointError` naming the first NaN/inf loss term."""
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise FloatingPointError(f"loss term {name!r} is {value.item()}: training stopped")
