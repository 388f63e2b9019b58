"""Resizing count frames to the training resolution (after integration, as papers do)."""

from __future__ import annotations

import numba
import numpy as np

from tmkt_data.errors import EventsError

RESIZE_METHODS = ("bilinear", "area", "none")


def resize_frames(frames: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """Resize ``(..., H, W)`` frames to ``size = (h, w)``; returns float32.

    ``bilinear`` equals ``torch.nn.functional.interpolate(frames.float(), size,
    mode="bilinear")`` (align_corners False, no antialias), the usual
    CIFAR10-DVS / N-Caltech101 recipe, computed by a two-tap Numba kernel with
    torch's source-index rule (equal to float32 rounding); ``area`` averages over
    the covered input area (torch's adaptive average pooling); ``none`` only casts.
    """
    if method not in RESIZE_METHODS:
        raise EventsError(f"resize method {method!r} is not one of {', '.join(RESIZE_METHODS)}")
    f = np.asarray(frames, dtype=np.float32)
    if method == "none" or tuple(f.shape[-2:]) == tuple(size):
        return f
    if method == "bilinear":
        h, w = f.shape[-2:]
        ys = _bilinear_taps(h, int(size[0]))
        xs = _bilinear_taps(w, int(size[1]))
        flat = np.ascontiguousarray(f.reshape(-1, h, w))
        out = np.empty((flat.shape[0], int(size[0]), int(size[1])), dtype=np.float32)
        _bilinear_kernel(flat, *ys, *xs, out)
        return out.reshape(*f.shape[:-2], *size)
    import torch
    import torch.nn.functional as F

    lead = f.shape[:-2]
    x = torch.from_numpy(np.ascontiguousarray(f.reshape(-1, 1, *f.shape[-2:])))
    with torch.no_grad():
        y = F.interpolate(x, size=tuple(size), mode=method)
    return y.numpy().reshape(*lead, *size)


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weight of i1 for each output position, as torch computes them
    for ``align_corners=False`` without a scale factor: src = (dst + 0.5) * n_in / n_out - 0.5,
    clamped at 0; i1 = i0 + 1 except at the last input row."""
    scale = np.float32(n_in / n_out)
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, (src - i0).astype(np.float32)


@numba.njit(nogil=True, cache=True)
def _bilinear_kernel(src, y0, y1, ly, x0, x1, lx, out):  # pragma: no cover - compiled
    """Separable two-tap bilinear resampling of (N, H, W) float32 into (N, h, w)."""
    n, h, w = out.shape
    for k in range(n):
        for i in range(h):
            a0 = numba.float32(1.0) - ly[i]
            a1 = ly[i]
            r0 = y0[i]
            r1 = y1[i]
            for j in range(w):
                b0 = numba.float32(1.0) - lx[j]
                b1 = lx[j]
                top = b0 * src[k, r0, x0[j]] + b1 * src[k, r0, x1[j]]
                bot = b0 * src[k, r1, x0[j]] + b1 * src[k, r1, x1[j]]
                out[k, i, j] = a0 * top + a1 * bot
