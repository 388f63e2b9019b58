"""Pictures of stored samples: ON and OFF counts in two colours, frames side by side or animated."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from tmkt_data.errors import TmktError
from tmkt_data.outputs import cannot_write, check_writable

ON_RGB = np.array([255, 80, 40], dtype=np.float32)  # warm red-orange
OFF_RGB = np.array([40, 170, 255], dtype=np.float32)  # sky blue


def frames_to_rgb(frames: np.ndarray) -> np.ndarray:
    """(T, 2, H, W) counts -> (T, H, W, 3) uint8; channel 0 OFF in blue, 1 ON in red, black background.

    Intensities are scaled by the 99th percentile of non-zero cells of the whole
    sample, so frames of one sample share a scale.
    """
    f = np.asarray(frames, dtype=np.float32)
    nz = f[f > 0]
    scale = float(np.percentile(nz, 99)) if nz.size else 1.0
    g = np.clip(f / max(scale, 1e-6), 0.0, 1.0)
    rgb = g[:, 1, :, :, None] * ON_RGB + g[:, 0, :, :, None] * OFF_RGB
    return np.clip(rgb, 0, 255).astype(np.uint8)


def save_frames_image(frames: np.ndarray, out: str | Path, *, scale: int | None = None) -> Path:
    """Write a sample's frames as a PNG strip (T frames in a row) or an animated GIF (by suffix)."""
    from PIL import Image

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".gif"):
        raise TmktError(f"{out}: unsupported picture type {suffix!r}, expected .png or .gif")
    rgb = frames_to_rgb(frames)
    t, h, w, _ = rgb.shape
    scale = scale or max(1, 256 // max(h, w))
    images = [Image.fromarray(fr).resize((w * scale, h * scale), Image.NEAREST) for fr in rgb]
    check_writable(out)
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".gif":
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=150, loop=0)
        else:
            gap = 2
            strip = Image.new("RGB", (t * (w * scale + gap) - gap, h * scale), (255, 255, 255))
            for i, im in enumerate(images):
                strip.paste(im, (i * (w * scale + gap), 0))
            strip.save(tmp, format="PNG")
        tmp.replace(out)
    except OSError as err:  # a full disk: one line, and no half-written picture left
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise cannot_write(out, err) from None
    return out
