"""A run's metrics: ``metrics.jsonl`` (one JSON row per epoch), its summary, and ``curves.png``.

Each row holds the epoch's loss terms, train/val/test accuracy, lr, samples/s, data-wait
fraction and wall time, the best epoch so far and ``selected_on``: the split whose accuracy
picks the best epoch (``"val"``, or ``"train"`` when the store has no validation samples).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best-validation epoch, the test accuracy there and at the last epoch, the last epoch's
    (running) training and validation accuracy, and the split the best epoch was selected on."""
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
        "selected_on": rows[-1].get("selected_on", "val"),
        "wall_s": rows[-1]["wall_s"],
    }


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
