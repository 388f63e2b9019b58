"""Optimizer and learning-rate schedule: AdamW with weight-decay groups, warm-up then cosine per step."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tmkt_train.config import TrainConfig
from tmkt_train.losses import StepWeights


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up from 1/warmup to 1, then cosine decay to 0 (per step)."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        rest = max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / rest)))

    return f


def make_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-step schedule over ``cfg.epochs`` epochs of ``steps_per_epoch`` steps."""
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = steps_per_epoch * min(cfg.warmup_epochs, cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, warmup_steps))


def make_optimizer(
    cfg: TrainConfig, model: nn.Module, step_weights: StepWeights | None = None
) -> torch.optim.AdamW:
    """AdamW over the model (and the step weights) with the configured weight decay.

    Unless ``cfg.decay_1d``, parameters with at most one dimension (batch-norm
    weights and biases, linear biases, the step weights c_t) get no weight decay,
    as timm's optimizer factory does for He et al.'s ``create_optimizer(args, model)``
    (``filter_bias_and_bn``). Group 0 is decayed, group 1 (when not empty) is not.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    modules = [model] + ([step_weights] if step_weights is not None else [])
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            skip = not cfg.decay_1d and (p.ndim <= 1 or name.endswith(".bias"))
            (no_decay if skip else decay).append(p)
    groups: list[dict[str, Any]] = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=cfg.resolved_lr(), weight_decay=cfg.weight_decay)
