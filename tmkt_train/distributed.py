"""This process's place in a run: the DDP process group (``torchrun``) and the device.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel,
each rank reads an equal share of the batches, metrics are summed across ranks and only
rank 0 writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tmkt_train.errors import TrainError


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


def start_process(device: str) -> tuple[Dist, torch.device]:
    """Join the process group (if any) and pick this process's device."""
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    ddp = init_distributed("cuda" if wants_cuda else "cpu")
    return ddp, resolve_device(device, ddp)


def all_reduce_sum(t: torch.Tensor, ddp: Dist | None) -> torch.Tensor:
    """Sum ``t`` over the ranks in place (nothing to do in a single process); returns it."""
    if ddp is not None and ddp.world_size > 1:
        dist.all_reduce(t)
    return t


def wrap_ddp(net: nn.Module, device: torch.device, ddp: Dist) -> nn.Module:
    """``net`` in DistributedDataParallel under DDP, else ``net`` itself."""
    if ddp.world_size <= 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
    )
