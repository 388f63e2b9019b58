"""Evaluation: accuracy of the DVS head on a split, batch-norm recalibration on event data,
and the accuracy of a saved checkpoint (``tmkt-train eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tmkt_train.augment import normalize_dvs
from tmkt_train.build import build_model
from tmkt_train.checkpoint import check_checkpoint, load_checkpoint
from tmkt_train.config import TrainConfig
from tmkt_train.data import StoreBatches
from tmkt_train.distributed import Dist, all_reduce_sum, resolve_device
from tmkt_train.errors import TrainError


def _autocast(cfg: TrainConfig, device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, loader: Any, device: torch.device, cfg: TrainConfig, ddp: Dist | None = None
) -> int:
    """Re-estimate every batch norm's running statistics on the DVS batches of ``loader``.

    The model runs in training mode (each batch normalised by its own statistics,
    as in a training step on DVS data) without augmentation; each batch norm's
    ``running_mean`` and ``running_var`` become the mean and the unbiased variance
    of its input over every sample and position seen (exact pooled statistics, not
    a moving average), summed over the ranks under DDP. Afterwards evaluation
    normalises with statistics of event data alone, not of the mixture of the
    mixed and the DVS stream that training accumulates. Returns the samples used.
    """
    bns = _batch_norms(model)
    if not bns:
        return 0
    sums = {m: [0.0, 0.0, 0] for m in bns}  # per-channel sum, sum of squares (float64), count

    def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        acc = sums[mod]
        acc[0] = acc[0] + x.sum(dims)
        acc[1] = acc[1] + (x * x).sum(dims)
        acc[2] += x.numel() // x.shape[1]

    was_training = model.training
    handles = [m.register_forward_pre_hook(hook) for m in bns]
    seen = 0
    try:
        model.train()
        for batch in loader:
            x = normalize_dvs(batch["frames"].to(device, non_blocking=True).float(), cfg.dvs_norm)
            with _autocast(cfg, device):
                model(x, head="dvs")
            seen += x.shape[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    _set_running_stats(bns, sums, device, ddp)
    return seen


def _set_running_stats(
    bns: list[nn.modules.batchnorm._BatchNorm], sums: dict, device: torch.device, ddp: Dist | None
) -> None:
    """Running mean and unbiased variance from the per-channel sums, pooled over the ranks."""
    flat = []
    for m in bns:
        s1, s2, n = sums[m]
        zero = torch.zeros(m.num_features, dtype=torch.float64, device=device)
        flat += [zero + s1, zero + s2, torch.full((1,), float(n), dtype=torch.float64, device=device)]
    packed = all_reduce_sum(torch.cat(flat), ddp)
    pos = 0
    for m in bns:
        c = m.num_features
        s1, s2, n = packed[pos : pos + c], packed[pos + c : pos + 2 * c], packed[pos + 2 * c].item()
        pos += 2 * c + 1
        if n < 2:
            continue
        mean = s1 / n
        var = (s2 / n - mean * mean).clamp(min=0.0) * (n / (n - 1))
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    num_classes: int,
    device: torch.device,
    cfg: TrainConfig,
    ddp: Dist | None = None,
) -> dict[str, Any]:
    """Top-1, top-5 and per-class accuracy of the DVS head's readout on a loader's samples."""
    model.eval()
    correct1 = torch.zeros(num_classes, dtype=torch.float64, device=device)
    correct5 = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros(num_classes, dtype=torch.float64, device=device)
    for batch in loader:
        x = normalize_dvs(batch["frames"].to(device, non_blocking=True).float(), cfg.dvs_norm)
        y = batch["labels"].to(device, non_blocking=True)
        with _autocast(cfg, device):
            scores = model(x, head="dvs").logits.float().mean(0)
        top = scores.topk(min(5, num_classes), dim=1).indices
        hit1 = (top[:, 0] == y).double()
        correct1.index_add_(0, y, hit1)
        correct5 += (top == y[:, None]).any(1).double().sum()
        count.index_add_(0, y, torch.ones_like(hit1))
    for t in (correct1, correct5, count):
        all_reduce_sum(t, ddp)
    n = float(count.sum())
    per_class = (correct1 / count.clamp(min=1)).tolist()
    return {
        "samples": int(n),
        "top1": float(correct1.sum()) / n if n else None,
        "top5": float(correct5) / n if n else None,
        "per_class": [v if c > 0 else None for v, c in zip(per_class, count.tolist(), strict=True)],
    }


def evaluate_checkpoint(
    checkpoint: str | Path,
    store: str | Path,
    *,
    split: str = "test",
    device: str = "auto",
    batch_size: int = 128,
) -> dict[str, Any]:
    """Accuracy of a saved run on one split of a paired store (top-1, top-5, per class)."""
    from tmkt_data.pairing import read_pairs
    from tmkt_data.store import open_store
    from tmkt_train.config import make_config

    if batch_size < 1:
        raise TrainError(f"batch_size = {batch_size}: expected a positive integer")
    ckpt_path = Path(checkpoint)
    ckpt = load_checkpoint(ckpt_path, map_location="cpu")
    g = open_store(store)
    classes = list(g.attrs["classes"])
    T, _, H, W = g.attrs["frame_shape"]
    check_checkpoint(ckpt, ckpt["meta"]["model"], len(classes), int(T), str(ckpt_path))
    pairs = read_pairs(store)
    if split not in pairs.dvs:
        raise TrainError(f"--split {split!r}: expected one of {', '.join(pairs.dvs)}")
    saved = {k: v for k, v in ckpt["config"].items() if k != "extra"}
    cfg = make_config(saved, device=device)
    dev = resolve_device(cfg.device, Dist())
    model = build_model(cfg, len(classes), (int(H), int(W))).to(dev)
    model.load_state_dict(ckpt["model"])
    loader = torch.utils.data.DataLoader(
        StoreBatches(str(store), pairs.dvs[split], batch_size, shuffle=False), batch_size=None, num_workers=0
    )
    res = evaluate(model, loader, len(classes), dev, cfg)
    res.update(
        checkpoint=str(ckpt_path),
        epoch=int(ckpt["epoch"]),
        split=split,
        per_class={c: v for c, v in zip(classes, res["per_class"], strict=True)},
    )
    return res
