"""Trajectories of the image on the virtual monitor (``docs/formats.md`` §6.2)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from tmkt_data.synth.params import SimParams


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau * tau)


def saccade_vertices(side: float) -> np.ndarray:
    """The four (dx, dy) path vertices (start, after saccade 1, 2, 3 = start) of the equilateral
    triangle of side ``side`` whose centroid is at the origin (x right, y down)."""
    a = side / 2.0
    h = side * math.sqrt(3.0) / 2.0
    return np.array([[-a, -h / 3.0], [0.0, 2.0 * h / 3.0], [a, -h / 3.0], [-a, -h / 3.0]])


def motion_path(params: SimParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample times (us, float64) and displacements ``dx, dy`` (sensor pixels) of the trajectory."""
    total = float(params.duration_us)
    n = int(math.ceil(total * params.sample_rate_hz / 1e6)) + 1
    t = np.linspace(0.0, total, n)
    if params.motion == "saccade":
        v = saccade_vertices(float(params.saccade_side_px))
        seg = np.minimum((t // params.saccade_us).astype(np.int64), 2)
        tau = np.clip((t - seg * params.saccade_us) / params.saccade_us, 0.0, 1.0)
        s = _min_jerk(tau)
        dx = v[seg, 0] + (v[seg + 1, 0] - v[seg, 0]) * s
        dy = v[seg, 1] + (v[seg + 1, 1] - v[seg, 1]) * s
    elif params.motion == "rcls":
        phi = 2.0 * np.pi * t / float(params.rcls_period_us)
        r = float(params.rcls_radius_px)
        dx, dy = r * np.cos(phi), r * np.sin(phi)
    else:
        dx = np.zeros_like(t)
        dy = np.zeros_like(t)
    return t, np.ascontiguousarray(dx), np.ascontiguousarray(dy)


@functools.lru_cache(maxsize=8)
def _cached_path(params: SimParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`motion_path`, computed once per parameter set (read-only arrays)."""
    out = motion_path(params)
    for a in out:
        a.flags.writeable = False
    return out


def trajectory_description(params: SimParams) -> dict[str, Any]:
    """Plain-JSON description of the trajectory (type, geometry, speed, duration)."""
    d: dict[str, Any] = {"type": params.motion, "duration_us": params.duration_us, "units": "sensor pixels"}
    if params.motion == "saccade":
        side = float(params.saccade_side_px)
        d.update(
            saccades=3,
            saccade_us=int(params.saccade_us),
            shape="equilateral triangle: down-right, up-right, left",
            side_px=side,
            vertices_px=saccade_vertices(side).tolist(),
            profile="minimum jerk per saccade: s = 10 tau^3 - 15 tau^4 + 6 tau^5",
            peak_speed_px_per_s=1.875 * side / (params.saccade_us / 1e6),
            geometry="approximate, read off the real N-MNIST samples (unverified)",
        )
    elif params.motion == "rcls":
        r = float(params.rcls_radius_px)
        d.update(
            shape="circle dx = r cos(2 pi t / P), dy = r sin(2 pi t / P)",
            radius_px=r,
            period_us=int(params.rcls_period_us),
            cycles=int(params.rcls_cycles),
            speed_px_per_s=2.0 * np.pi * r / (params.rcls_period_us / 1e6),
            geometry="CIFAR10-DVS-like closed loop (the real trajectory is unverified)",
        )
    return d
