"""Encode RGB images into the DVS frame geometry, as the reference code does.

Per image:

1. Resize to the store's frame size ``(H, W)`` with PIL's bilinear filter on
   the uint8 image (PIL antialiases when shrinking; an image already at the
   size is left as it is). Grayscale images are resized as one channel.
2. ``mode="hsv_v"`` (the reference): the HSV value channel,
   ``V = max(R, G, B) / 255``; for a grayscale image ``V = gray / 255``.
   ``mode="gray"``: ITU-R 601 luma ``(0.299 R + 0.587 G + 0.114 B) / 255``
   computed in float (a grayscale image: ``gray / 255``).
3. The single channel is copied into both polarity channels.

The result is float16 ``(N, 2, H, W)`` in [0, 1]. Repeating it over the T time
steps is the trainer's job (it is the same image at every step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from tmkt_data.rgb import RGBError

ENCODE_MODES = ("hsv_v", "gray")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def _as_uint8(img: np.ndarray, i: int) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise RGBError(f"image {i}: {arr.dtype} array of shape {arr.shape}, expected uint8 HxW or HxWx3")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise RGBError(f"image {i}: empty image of shape {arr.shape}")
    return arr


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bilinear resize of a uint8 ``HxW`` / ``HxWx3`` image to ``size = (H, W)`` (uint8)."""
    from PIL import Image

    h, w = int(size[0]), int(size[1])
    if img.shape[:2] == (h, w):
        return img
    out = Image.fromarray(np.ascontiguousarray(img)).resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def encode_one(img: np.ndarray, size: tuple[int, int], mode: str = "hsv_v", *, index: int = 0) -> np.ndarray:
    """One image -> float32 ``(H, W)`` in [0, 1] (the value copied into both channels)."""
    arr = resize_image(_as_uint8(img, index), size)
    if arr.ndim == 2:
        v = arr.astype(np.float32)
    elif mode == "hsv_v":
        v = arr.max(axis=2).astype(np.float32)
    else:
        v = (arr.astype(np.float64) @ _LUMA).astype(np.float32)
    return v / np.float32(255.0)


def encode_images(
    images: Sequence[np.ndarray] | np.ndarray | Iterable[np.ndarray],
    size: tuple[int, int],
    mode: str = "hsv_v",
    *,
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Encode images into float16 ``(N, 2, H, W)`` in [0, 1] (see the module docstring).

    Args:
        images: uint8 ``HxW`` or ``HxWx3`` images (an array, a list, or a lazy
            :class:`~tmkt_data.rgb.ImageFiles`).
        size: the store's frame size ``(H, W)``.
        mode: ``"hsv_v"`` (the reference) or ``"gray"`` (ITU-R 601 luma).
        on_progress: called with the number of images done after each image.

    Raises:
        RGBError: unknown mode, bad size, or an image that is not uint8 HxW/HxWx3.
    """
    if mode not in ENCODE_MODES:
        raise RGBError(f"encode mode {mode!r}, expected one of {', '.join(ENCODE_MODES)}")
    if len(size) != 2 or min(int(s) for s in size) < 1:
        raise RGBError(f"encode size {size!r}, expected (H, W) with positive sizes")
    h, w = int(size[0]), int(size[1])
    n = len(images) if hasattr(images, "__len__") else None
    if n is None:
        images = list(images)
        n = len(images)
    out = np.empty((n, 2, h, w), dtype=np.float16)
    for i, img in enumerate(images):
        out[i, 0] = encode_one(img, (h, w), mode, index=i)
        out[i, 1] = out[i, 0]
        if on_progress is not None:
            on_progress(i + 1)
    return out
