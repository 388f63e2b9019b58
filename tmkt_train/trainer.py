"""The training loop: ``fit(cfg)`` trains one run into ``cfg.out``.

The run folder holds:

- ``metrics.jsonl``: one JSON line per epoch (loss terms, train/val/test accuracy, lr,
  samples/s, data-wait fraction, wall time, the split the best epoch is selected on);
- ``checkpoint.pt``: the latest state (model, optimiser, schedule, step weights, RNG
  states, epoch), written atomically every epoch with its sha256 in ``checkpoint.pt.sha256``;
- ``best.pt``: the epoch with the best *validation* accuracy (never test; training accuracy
  when the store has no validation samples, with a warning at the start);
- ``curves.png``: loss and accuracy curves; ``config.toml``: the resolved config;
- ``tensorboard/``: the same scalars as TensorBoard event files (``tensorboard = true``,
  :mod:`tmkt_train.tensorboard`); ``run.lock`` while a ``fit`` runs.

Training follows He et al.'s reference settings unless the config says otherwise
(``docs/training-defaults.md``): the last incomplete training batch is dropped
(``drop_last``), AdamW leaves 1-D parameters (batch-norm weights, biases, the step
weights c_t) out of weight decay (``decay_1d``), CKA compares membrane potentials
(``cka_features``), and batch-norm statistics are shared by both streams unless
``bn_recalibrate`` re-estimates them on the DVS training data before each evaluation.

Every random draw of an epoch comes from generators seeded by (seed, epoch), so a run
resumed from the checkpoint of epoch e repeats epochs e+1... exactly as an uninterrupted
run. Under ``torchrun`` each rank trains on an equal share of the batches; only rank 0 writes.

The parts live in their own modules: :mod:`~tmkt_train.build` (store facts, model, loaders),
:mod:`~tmkt_train.optim` (optimizer, schedule), :mod:`~tmkt_train.seeding`,
:mod:`~tmkt_train.distributed`, :mod:`~tmkt_train.evaluation` (accuracy, batch-norm
recalibration, ``evaluate_checkpoint``), :mod:`~tmkt_train.checkpoint`,
:mod:`~tmkt_train.metrics` (``metrics.jsonl``, summary, curves) and
:mod:`~tmkt_train.runfolder` (run lock, resume checks). This module re-exports the names
callers import from it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tmkt_train import tensorboard
from tmkt_train.augment import augment_dvs, normalize_dvs
from tmkt_train.build import (
    Loaders,
    Parts,
    StoreInfo,
    build_model,
    build_parts,
    make_loaders,
    open_paired_store,
    uses_cka,
)
from tmkt_train.checkpoint import (
    CHECKPOINT_FORMAT,
    check_checkpoint,
    checkpoint_meta,
    checkpoint_state,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from tmkt_train.config import TrainConfig
from tmkt_train.data import RGBBank
from tmkt_train.distributed import (
    Dist,
    all_reduce_sum,
    init_distributed,
    resolve_device,
    start_process,
    wrap_ddp,
)
from tmkt_train.errors import TrainError
from tmkt_train.evaluation import evaluate, evaluate_checkpoint, recalibrate_bn
from tmkt_train.metrics import plot_curves, read_metrics, summarize, write_metrics
from tmkt_train.optim import lr_lambda, make_optimizer, make_scheduler
from tmkt_train.runfolder import RunLockedError, check_new_run, resume_checkpoint, run_folder, write_config
from tmkt_train.seeding import epoch_generator, seed_everything
from tmkt_train.steps import StepInputs, Streams, check_finite, finetune_on_rgb, method_losses

__all__ = [
    "CHECKPOINT_FORMAT",
    "Dist",
    "RunLockedError",
    "StoreInfo",
    "TrainError",
    "build_model",
    "check_checkpoint",
    "epoch_generator",
    "evaluate",
    "evaluate_checkpoint",
    "fit",
    "init_distributed",
    "load_checkpoint",
    "lr_lambda",
    "make_optimizer",
    "make_scheduler",
    "open_paired_store",
    "read_metrics",
    "recalibrate_bn",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
    "summarize",
    "train_one_epoch",
    "uses_cka",
    "write_metrics",
]


@dataclass
class Record:
    """The epochs so far: their metrics rows and the best one (by validation accuracy)."""

    start_epoch: int = 0
    best_val: float = -1.0
    best_epoch: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> bool:
        """Append the epoch's row with the best epoch so far; returns whether it is the new best."""
        on = "val" if row.get("val_acc") is not None else "train"
        select = row[f"{on}_acc"]
        improved = select > self.best_val
        if improved:
            self.best_val, self.best_epoch = select, row["epoch"]
        row["best_epoch"] = self.best_epoch
        row["selected_on"] = on
        self.rows.append(row)
        return improved


def fit(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one run as configured; returns the summary (best epoch, test accuracy there and at the end).

    ``resume`` continues the run in ``cfg.out`` (its settings must be those of its
    ``config.toml`` but for :data:`tmkt_train.runfolder.MID_RUN`); ``warn`` receives warnings
    (default: :func:`warnings.warn`). Nothing is written into the run folder before every
    check has passed.
    """
    ddp, device = start_process(cfg.device)
    info, pairs = open_paired_store(cfg)
    if cfg.tensorboard:
        tensorboard.require()  # a missing package stops the run before anything is written
    out = Path(cfg.out)
    with run_folder(out, lock=ddp.main):
        ckpt = resume_checkpoint(cfg, info, device) if resume else None
        if not resume and ddp.main:
            check_new_run(out)
        parts = build_parts(cfg, info, device, ddp)
        record = Record() if ckpt is None else resume_record(ckpt, parts, out)
        model = torch.compile(parts.model) if cfg.compile else parts.model
        net = wrap_ddp(Streams(model, parts.step_weights), device, ddp)
        bank = RGBBank.from_pairs(pairs, device) if cfg.method != "scratch" else None
        loaders = make_loaders(cfg, info, parts.train_ds, parts.batch_size, device, ddp)
        if ddp.main:
            warn_without_validation(cfg, info, ddp, warn)
            write_config(out, cfg)  # every check has passed: the first write into the run folder
        writer = None
        if cfg.tensorboard and ddp.main:
            writer = tensorboard.MetricsWriter(out / "tensorboard", record.start_epoch)
        t_run = time.perf_counter()
        try:
            for epoch in range(record.start_epoch, cfg.epochs):
                parts.train_ds.set_epoch(epoch)
                row = train_one_epoch(
                    net, parts.model, loaders.train, bank, parts.optimizer, parts.scheduler, cfg, info,
                    device, ddp, epoch=epoch, steps_per_epoch=parts.steps_per_epoch,
                    total_steps=parts.steps_per_epoch * cfg.epochs, progress=progress and ddp.main,
                )  # fmt: skip
                evaluate_epoch(row, parts, loaders, cfg, len(info.classes), device, ddp)
                row["wall_s"] = round(time.perf_counter() - t_run, 3)
                improved = record.add(row)
                if ddp.main:
                    save_epoch(out, cfg, info, parts, record, improved, writer)
                if on_epoch is not None:
                    on_epoch(row)
        finally:
            if writer is not None:
                writer.close()
    return summarize(record.rows)


def resume_record(ckpt: dict[str, Any], parts: Parts, out: Path) -> Record:
    """Load the checkpoint's states into the parts; the record of the epochs it had finished."""
    start, best_val, best_epoch = restore_checkpoint(
        ckpt, out / "checkpoint.pt", parts.model, parts.optimizer, parts.scheduler, parts.step_weights
    )
    rows = [r for r in read_metrics(out / "metrics.jsonl") if r["epoch"] < start]
    return Record(start, best_val, best_epoch, rows)


def warn_without_validation(
    cfg: TrainConfig, info: StoreInfo, ddp: Dist, warn: Callable[[str], None] | None
) -> None:
    """Say so when no validation accuracy can select the best epoch (the training accuracy will)."""
    n_val = len(info.splits["val"])
    if n_val >= ddp.world_size:
        return
    what = (
        "no validation samples" if n_val == 0 else f"{n_val} validation sample(s), fewer than the processes"
    )
    message = (
        f"{cfg.store}: the pairing index has {what}; the best epoch (best.pt) is selected on training "
        "accuracy (pair the store with validation samples to select on them)"
    )
    if warn is None:
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        warn(message)


def evaluate_epoch(
    row: dict[str, Any],
    parts: Parts,
    loaders: Loaders,
    cfg: TrainConfig,
    num_classes: int,
    device: torch.device,
    ddp: Dist,
) -> None:
    """Add the step weights and the validation and test accuracy to the epoch's row."""
    if parts.step_weights is not None:
        row["c_t"] = [float(c) for c in parts.step_weights.c.detach().cpu()]
    if loaders.recalibrate is not None:
        recalibrate_bn(parts.model, loaders.recalibrate, device, cfg, ddp)
    for split, loader in loaders.evaluate.items():
        res = evaluate(parts.model, loader, num_classes, device, cfg, ddp)
        row[f"{split}_acc"] = res["top1"]
        row[f"{split}_top5"] = res["top5"]


def save_epoch(
    out: Path,
    cfg: TrainConfig,
    info: StoreInfo,
    parts: Parts,
    record: Record,
    improved: bool,
    writer: Any,
) -> None:
    """Write the epoch's metrics, checkpoints (``best.pt`` when it improved) and, now and then, curves."""
    row = record.rows[-1]
    epoch = row["epoch"]
    state = checkpoint_state(
        cfg, checkpoint_meta(cfg, info), parts.model, parts.optimizer, parts.scheduler, parts.step_weights,
        epoch=epoch, best_val=record.best_val, best_epoch=record.best_epoch,
    )  # fmt: skip
    write_metrics(out / "metrics.jsonl", record.rows)
    if writer is not None:
        writer.write(row)
    if improved:
        save_checkpoint(state, out / "best.pt")
    save_checkpoint(state, out / "checkpoint.pt")
    if (epoch + 1) % 5 == 0 or epoch + 1 == cfg.epochs:  # plotting costs ~0.3 s
        plot_curves(record.rows, out / "curves.png", f"{cfg.method} / {cfg.model} on {Path(info.path).name}")


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
    return _epoch_row(all_reduce_sum(stats, ddp), list(sums), cfg, ddp, epoch=epoch, lr=lr)


def _epoch_row(
    stats: torch.Tensor, terms: list[str], cfg: TrainConfig, ddp: Dist, *, epoch: int, lr: float
) -> dict[str, Any]:
    """The epoch's metrics row from the summed [samples, wait s, elapsed s, correct, *loss sums]."""
    seen_all = stats[0].item()
    terms_avg = {k: stats[4 + i].item() / max(seen_all, 1) for i, k in enumerate(terms)}
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


def _progress_bar(enabled: bool, epoch: int, epochs: int, steps: int):
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
