"""The orientation check: do the RGB images line up with the events of their instance partners?"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tmkt_data.pairing.common import SPLITS, PairingError

DIHEDRAL: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "flip_x": lambda a: a[:, ::-1],
    "flip_y": lambda a: a[::-1, :],
    "transpose": lambda a: a.T,
    "anti_transpose": lambda a: np.rot90(a, 2).T,
}

_METHOD = (
    "Pearson correlation of the summed event counts with the gradient magnitude of the "
    "encoded RGB image under each transform, averaged over the pairs"
)


def gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """``sqrt(d/dy^2 + d/dx^2)`` of a 2-D image (numpy central differences)."""
    gy, gx = np.gradient(np.asarray(img, dtype=np.float64))
    return np.hypot(gx, gy)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def orientation_scores(event_img: np.ndarray, rgb_img: np.ndarray) -> dict[str, float]:
    """Pearson correlation of an event-count image with the RGB image's gradient magnitude, per transform.

    ``rgb_img`` (an intensity image of the same ``(H, W)`` as ``event_img``)
    goes through each of the 8 dihedral transforms (:data:`DIHEDRAL`: numpy
    ``rot90`` is counter-clockwise, ``flip_x`` mirrors columns, ``flip_y``
    rows, ``anti_transpose`` = ``rot180`` then transpose) before its gradient
    magnitude is correlated with ``event_img``. The transform with the highest
    score is the one that brings the RGB image onto the events. Transforms
    that change the shape (90-degree turns of a non-square image) and
    constant images give NaN.
    """
    ev = np.asarray(event_img, dtype=np.float64)
    if ev.ndim != 2 or np.shape(rgb_img) != ev.shape:
        raise PairingError(
            f"orientation: images of shape {ev.shape} and {np.shape(rgb_img)}, expected equal (H, W)"
        )
    grad = gradient_magnitude(rgb_img)
    out = {}
    for name, fn in DIHEDRAL.items():
        g = fn(grad)
        out[name] = _corr(ev, g) if g.shape == ev.shape else float("nan")
    return out


def orientation_check(
    frames: Any, images: Any, dvs: dict[str, np.ndarray], partners: dict[str, np.ndarray], limit: int
) -> dict[str, Any]:
    """Mean :func:`orientation_scores` over up to ``limit`` instance pairs (evenly spaced, all splits).

    ``frames`` are the store's frames, ``images`` the encoded RGB images (both indexable);
    ``dvs`` and ``partners`` the DVS samples per split and their instance partners.
    """
    pairs = sorted(
        (int(i), int(p))
        for sp in SPLITS
        for i, p in zip(dvs[sp].tolist(), partners[sp].tolist(), strict=True)
        if p >= 0
    )
    if not pairs:
        return {"n_pairs": 0, "scores": {}, "best": None, "warning": False}
    if len(pairs) > limit > 0:
        pick = np.linspace(0, len(pairs) - 1, limit).round().astype(int)
        pairs = [pairs[k] for k in sorted(set(pick.tolist()))]
    sums = dict.fromkeys(DIHEDRAL, 0.0)
    used = dict.fromkeys(DIHEDRAL, 0)
    for i, p in pairs:
        ev = np.asarray(frames[i], dtype=np.float64).sum(axis=(0, 1))
        img = np.asarray(images[p][0], dtype=np.float64)
        for name, v in orientation_scores(ev, img).items():
            if math.isfinite(v):
                sums[name] += v
                used[name] += 1
    scores = {k: (sums[k] / used[k] if used[k] else float("nan")) for k in DIHEDRAL}
    finite = {k: v for k, v in scores.items() if math.isfinite(v)}
    best = max(finite, key=lambda k: finite[k]) if finite else None
    return {
        "n_pairs": len(pairs),
        "scores": scores,
        "best": best,
        "warning": best is not None and best != "identity",
        "method": _METHOD,
    }


def orientation_warning(check: dict[str, Any]) -> str | None:
    """The warning for a check (as JSON, NaN as None) whose best transform is not the identity."""
    if not check["warning"]:
        return None
    best = check["best"]
    return (
        "orientation: the RGB images line up best with the events under "
        f"{best!r}, not the identity (scores "
        f"{check['scores'][best]:.3f} vs "
        f"{check['scores']['identity']:.3f}); the orientation conventions may differ"
    )
