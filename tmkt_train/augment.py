"""Device-side input transforms: normalisation of event counts and DVS augmentation.

All functions take and return ``(B, T, C, H, W)`` float tensors on the device,
draw from an explicit ``torch.Generator`` and keep shapes fixed, so they run
inside a compiled step without recompiles. The same random transform is applied
to every time step of a sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def normalize_dvs(x: Tensor, mode: str) -> Tensor:
    """``none`` (raw counts, the reference), ``clip`` to [0, 1], ``log1p``, or per-sample ``max`` to [0, 1]."""
    if mode == "none":
        return x
    if mode == "clip":
        return x.clamp(0.0, 1.0)
    if mode == "log1p":
        return torch.log1p(x)
    if mode == "max":
        peak = x.flatten(1).amax(dim=1).clamp(min=1e-6)
        return x / peak.view(-1, *([1] * (x.dim() - 1)))
    raise ValueError(f"dvs_norm {mode!r}: expected none, clip, log1p or max")


def random_crop(x: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero-pad by ``padding`` pixels and crop back to (H, W) at a random offset per sample."""
    if padding <= 0:
        return x
    B, T, C, H, W = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (B,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (B,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(H, device=x.device)[None, :])[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(W, device=x.device)[None, :])[:, None, :]  # (B, 1, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = xp.permute(0, 3, 4, 1, 2)[b, rows, cols]  # (B, H, W, T, C)
    return out.permute(0, 3, 4, 1, 2).contiguous()


def random_hflip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1, 1), x.flip(-1), x)


def random_rotate(x: Tensor, max_deg: float, generator: torch.Generator | None = None) -> Tensor:
    """Rotate each sample by a uniform angle in [-max_deg, max_deg] (bilinear, zero fill)."""
    if max_deg <= 0:
        return x
    B, T, C, H, W = x.shape
    angle = (torch.rand(B, device=x.device, generator=generator) * 2 - 1) * math.radians(max_deg)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), (B, T * C, H, W), align_corners=False)
    out = F.grid_sample(x.reshape(B, T * C, H, W), grid, mode="bilinear", align_corners=False)
    return out.view(B, T, C, H, W)


def augment_dvs(
    x: Tensor, *, padding: int, hflip: bool, rotate_deg: float, generator: torch.Generator | None = None
) -> Tensor:
    """The configured DVS augmentation: random crop with padding, then flip, then rotation."""
    x = random_crop(x, padding, generator)
    if hflip:
        x = random_hflip(x, generator)
    return random_rotate(x, rotate_deg, generator)
