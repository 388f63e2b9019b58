"""Checkpoints: what one holds, writing it atomically with its sha256 beside it, reading it back checked.

``checkpoint.pt`` (the latest epoch) and ``best.pt`` (the best-validation epoch) hold the
model, optimiser, schedule, step weights, RNG states, epoch and best-so-far, the resolved
config and ``meta`` (model, classes, T, method and the store's path, pairing id and
parameter hash). Each is written to a temporary file and renamed, then its sha256 goes to
``<name>.sha256`` (``sha256sum`` format) the same way; reading a checkpoint checks that sum
first, so a damaged file is refused instead of loading as garbage weights. (A checkpoint
without a ``.sha256``, from a run made before checksums, is read unchecked.)
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tmkt_train.build import StoreInfo
from tmkt_train.config import TrainConfig
from tmkt_train.errors import TrainError
from tmkt_train.losses import StepWeights
from tmkt_train.seeding import rng_state, set_rng_state

CHECKPOINT_FORMAT = 1


def checksum_path(path: Path) -> Path:
    """``<checkpoint>.sha256`` beside the checkpoint."""
    return path.with_name(path.name + ".sha256")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically, then its sha256 to ``<path>.sha256``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    _atomic_write(path, data)
    _atomic_write(checksum_path(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode())


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint, checking its sha256 (when it has one) before unpickling it.

    Raises:
        TrainError: no such file, a sum that differs (damaged file), an unreadable file, or a
            file that is not a tmkt-train checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: checkpoint not found")
    data = path.read_bytes()
    side = checksum_path(path)
    if side.exists():
        want = (side.read_text().split() or [""])[0]
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise TrainError(
                f"{path}: sha256 {got[:16]}... differs from the {want[:16]}... in {side.name}; the file is "
                "damaged (or was replaced): restore it from a copy"
            )
    try:
        ckpt = torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
    except Exception as err:  # any unreadable file is a user error here
        raise TrainError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a tmkt-train checkpoint")
    return ckpt


def check_checkpoint(ckpt: dict[str, Any], model_name: str, num_classes: int, T: int, where: str) -> None:
    """Refuse a checkpoint made for another model, class count or time-step count."""
    meta = ckpt.get("meta", {})
    for key, want in (("model", model_name), ("num_classes", num_classes), ("T", T)):
        if meta.get(key) != want:
            raise TrainError(f"{where}: checkpoint has {key} = {meta.get(key)!r}, this run needs {want!r}")


def checkpoint_meta(cfg: TrainConfig, info: StoreInfo) -> dict[str, Any]:
    """What a checkpoint was made for: model, classes, T, method and the store's identity."""
    return {
        "model": cfg.model,
        "num_classes": len(info.classes),
        "T": info.T,
        "classes": info.classes,
        "frame_hw": list(info.frame_hw),
        "method": cfg.method,
        "store": info.path,
        "pairing_id": info.pairing_id,
        "store_params_hash": info.params_hash,
    }


def checkpoint_state(
    cfg: TrainConfig,
    meta: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step_weights: StepWeights | None,
    *,
    epoch: int,
    best_val: float,
    best_epoch: int | None,
) -> dict[str, Any]:
    """Everything a resumed run needs to continue after ``epoch`` exactly as an uninterrupted one."""
    return {
        "format": CHECKPOINT_FORMAT,
        "meta": meta,
        "config": asdict(cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": None,  # bf16 autocast needs no loss scaling
        "step_weights": step_weights.state_dict() if step_weights is not None else None,
        "epoch": epoch,
        "best_val": best_val,
        "best_epoch": best_epoch,
        "rng": rng_state(),
    }


def restore_checkpoint(
    ckpt: dict[str, Any],
    where: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step_weights: StepWeights | None,
) -> tuple[int, float, int | None]:
    """Load a checkpoint's states into the run's parts; returns (next epoch, best value, best epoch)."""
    model.load_state_dict(ckpt["model"])
    saved_groups = len(ckpt["optimizer"]["param_groups"])
    if saved_groups != len(optimizer.param_groups):
        raise TrainError(
            f"{where}: the optimizer has {saved_groups} parameter group(s), this run has "
            f"{len(optimizer.param_groups)}; resume with the decay_1d of the original run"
        )
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if step_weights is not None and ckpt.get("step_weights") is not None:
        step_weights.load_state_dict(ckpt["step_weights"])
    start_epoch = int(ckpt["epoch"]) + 1
    best_val, best_epoch = ckpt.get("best_val", -1.0), ckpt.get("best_epoch")
    set_rng_state(ckpt["rng"])
    return start_epoch, best_val, best_epoch
