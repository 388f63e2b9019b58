"""TensorBoard copies of the per-epoch metrics (``tmkt-train fit --tensorboard``, ``tensorboard = true``).

Rank 0 writes, next to ``metrics.jsonl``, event files under ``RUN_DIR/tensorboard/``
holding the same numbers, one point per epoch (global step = the 0-based epoch):

| tag | ``metrics.jsonl`` key |
|---|---|
| ``loss/<term>`` | ``loss[<term>]`` (``cls_dvs``, ``cls_mix``, ``cka``, ``mag``, ``mrp``, ``total``) |
| ``accuracy/train``, ``accuracy/val``, ``accuracy/test`` | ``train_acc``, ``val_acc``, ``test_acc`` (fractions) |
| ``accuracy/val_top5``, ``accuracy/test_top5`` | ``val_top5``, ``test_top5`` |
| ``train/lr`` | ``lr`` (learning rate at the epoch's first step) |
| ``train/event_ratio`` | ``event_ratio`` (realised share of event frames in the mixed stream) |
| ``train/data_wait_fraction`` | ``data_wait_fraction`` (share of the epoch spent waiting for batches) |
| ``train/samples_per_s``, ``train/epoch_s`` | ``samples_per_s``, ``epoch_s`` (seconds) |
| ``c_t/<t>`` | ``c_t[t]``, the learnable step weight of time step t (CKA weight sigmoid(c_t)) |

Keys a run does not have (no validation split, no step weights) are left out.
TensorBoard is an optional extra (``pip install 'tmkt[tensorboard]'``); asking for
it without the package is a :class:`~tmkt_train.config.ConfigError`. A resumed run
purges the points from the resumed epoch on, so the curves hold each epoch once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmkt_train.config import ConfigError

__all__ = ["MetricsWriter", "require", "scalars"]

# metrics.jsonl key -> TensorBoard tag, for the top-level numbers of a row
_TAGS = {
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "test_acc": "accuracy/test",
    "val_top5": "accuracy/val_top5",
    "test_top5": "accuracy/test_top5",
    "lr": "train/lr",
    "event_ratio": "train/event_ratio",
    "data_wait_fraction": "train/data_wait_fraction",
    "samples_per_s": "train/samples_per_s",
    "epoch_s": "train/epoch_s",
}


def require() -> type:
    """The ``SummaryWriter`` class; :class:`ConfigError` when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "tensorboard = true: the tensorboard package is not installed; "
            "install it with pip install 'tmkt[tensorboard]' or leave --tensorboard off"
        ) from None
    return SummaryWriter


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard tags and values of one ``metrics.jsonl`` row (see the module table)."""
    out = {f"loss/{term}": float(v) for term, v in row.get("loss", {}).items() if v is not None}
    for key, tag in _TAGS.items():
        if row.get(key) is not None:
            out[tag] = float(row[key])
    for t, c in enumerate(row.get("c_t") or []):
        out[f"c_t/{t}"] = float(c)
    return out


class MetricsWriter:
    """Writes each epoch's row to ``log_dir``; ``start_epoch`` > 0 (a resume) purges later points."""

    def __init__(self, log_dir: str | Path, start_epoch: int = 0) -> None:
        writer_cls = require()
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self._writer = writer_cls(str(log_dir), purge_step=start_epoch if start_epoch > 0 else None)

    def write(self, row: dict[str, Any]) -> None:
        """Add the row's scalars at step ``row["epoch"]`` and flush them to disk."""
        for tag, value in scalars(row).items():
            self._writer.add_scalar(tag, value, int(row["epoch"]))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
