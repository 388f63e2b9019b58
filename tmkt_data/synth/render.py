"""Source image -> linear luminance at the render size, and the source -> sensor pixel transform
(``docs/formats.md`` §6.1-6.2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tmkt_data.synth.params import SimParams, SynthError


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB EOTF on values in [0, 1]."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _as_unit_float(img: Any) -> np.ndarray:
    """Image as float64 sRGB values in [0, 1], shape (H, W) or (H, W, 3)."""
    a = np.asarray(img)
    ok = (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))) and a.shape[0] >= 1 and a.shape[1] >= 1
    if not ok:
        raise SynthError(f"image of shape {a.shape}: expected (H, W) grey or (H, W, 3) RGB")
    if a.ndim == 3:  # (H, W, 1) is grey, an alpha channel is ignored
        a = a[:, :, 0] if a.shape[2] == 1 else a[:, :, :3]
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float64)
        if not np.all(np.isfinite(f)) or f.min() < 0.0 or f.max() > 1.0:
            raise SynthError("float image has values outside [0, 1]: expected sRGB values in [0, 1]")
        return f
    raise SynthError(f"image of dtype {a.dtype}: expected uint8 (0-255) or float in [0, 1]")


def render_luminance(img: Any, render_size: tuple[int, int], resample: str = "bicubic") -> np.ndarray:
    """Source image -> linear luminance ``I`` in [0, 1] (float64, shape (H_r, W_r)) at ``render_size``
    (W_r, H_r sensor pixels): resized in sRGB space, linearised, Rec. 709 (``docs/formats.md`` §6.1)."""
    from PIL import Image

    f = _as_unit_float(img)
    wr, hr = int(render_size[0]), int(render_size[1])
    chans = [f] if f.ndim == 2 else [f[:, :, k] for k in range(3)]
    if (f.shape[1], f.shape[0]) != (wr, hr):
        method = {
            "bicubic": Image.Resampling.BICUBIC,
            "bilinear": Image.Resampling.BILINEAR,
            "area": Image.Resampling.BOX,
            "nearest": Image.Resampling.NEAREST,
            "lanczos": Image.Resampling.LANCZOS,
        }[resample]
        chans = [
            np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((wr, hr), method), np.float64)
            for c in chans
        ]
    chans = [_srgb_to_linear(np.clip(c, 0.0, 1.0)) for c in chans]
    if len(chans) == 1:
        return np.ascontiguousarray(chans[0])
    return np.ascontiguousarray(0.2126 * chans[0] + 0.7152 * chans[1] + 0.0722 * chans[2])


def pixel_transform(params: SimParams, source_shape: tuple[int, ...]) -> dict[str, Any]:
    """The exact source-pixel -> sensor-pixel mapping of one recording (plain JSON; the formula of
    ``docs/formats.md`` §6.2, in sensor pixels, origin top-left)."""
    hs, ws = int(source_shape[0]), int(source_shape[1])
    w, h = params.sensor_size
    wr, hr = params.render_size
    return {
        "source_size": [ws, hs],
        "render_size": [int(wr), int(hr)],
        "scale": [wr / ws, hr / hs],
        "offset_px": [(w - wr) / 2.0, (h - hr) / 2.0],
        "formula": "X = offset_x + dx(t) + u * scale_x; Y = offset_y + dy(t) + v * scale_y "
        "(continuous coordinates from the top-left corner; (dx, dy) is the trajectory)",
        "resize": f"{params.resample} in sRGB space, then linear luminance",
        "sensor_sampling": "area (equal to bilinear at 1:1 scale) at each sample time",
    }
