"""Resizing count frames to the training resolution (after integration, as papers do)."""

from __future__ import annotations

import numpy as np

from tmkt_data.errors import EventsError

RESIZE_METHODS = ("bilinear", "area", "none")


def resize_frames(frames: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """Resize ``(..., H, W)`` frames to ``size = (h, w)``; returns float32.

    ``bilinear`` is ``torch.nn.functional.interpolate(frames.float(), size,
    mode="bilinear")`` (align_corners False, no antialias), the usual
    CIFAR10-DVS / N-Caltech101 recipe; ``area`` averages over the covered
    input area (adaptive average pooling); ``none`` only casts.
    """
    if method not in RESIZE_METHODS:
        raise EventsError(f"resize method {method!r} is not one of {', '.join(RESIZE_METHODS)}")
    f = np.asarray(frames, dtype=np.float32)
    if method == "none" or tuple(f.shape[-2:]) == tuple(size):
        return f
    import torch
    import torch.nn.functional as F

    lead = f.shape[:-2]
    x = torch.from_numpy(np.ascontiguousarray(f.reshape(-1, 1, *f.shape[-2:])))
    with torch.no_grad():
        y = F.interpolate(x, size=tuple(size), mode=method)
    return y.numpy().reshape(*lead, *size)
