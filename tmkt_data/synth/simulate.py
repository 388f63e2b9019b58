"""One recording (:func:`simulate_image`), the pixel model alone (:func:`crossing_events`) and
data sets on threads (``docs/formats.md`` §6.3-6.5, model version ``SIM_VERSION``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tmkt_data.events import EVENT_DTYPE
from tmkt_data.synth.kernels import _NEVER, _crossings, _grow, _simulate_kernel
from tmkt_data.synth.motion import _cached_path
from tmkt_data.synth.params import SimParams, SynthError
from tmkt_data.synth.render import pixel_transform, render_luminance


def crossing_events(
    t: Sequence[float],
    logs: np.ndarray,
    c_on: np.ndarray,
    c_off: np.ndarray,
    *,
    refractory_us: int = 0,
    leak_rate_hz: float = 0.0,
    ref0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The pixel model alone on given log intensities (for checks and other front ends).

    Args:
        t: sample times (us), increasing, length N.
        logs: ``L`` at those times, shape (N, H, W) (or (N, P) for P pixels on one row).
        c_on, c_off: per-pixel thresholds, shape (H, W) (or (P,)).
        refractory_us, leak_rate_hz: as in :class:`SimParams`.
        ref0: initial ``L_ref`` (default ``logs[0]``).

    Returns:
        (events sorted by t with x = column, y = row, final ``L_ref``).
    """
    t = np.asarray(t, dtype=np.float64)
    logs = np.asarray(logs, dtype=np.float64)
    if logs.ndim == 2:
        logs = logs[:, None, :]
    if logs.ndim != 3 or logs.shape[0] != t.shape[0] or t.shape[0] < 1:
        raise SynthError(
            f"logs of shape {logs.shape} and {t.shape[0]} times: expected (N, H, W) with N = len(t)"
        )
    if np.any(np.diff(t) <= 0):
        raise SynthError("sample times must increase strictly")
    _, h, w = logs.shape
    con = np.ascontiguousarray(np.broadcast_to(np.asarray(c_on, np.float64).reshape(-1), (h * w,)))
    coff = np.ascontiguousarray(np.broadcast_to(np.asarray(c_off, np.float64).reshape(-1), (h * w,)))
    if np.any(con <= 0) or np.any(coff <= 0):
        raise SynthError("thresholds must be positive")
    ref = (logs[0] if ref0 is None else np.asarray(ref0, np.float64)).reshape(-1).copy()
    last = np.full(h * w, _NEVER, dtype=np.int64)
    xs_of = np.tile(np.arange(w, dtype=np.int64), h)
    ys_of = np.repeat(np.arange(h, dtype=np.int64), w)
    buf = np.empty((16, 4), dtype=np.int64)
    n = 0
    leak = float(leak_rate_hz) * 1e-6
    for i in range(t.shape[0] - 1):
        l0 = np.ascontiguousarray(logs[i].reshape(-1))
        l1 = np.ascontiguousarray(logs[i + 1].reshape(-1))
        k = 0
        while k < h * w:
            n, k = _crossings(
                l0,
                l1,
                t[i],
                t[i + 1],
                ref,
                con,
                coff,
                last,
                int(refractory_us),
                leak,
                xs_of,
                ys_of,
                buf,
                n,
                k,
            )
            if k < h * w:
                buf = _grow(buf, n)
    return _to_events(buf[:n]), ref.reshape(h, w)


def _to_events(rows: np.ndarray) -> np.ndarray:
    ev = np.empty(rows.shape[0], dtype=EVENT_DTYPE)
    ev["t"] = rows[:, 0]
    ev["x"] = rows[:, 1]
    ev["y"] = rows[:, 2]
    ev["p"] = rows[:, 3]
    order = np.argsort(ev["t"], kind="stable")
    return ev[order]


def threshold_maps(params: SimParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (C_on, C_off) maps of shape (H, W), fixed for one recording."""
    w, h = params.sensor_size
    c_on = np.maximum(rng.normal(params.c_on, params.sigma, (h, w)), params.c_min)
    c_off = np.maximum(rng.normal(params.c_off, params.sigma, (h, w)), params.c_min)
    return c_on, c_off


def _shot_noise(params: SimParams, rng: np.random.Generator) -> np.ndarray:
    w, h = params.sensor_size
    lam = params.shot_rate_hz * params.duration_us / 1e6
    counts = rng.poisson(lam, h * w)
    n = int(counts.sum())
    pix = np.repeat(np.arange(h * w), counts)
    rows = np.empty((n, 4), dtype=np.int64)
    rows[:, 0] = rng.integers(0, params.duration_us + 1, n)
    rows[:, 1] = pix % w
    rows[:, 2] = pix // w
    rows[:, 3] = rng.integers(0, 2, n)
    return rows


def simulate_image(
    img: Any, params: SimParams, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Simulate one recording of a still image moving on a virtual monitor (``docs/formats.md`` §6).

    Args:
        img: (H, W) grey or (H, W, 3) RGB image, uint8 sRGB or float sRGB in [0, 1].
        params: simulator parameters.
        rng: the recording's generator (threshold mismatch, shot noise); an int
            seeds a new one; None uses ``params.seed``.

    Returns:
        (events, meta): canonical events sorted by t (t in us from the start of
        the motion, p in {0, 1}) and plain-JSON facts (counts, duration, ON
        fraction, threshold means, samples rendered, pixel transform).
    """
    params.validate()
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(params.seed if rng is None else rng)
    lum = render_luminance(img, params.render_size, params.resample)
    w, h = (int(v) for v in params.sensor_size)
    wr, hr = (int(v) for v in params.render_size)
    t, dx, dy = _cached_path(params)
    c_on, c_off = threshold_maps(params, rng)
    ox, oy = (w - wr) / 2.0, (h - hr) / 2.0
    # background border wide enough for every sample position of the sensor
    reach = max(abs(ox), abs(oy), abs(w - ox - wr), abs(h - oy - hr)) + float(
        max(np.abs(dx).max(), np.abs(dy).max())
    )
    pad = int(math.ceil(reach)) + 2
    padded = np.pad(lum, pad, mode="constant", constant_values=float(params.background))
    rows, rendered = _simulate_kernel(
        padded,
        pad,
        ox,
        oy,
        float(params.eps),
        w,
        h,
        t,
        dx,
        dy,
        c_on,
        c_off,
        int(params.refractory_us),
        float(params.leak_rate_hz) * 1e-6,
        params.resolved_max_delta_log(),
        int(params.max_substeps),
        8192,
    )
    n_signal = rows.shape[0]
    if params.shot_rate_hz > 0:
        rows = np.concatenate([rows, _shot_noise(params, rng)])
    ev = _to_events(rows)
    n = ev.shape[0]
    on = int(np.count_nonzero(ev["p"]))
    meta = {
        "events": n,
        "signal_events": int(n_signal),
        "shot_events": int(n - n_signal),
        "on_fraction": on / n if n else None,
        "first_us": int(ev["t"][0]) if n else None,
        "last_us": int(ev["t"][-1]) if n else None,
        "c_on_mean": float(c_on.mean()),
        "c_off_mean": float(c_off.mean()),
        "samples_rendered": int(rendered),
        "pixel_transform": pixel_transform(params, np.asarray(img).shape),
    }
    return ev, meta


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """Generator of sample ``index`` (independent of worker count and of ``limit``)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def simulate_chunks(
    images: Sequence[Any], params: SimParams, seeds: Sequence[int], *, workers: int | None, chunk: int
) -> Iterator[tuple[list[tuple[np.ndarray, dict[str, Any]]], float]]:
    """Simulate the images in order, ``chunk`` at a time, on ``workers`` threads (None: one per core).

    Image ``i`` uses :func:`sample_rng` ``(params.seed, seeds[i])``, so results do not depend on
    ``workers`` or ``chunk``. Yields each chunk's ``(events, meta)`` list and the seconds it took.
    The first image is simulated alone so the kernels compile (or load from the cache) before the
    threads start. Close the iterator to stop early: that shuts the threads down.
    """
    n = len(images)
    workers = max(1, int(workers or os.cpu_count() or 1))
    step = max(1, int(chunk))

    def one(i: int) -> tuple[np.ndarray, dict[str, Any]]:
        return simulate_image(images[i], params, sample_rng(params.seed, seeds[i]))

    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 and n > 1 else None
    try:
        for a in range(0, n, step):
            b = min(n, a + step)
            t0 = time.perf_counter()
            if pool is None:
                res = [one(i) for i in range(a, b)]
            elif a == 0:
                res = [one(0)] + list(pool.map(one, range(1, b)))
            else:
                res = list(pool.map(one, range(a, b)))
            yield res, time.perf_counter() - t0
    finally:
        if pool is not None:
            pool.shutdown()


def simulate_dataset(
    images: Sequence[Any],
    labels: Sequence[int] | None = None,
    ids: Sequence[str] | None = None,
    params: SimParams | None = None,
    workers: int | None = None,
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Simulate every image in parallel threads (the kernels release the GIL).

    Returns (events per image, meta per image); each meta also holds ``index``,
    ``source_id`` and ``label``. Image ``i`` always uses :func:`sample_rng`
    ``(params.seed, i)``, so results do not depend on ``workers``.
    """
    params = SimParams() if params is None else params
    params.validate()
    n = len(images)
    if labels is not None and len(labels) != n:
        raise SynthError(f"{len(labels)} labels for {n} images: expected one label per image")
    if ids is not None and len(ids) != n:
        raise SynthError(f"{len(ids)} ids for {n} images: expected one id per image")
    evs: list[np.ndarray] = []
    metas: list[dict[str, Any]] = []
    for res, _ in simulate_chunks(images, params, range(n), workers=workers, chunk=n):
        for ev, meta in res:
            i = len(evs)
            meta["index"] = i
            meta["source_id"] = str(ids[i]) if ids is not None else str(i)
            meta["label"] = int(labels[i]) if labels is not None else None
            evs.append(ev)
            metas.append(meta)
    return evs, metas
