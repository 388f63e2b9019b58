"""The training loop: data, model, optimiser, checkpoints, metrics, DDP.

``fit(cfg)`` trains one run into ``cfg.out``:

- ``metrics.jsonl``: one JSON line per epoch (loss terms, train/val/test
  accuracy, lr, samples/s, data-wait fraction, wall time);
- ``checkpoint.pt``: the latest state (model, optimiser, schedule, step
  weights, RNG states, epoch), written atomically every epoch;
- ``best.pt``: the epoch with the best *validation* accuracy (never test);
- ``curves.png``: loss and accuracy curves; ``config.toml``: the resolved config;
- ``tensorboard/``: the same scalars as TensorBoard event files (``tensorboard = true``,
  :mod:`tmkt_train.tensorboard`).

Training follows He et al.'s reference settings unless the config says otherwise
(``docs/training-defaults.md``): the last incomplete training batch is dropped
(``drop_last``), AdamW leaves 1-D parameters (batch-norm weights, biases, the step
weights c_t) out of weight decay (``decay_1d``), CKA compares membrane potentials
(``cka_features``), and batch-norm statistics are shared by both streams unless
``bn_recalibrate`` re-estimates them on the DVS training data before each evaluation.

Every random draw of an epoch (sample order, RGB partners, mixing, augmentation)
comes from generators seeded by (seed, epoch), so a run resumed from the
checkpoint of epoch e repeats epochs e+1... exactly as an uninterrupted run.
Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in
DistributedDataParallel, each rank reads an equal share of the batches,
metrics are summed across ranks and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from tmkt_data.errors import TmktError
from tmkt_train import tensorboard
from tmkt_train.augment import augment_dvs, normalize_dvs
from tmkt_train.config import TrainConfig, config_to_toml
from tmkt_train.data import RGBBank, StoreBatches
from tmkt_train.losses import StepWeights
from tmkt_train.models import create_model
from tmkt_train.steps import StepInputs, Streams, check_finite, finetune_on_rgb, method_losses

CHECKPOINT_FORMAT = 1


class TrainError(TmktError, ValueError):
    """A run cannot start or must stop (bad store, checkpoint mismatch, NaN loss)."""


# ------------------------------------------------------------------------------------------ setup


@dataclass
class Dist:
    """This process's place in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, ddp: Dist) -> torch.device:
    """``auto`` picks CUDA when present; under DDP each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError(f"--device {name}: no CUDA device is available")
        if ddp.world_size > 1:
            name = f"cuda:{ddp.local_rank}"
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use the global state
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int, salt: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded by (seed, epoch, salt)."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + int(epoch) * 7919 + salt) % (2**63 - 1))
    return g


def lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Linear warm-up from 1/warmup to 1, then cosine decay to 0 (per step)."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        rest = max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / rest)))

    return f


@dataclass
class StoreInfo:
    """What the trainer needs to know about the paired store."""

    path: str
    classes: list[str]
    T: int
    frame_hw: tuple[int, int]
    splits: dict[str, np.ndarray]


def open_paired_store(cfg: TrainConfig) -> tuple[StoreInfo, Any]:
    """Open the store and its pairing index; check the time steps against the config."""
    from tmkt_data.pairing import read_pairs
    from tmkt_data.store import open_store

    g = open_store(cfg.store)
    T, _, H, W = g.attrs["frame_shape"]
    if cfg.time_steps is not None and cfg.time_steps != T:
        raise TrainError(
            f"--time-steps {cfg.time_steps}: the store {cfg.store} holds T = {T} frames per sample"
        )
    pairs = read_pairs(cfg.store)
    info = StoreInfo(
        str(Path(cfg.store).resolve()), list(g.attrs["classes"]), int(T), (int(H), int(W)), pairs.dvs
    )
    if len(info.splits["train"]) == 0:
        raise TrainError(f"{cfg.store}: the pairing index has no DVS training samples")
    return info, pairs


def build_model(cfg: TrainConfig, num_classes: int, hw: tuple[int, int]) -> nn.Module:
    """The configured network, with the neuron settings of the config."""
    kw: dict[str, Any] = {
        "tau": cfg.tau,
        "v_threshold": cfg.v_threshold,
        "surrogate": cfg.surrogate,
        "shared_head": cfg.shared_head,
        # features feed CKA only: a run without CKA need not record membrane potentials
        "feature_source": cfg.cka_features if uses_cka(cfg) else "spikes",
    }
    if cfg.model in ("vgg_snn", "scnn"):
        if hw[0] != hw[1]:
            raise TrainError(f"model {cfg.model} needs square frames, the store has {hw[0]}x{hw[1]}")
        kw["input_size"] = hw[0]
    return create_model(cfg.model, num_classes, in_channels=2, **kw)


def uses_cka(cfg: TrainConfig) -> bool:
    """True when the method computes the CKA alignment term."""
    return cfg.method in ("sliding", "tmkt") and cfg.cka


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


# ----------------------------------------------------------------------------------- evaluation


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
    bns = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
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
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
                model(x, head="dvs")
            seen += x.shape[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    flat = []
    for m in bns:
        s1, s2, n = sums[m]
        c = m.num_features
        zero = torch.zeros(c, dtype=torch.float64, device=device)
        flat += [zero + s1, zero + s2, torch.full((1,), float(n), dtype=torch.float64, device=device)]
    packed = torch.cat(flat)
    if ddp is not None and ddp.world_size > 1:
        dist.all_reduce(packed)
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
    return seen


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
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
            scores = model(x, head="dvs").logits.float().mean(0)
        top = scores.topk(min(5, num_classes), dim=1).indices
        hit1 = (top[:, 0] == y).double()
        correct1.index_add_(0, y, hit1)
        correct5 += (top == y[:, None]).any(1).double().sum()
        count.index_add_(0, y, torch.ones_like(hit1))
    if ddp is not None and ddp.world_size > 1:
        for t in (correct1, correct5, count):
            dist.all_reduce(t)
    n = float(count.sum())
    per_class = (correct1 / count.clamp(min=1)).tolist()
    return {
        "samples": int(n),
        "top1": float(correct1.sum()) / n if n else None,
        "top5": float(correct5) / n if n else None,
        "per_class": [v if c > 0 else None for v, c in zip(per_class, count.tolist(), strict=True)],
    }


# ----------------------------------------------------------------------------------------- files


def atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def plot_curves(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    """Loss terms and accuracies per epoch, two panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name in sorted({k for r in rows for k in r["loss"]}):
        ax1.plot(epochs, [r["loss"].get(name, float("nan")) for r in rows], marker=".", label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.set_yscale("log")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    for key in ("train_acc", "val_acc", "test_acc"):
        vals = [r.get(key) for r in rows]
        if any(v is not None for v in vals):
            ax2.plot(epochs, [np.nan if v is None else 100 * v for v in vals], marker=".", label=key)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("top-1 accuracy (%)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)


# ----------------------------------------------------------------------------------------- fit


def check_checkpoint(ckpt: dict[str, Any], model_name: str, num_classes: int, T: int, where: str) -> None:
    """Refuse a checkpoint made for another model, class count or time-step count."""
    meta = ckpt.get("meta", {})
    for key, want in (("model", model_name), ("num_classes", num_classes), ("T", T)):
        if meta.get(key) != want:
            raise TrainError(f"{where}: checkpoint has {key} = {meta.get(key)!r}, this run needs {want!r}")


def fit(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train one run as configured; returns the summary (best epoch, test accuracy there and at the end)."""
    wants_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    ddp = init_distributed("cuda" if wants_cuda else "cpu")
    device = resolve_device(cfg.device, ddp)
    info, pairs = open_paired_store(cfg)
    if cfg.tensorboard:
        tensorboard.require()  # a missing package stops the run before anything is written
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    if ddp.main:
        if ckpt_path.exists() and not resume:
            raise TrainError(
                f"{out}: holds a run already; pass --resume to continue it or choose another --out"
            )
        if resume and not ckpt_path.exists():
            raise TrainError(f"{out}: no checkpoint.pt to resume from")
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config_to_toml(cfg))
    seed_everything(cfg.seed)
    num_classes = len(info.classes)
    model = build_model(cfg, num_classes, info.frame_hw).to(device)
    step_weights = (
        StepWeights(info.T).to(device) if cfg.method in ("sliding", "tmkt") and cfg.step_weights else None
    )
    optimizer = make_optimizer(cfg, model, step_weights)
    bs = cfg.batch_size // ddp.world_size if ddp.world_size > 1 else cfg.batch_size
    if bs < 1:
        raise TrainError(f"batch size {cfg.batch_size} is smaller than the {ddp.world_size} processes")
    # drop_last drops each rank's partial batch (the shares are equal, so are the step counts),
    # except when it is the only one: a split smaller than a batch trains on it whole
    per_rank = len(info.splits["train"]) * cfg.train_repeat // ddp.world_size
    train_ds = StoreBatches(
        info.path,
        info.splits["train"],
        bs,
        shuffle=True,
        seed=cfg.seed,
        rank=ddp.rank,
        world_size=ddp.world_size,
        drop_last=cfg.drop_last and per_rank >= bs,
        passes=cfg.train_repeat,
    )
    if len(train_ds) == 0:
        raise TrainError(
            f"{cfg.store}: {len(info.splits['train'])} DVS training samples cannot be shared by "
            f"{ddp.world_size} processes; use fewer processes"
        )
    steps_per_epoch = (
        len(train_ds) if cfg.max_steps_per_epoch is None else min(len(train_ds), cfg.max_steps_per_epoch)
    )
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, steps_per_epoch * min(cfg.warmup_epochs, cfg.epochs))
    )
    start_epoch, best_val, best_epoch = 0, -1.0, None
    rows: list[dict[str, Any]] = []
    if resume:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        check_checkpoint(ckpt, cfg.model, num_classes, info.T, str(ckpt_path))
        model.load_state_dict(ckpt["model"])
        saved_groups = len(ckpt["optimizer"]["param_groups"])
        if saved_groups != len(optimizer.param_groups):
            raise TrainError(
                f"{ckpt_path}: the optimizer has {saved_groups} parameter group(s), this run has "
                f"{len(optimizer.param_groups)}; resume with the decay_1d of the original run"
            )
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if step_weights is not None and ckpt.get("step_weights") is not None:
            step_weights.load_state_dict(ckpt["step_weights"])
        start_epoch = int(ckpt["epoch"]) + 1
        best_val, best_epoch = ckpt.get("best_val", -1.0), ckpt.get("best_epoch")
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])  # noqa: NPY002
        random.setstate(ckpt["rng"]["python"])
        rows = [r for r in read_metrics(out / "metrics.jsonl") if r["epoch"] < start_epoch]
    net: nn.Module = Streams(torch.compile(model) if cfg.compile else model, step_weights)
    if ddp.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    bank = RGBBank.from_pairs(pairs, device) if cfg.method != "scratch" else None
    loader_kw = {"batch_size": None, "num_workers": cfg.num_workers, "pin_memory": device.type == "cuda"}
    if cfg.num_workers > 0:
        loader_kw["persistent_workers"] = False
        loader_kw["prefetch_factor"] = 4
    train_loader = torch.utils.data.DataLoader(train_ds, **loader_kw)
    eval_loaders = {
        split: torch.utils.data.DataLoader(
            StoreBatches(
                info.path, info.splits[split], bs, shuffle=False, rank=ddp.rank, world_size=ddp.world_size
            ),
            **loader_kw,
        )
        for split in ("val", "test")
        if len(info.splits[split])
    }
    recal_loader = None
    if cfg.bn_recalibrate:
        recal_ds = StoreBatches(
            info.path, info.splits["train"], bs, shuffle=False, rank=ddp.rank, world_size=ddp.world_size
        )
        recal_loader = torch.utils.data.DataLoader(recal_ds, **loader_kw)
    writer = (
        tensorboard.MetricsWriter(out / "tensorboard", start_epoch) if cfg.tensorboard and ddp.main else None
    )
    t_run = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            train_ds.set_epoch(epoch)
            row = train_one_epoch(
                net,
                model,
                train_loader,
                bank,
                optimizer,
                scheduler,
                cfg,
                info,
                device,
                ddp,
                epoch=epoch,
                steps_per_epoch=steps_per_epoch,
                total_steps=total_steps,
                progress=progress and ddp.main,
            )
            if step_weights is not None:
                row["c_t"] = [float(c) for c in step_weights.c.detach().cpu()]
            if recal_loader is not None:
                recalibrate_bn(model, recal_loader, device, cfg, ddp)
            for split, loader in eval_loaders.items():
                res = evaluate(model, loader, num_classes, device, cfg, ddp)
                row[f"{split}_acc"] = res["top1"]
                row[f"{split}_top5"] = res["top5"]
            row["wall_s"] = round(time.perf_counter() - t_run, 3)
            select = row.get("val_acc")
            select = row["train_acc"] if select is None else select
            improved = select > best_val
            if improved:
                best_val, best_epoch = select, epoch
            row["best_epoch"] = best_epoch
            rows.append(row)
            if ddp.main:
                state = {
                    "format": CHECKPOINT_FORMAT,
                    "meta": {
                        "model": cfg.model,
                        "num_classes": num_classes,
                        "T": info.T,
                        "classes": info.classes,
                        "frame_hw": list(info.frame_hw),
                        "method": cfg.method,
                        "store": info.path,
                    },
                    "config": asdict(cfg),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": None,  # bf16 autocast needs no loss scaling
                    "step_weights": step_weights.state_dict() if step_weights is not None else None,
                    "epoch": epoch,
                    "best_val": best_val,
                    "best_epoch": best_epoch,
                    "rng": {
                        "torch": torch.get_rng_state(),
                        "numpy": np.random.get_state(),  # noqa: NPY002
                        "python": random.getstate(),
                    },
                }
                write_metrics(out / "metrics.jsonl", rows)
                if writer is not None:
                    writer.write(row)
                if improved:
                    atomic_torch_save(state, out / "best.pt")
                atomic_torch_save(state, ckpt_path)
                if (epoch + 1) % 5 == 0 or epoch + 1 == cfg.epochs:  # plotting costs ~0.3 s
                    title = f"{cfg.method} / {cfg.model} on {Path(info.path).name}"
                    plot_curves(rows, out / "curves.png", title)
            if on_epoch is not None:
                on_epoch(row)
    finally:
        if writer is not None:
            writer.close()
    return summarize(rows)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best-validation epoch, the test accuracy there and at the last epoch, and the last
    epoch's (running) training and validation accuracy."""
    if not rows:
        return {}
    best = rows[-1]["best_epoch"]
    at_best = next((r for r in rows if r["epoch"] == best), rows[-1])
    return {
        "epochs": len(rows),
        "best_epoch": best,
        "val_acc_at_best": at_best.get("val_acc"),
        "test_acc_at_best": at_best.get("test_acc"),
        "test_acc_last": rows[-1].get("test_acc"),
        "train_acc_last": rows[-1].get("train_acc"),
        "val_acc_last": rows[-1].get("val_acc"),
        "wall_s": rows[-1]["wall_s"],
    }


def train_one_epoch(
    net: nn.Module,
    model: nn.Module,
    loader: Any,
    bank: RGBBank | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    cfg: TrainConfig,
    info: StoreInfo,
    device: torch.device,
    ddp: Dist,
    *,
    epoch: int,
    steps_per_epoch: int,
    total_steps: int,
    progress: bool,
) -> dict[str, Any]:
    """One pass over the training batches; returns the epoch's metrics row."""
    net.train()
    gen = epoch_generator(cfg.seed, epoch, 1, device)
    sums: dict[str, float] = {}
    seen = correct = 0
    t_wait = 0.0
    t0 = time.perf_counter()
    lr = optimizer.param_groups[0]["lr"]
    bar = _progress_bar(progress, epoch, cfg.epochs, steps_per_epoch)
    it = iter(loader)
    for step in range(steps_per_epoch):
        tw = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        x = batch["frames"].to(device, non_blocking=True)
        y = batch["labels"].to(device, non_blocking=True)
        t_wait += time.perf_counter() - tw
        x = normalize_dvs(x.float(), cfg.dvs_norm)
        x = augment_dvs(
            x, padding=cfg.crop_padding, hflip=cfg.hflip, rotate_deg=cfg.rotate_deg, generator=gen
        )
        x_rgb = None
        if bank is not None:
            rows = bank.draw(y, gen)
            if step == 0:
                bank.check_labels(rows, y)
            x_rgb = bank.sequences(rows, info.T)
        progress_frac = (epoch * steps_per_epoch + step) / max(1, total_steps)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
            loss, terms, logits = method_losses(
                net, StepInputs(x, x_rgb, y), cfg, progress=progress_frac, epoch=epoch, generator=gen
            )
        check_finite({**terms, "total": loss})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            B = y.shape[0]
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value) * B
            sums["total"] = sums.get("total", 0.0) + float(loss) * B
            correct += int((logits.float().mean(0).argmax(1) == y).sum())
            seen += B
        if bar is not None:
            el = time.perf_counter() - t0
            bar[0].update(
                bar[1],
                advance=1,
                loss=sums["total"] / seen,
                acc=100 * correct / seen,
                sps=seen / max(el, 1e-9),
            )
    if bar is not None:
        bar[0].stop()
    elapsed = time.perf_counter() - t0
    stats = torch.tensor([seen, t_wait, elapsed, correct, *sums.values()], dtype=torch.float64, device=device)
    if ddp.world_size > 1:
        dist.all_reduce(stats)
    seen_all = stats[0].item()
    terms_avg = {k: stats[4 + i].item() / max(seen_all, 1) for i, k in enumerate(sums)}
    return {
        "epoch": epoch,
        "method": cfg.method,
        "lr": lr,
        "loss": {k: v for k, v in terms_avg.items() if k != "event_ratio"},
        "event_ratio": terms_avg.get("event_ratio"),
        "train_acc": stats[3].item() / max(seen_all, 1),
        "train_on": "rgb" if finetune_on_rgb(cfg, epoch) else "dvs",
        "samples": int(seen_all),
        "samples_per_s": seen_all / max(stats[2].item() / ddp.world_size, 1e-9),
        "data_wait_fraction": stats[1].item() / max(stats[2].item(), 1e-9),
        "epoch_s": stats[2].item() / ddp.world_size,
    }


def _progress_bar(enabled: bool, epoch: int, epochs: int, steps: int):  # noqa: ANN202
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn(f"epoch {epoch + 1}/{epochs}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("acc {task.fields[acc]:.1f}%"),
        TextColumn("{task.fields[sps]:,.0f} samples/s"),
        TimeRemainingColumn(),
        transient=False,
    )
    task = bar.add_task("train", total=steps, loss=float("nan"), acc=0.0, sps=0.0)
    bar.start()
    return bar, task


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
    if not ckpt_path.is_file():
        raise TrainError(f"{ckpt_path}: checkpoint not found")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is a user error here
        raise TrainError(f"{ckpt_path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{ckpt_path}: not a tmkt-train checkpoint")
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
