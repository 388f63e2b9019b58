"""Benchmark ``tmkt_data.binning.to_frames`` against tonic ``ToFrame`` and a numpy bincount.

Builds a deterministic 300k-event 128x128 recording over ~1 s, checks that all three
give identical ``n_time_bins=10`` frames, then times them interleaved (the order
rotates every repetition) on one thread and one core and prints one JSON object.
No assertion on the timings: ``passed`` says whether the tonic ratio reaches the target.

Run from the project root: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_binning.py``.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import tonic  # noqa: E402
from tonic.transforms import ToFrame  # noqa: E402

from tmkt_data.binning import to_frames  # noqa: E402
from tmkt_data.events import EVENT_DTYPE  # noqa: E402

N_EVENTS = 300_000
WIDTH = HEIGHT = 128
N_BINS = 10
DURATION_US = 1_000_000
REPEATS = 15
TARGET = 20.0


def make_recording(seed: int = 20240607) -> np.ndarray:
    """Uniform random events on a 128x128 sensor, sorted by t over ~1 s."""
    rng = np.random.default_rng(seed)
    ev = np.empty(N_EVENTS, dtype=EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, DURATION_US, N_EVENTS))
    ev["x"] = rng.integers(0, WIDTH, N_EVENTS)
    ev["y"] = rng.integers(0, HEIGHT, N_EVENTS)
    ev["p"] = rng.integers(0, 2, N_EVENTS)
    return ev


def bincount_frames(ev: np.ndarray, width: int, height: int, n_bins: int) -> np.ndarray:
    """Plain-numpy reference: tonic's time-bin bounds, one ``np.bincount`` over flat cell indices."""
    t = ev["t"]
    w = (t[-1] - t[0]) // n_bins
    bounds = np.searchsorted(t, t[0] + np.arange(n_bins + 1) * w)
    lo, hi = bounds[:-1], bounds[1:]
    frame = np.repeat(np.arange(n_bins), hi - lo)
    sl = slice(int(lo[0]), int(hi[-1]))
    idx = ((frame * 2 + ev["p"][sl]) * height + ev["y"][sl].astype(np.int64)) * width + ev["x"][sl]
    counts = np.bincount(idx, minlength=n_bins * 2 * height * width)
    return counts.reshape(n_bins, 2, height, width).astype(np.int16)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    ev = make_recording()
    tonic_frame = ToFrame(sensor_size=(WIDTH, HEIGHT, 2), n_time_bins=N_BINS)
    methods = {
        "ours": lambda: to_frames(ev, (WIDTH, HEIGHT), n_time_bins=N_BINS),
        "tonic": lambda: tonic_frame(ev),
        "bincount": lambda: bincount_frames(ev, WIDTH, HEIGHT, N_BINS),
    }

    ours = methods["ours"]()  # also compiles / loads the Numba cache
    ref_tonic = methods["tonic"]()
    ref_bincount = methods["bincount"]()
    assert ours.dtype == ref_tonic.dtype == np.int16 and ours.shape == ref_tonic.shape
    assert np.array_equal(ours, ref_tonic), "to_frames differs from tonic ToFrame"
    assert np.array_equal(ours, ref_bincount), "to_frames differs from the bincount reference"
    for fn in methods.values():  # warm-up
        fn()

    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for rep in range(REPEATS):
            for k in range(len(names)):
                name = names[(rep + k) % len(names)]
                t0 = time.perf_counter()
                methods[name]()
                times[name].append(time.perf_counter() - t0)
    finally:
        gc.enable()

    med = {name: statistics.median(v) for name, v in times.items()}
    ratio_tonic = med["tonic"] / med["ours"]
    result = {
        "events": N_EVENTS,
        "sensor": [WIDTH, HEIGHT],
        "n_time_bins": N_BINS,
        "repeats": REPEATS,
        "ours_events_per_s": N_EVENTS / med["ours"],
        "tonic_events_per_s": N_EVENTS / med["tonic"],
        "bincount_events_per_s": N_EVENTS / med["bincount"],
        "median_ms": {name: 1e3 * v for name, v in med.items()},
        "ratio_vs_tonic": ratio_tonic,
        "ratio_vs_bincount": med["bincount"] / med["ours"],
        "target": TARGET,
        "passed": bool(ratio_tonic >= TARGET),
        "versions": {"numpy": np.__version__, "numba": numba.__version__, "tonic": tonic.__version__},
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
