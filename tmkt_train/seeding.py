"""Random state of a run: the global seeds, per-epoch generators, and the states a checkpoint keeps.

Every random draw of an epoch (sample order, RGB partners, mixing, augmentation) comes from
generators seeded by (seed, epoch), so a run resumed from the checkpoint of epoch e repeats
epochs e+1... exactly as an uninterrupted run; the global states (model initialisation,
DataLoader seeds) are saved and restored with the checkpoint.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use the global state
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int, salt: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded by (seed, epoch, salt)."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + int(epoch) * 7919 + salt) % (2**63 - 1))
    return g


def rng_state() -> dict[str, Any]:
    """The global torch, NumPy and Python random states (what a checkpoint keeps)."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
