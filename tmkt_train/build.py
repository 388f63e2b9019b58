"""A run's parts, built from its config and its paired store: the store's facts, the model,
the step weights, the training set and the data loaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tmkt_train.config import TrainConfig
from tmkt_train.data import StoreBatches
from tmkt_train.distributed import Dist
from tmkt_train.errors import TrainError
from tmkt_train.losses import StepWeights
from tmkt_train.models import LIFParams, create_model
from tmkt_train.optim import make_optimizer, make_scheduler
from tmkt_train.seeding import seed_everything


@dataclass
class StoreInfo:
    """What the trainer needs to know about the paired store (and what identifies its content)."""

    path: str
    classes: list[str]
    T: int
    frame_hw: tuple[int, int]
    splits: dict[str, np.ndarray]
    pairing_id: str | None = None  # the pairing index's id (``tmkt-data pair``)
    params_hash: str | None = None  # the store's conversion parameters (``tmkt-data convert``)


def open_paired_store(cfg: TrainConfig) -> tuple[StoreInfo, Any]:
    """Open the store and its pairing index; check the time steps against the config."""
    from tmkt_data.pairing import read_pairs
    from tmkt_data.store import open_store, store_location

    g = open_store(cfg.store)
    T, _, H, W = g.attrs["frame_shape"]
    if cfg.time_steps is not None and cfg.time_steps != T:
        raise TrainError(
            f"--time-steps {cfg.time_steps}: the store {cfg.store} holds T = {T} frames per sample"
        )
    pairs = read_pairs(cfg.store)
    info = StoreInfo(
        str(store_location(cfg.store).resolve()),
        list(g.attrs["classes"]),
        int(T),
        (int(H), int(W)),
        pairs.dvs,
        pairing_id=pairs.attrs.get("pairing_id"),
        params_hash=g.attrs.get("params_hash"),
    )
    if len(info.splits["train"]) == 0:
        raise TrainError(f"{cfg.store}: the pairing index has no DVS training samples")
    return info, pairs


def uses_cka(cfg: TrainConfig) -> bool:
    """True when the method computes the CKA alignment term."""
    return cfg.method in ("sliding", "tmkt") and cfg.cka


def build_model(cfg: TrainConfig, num_classes: int, hw: tuple[int, int]) -> nn.Module:
    """The configured network, with the neuron settings of the config."""
    kw: dict[str, Any] = {
        "neuron": LIFParams(tau=cfg.tau, v_threshold=cfg.v_threshold, surrogate=cfg.surrogate),
        "shared_head": cfg.shared_head,
        # features feed CKA only: a run without CKA need not record membrane potentials
        "feature_source": cfg.cka_features if uses_cka(cfg) else "spikes",
    }
    if cfg.model in ("vgg_snn", "scnn"):
        if hw[0] != hw[1]:
            raise TrainError(f"model {cfg.model} needs square frames, the store has {hw[0]}x{hw[1]}")
        kw["input_size"] = hw[0]
    return create_model(cfg.model, num_classes, in_channels=2, **kw)


def build_step_weights(cfg: TrainConfig, T: int, device: torch.device) -> StepWeights | None:
    """The learnable per-step weights sigma(c_t) of sliding and tmkt (None when not used)."""
    if cfg.method in ("sliding", "tmkt") and cfg.step_weights:
        return StepWeights(T).to(device)
    return None


def local_batch_size(cfg: TrainConfig, ddp: Dist) -> int:
    """Each process's share of the global batch."""
    bs = cfg.batch_size // ddp.world_size if ddp.world_size > 1 else cfg.batch_size
    if bs < 1:
        raise TrainError(f"batch size {cfg.batch_size} is smaller than the {ddp.world_size} processes")
    return bs


def training_set(cfg: TrainConfig, info: StoreInfo, bs: int, ddp: Dist) -> tuple[StoreBatches, int]:
    """The shuffled DVS training batches of this rank and the steps an epoch runs."""
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
        window_shards=cfg.window_shards,
    )
    if len(train_ds) == 0:
        raise TrainError(
            f"{cfg.store}: {len(info.splits['train'])} DVS training samples cannot be shared by "
            f"{ddp.world_size} processes; use fewer processes"
        )
    steps = len(train_ds) if cfg.max_steps_per_epoch is None else min(len(train_ds), cfg.max_steps_per_epoch)
    return train_ds, steps


@dataclass
class Parts:
    """What trains: the model and step weights, their optimizer and schedule, the training set."""

    model: nn.Module
    step_weights: StepWeights | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_ds: StoreBatches
    batch_size: int  # this process's share of the global batch
    steps_per_epoch: int


def build_parts(cfg: TrainConfig, info: StoreInfo, device: torch.device, ddp: Dist) -> Parts:
    """Seed the run, then build its model, step weights, optimizer, training set and schedule."""
    seed_everything(cfg.seed)
    model = build_model(cfg, len(info.classes), info.frame_hw).to(device)
    step_weights = build_step_weights(cfg, info.T, device)
    optimizer = make_optimizer(cfg, model, step_weights)
    bs = local_batch_size(cfg, ddp)
    train_ds, steps = training_set(cfg, info, bs, ddp)
    return Parts(model, step_weights, optimizer, make_scheduler(cfg, optimizer, steps), train_ds, bs, steps)


@dataclass
class Loaders:
    """The run's DataLoaders: training, evaluation per non-empty split, BN recalibration (or None)."""

    train: torch.utils.data.DataLoader
    evaluate: dict[str, torch.utils.data.DataLoader]
    recalibrate: torch.utils.data.DataLoader | None


def make_loaders(
    cfg: TrainConfig, info: StoreInfo, train_ds: StoreBatches, bs: int, device: torch.device, ddp: Dist
) -> Loaders:
    """DataLoaders over ``train_ds`` and over the validation and test samples (in order, all kept)."""
    kw: dict[str, Any] = {
        "batch_size": None,
        "num_workers": cfg.num_workers,
        "pin_memory": device.type == "cuda",
    }
    if cfg.num_workers > 0:
        kw["persistent_workers"] = False
        kw["prefetch_factor"] = 4

    def ordered(split: str) -> torch.utils.data.DataLoader:
        ds = StoreBatches(
            info.path, info.splits[split], bs, shuffle=False, rank=ddp.rank, world_size=ddp.world_size
        )
        return torch.utils.data.DataLoader(ds, **kw)

    return Loaders(
        torch.utils.data.DataLoader(train_ds, **kw),
        {split: ordered(split) for split in ("val", "test") if len(info.splits[split])},
        ordered("train") if cfg.bn_recalibrate else None,
    )
