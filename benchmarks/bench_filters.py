"""Benchmark the event filters of ``tmkt_data.filters`` against tonic 1.7 on the same events.

Builds a deterministic 300k-event recording (``BENCH_FILTERS_EVENTS`` sets another count)
on a 346x260 sensor over ~2 s (a DAVIS346 resolution), checks that each filter returns exactly what its tonic counterpart returns
(``denoise_numpy``, ``refractory_period_numpy``, ``crop_numpy`` with its random offset fixed,
``transforms.Downsample(spatial_factor=1/F)``), then times both interleaved on one thread
and one core and prints one JSON line per filter: our median time, tonic's, and their
ratio (plus the best of each, less sensitive to other processes on a shared machine). tonic's denoise and refractory loop over events in Python (seconds per run), so
they get fewer repetitions. No assertion on the timings: ``passed`` says whether the
ratio reaches the target.

crop and downsample only copy records, so they are bound by memory bandwidth once the
arrays leave the caches: at 1M events (13 MB in, 13 MB out) on the 2-core development
machine downsample measured about 8x tonic (crop about 13x), against about 20x at 300k.

Run from the project root: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_filters.py [NAME ...]``
(names such as ``crop downsample`` run only those filters).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from unittest import mock  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import tonic  # noqa: E402
import tonic.functional as TF  # noqa: E402
from tonic.transforms import Downsample  # noqa: E402

from tmkt_data.events import EVENT_DTYPE  # noqa: E402
from tmkt_data.filters import crop, denoise, downsample, refractory  # noqa: E402

N_EVENTS = int(os.environ.get("BENCH_FILTERS_EVENTS", 300_000))
WIDTH, HEIGHT = 346, 260
DURATION_US = 2_000_000
TARGET = 10.0
CROP = (40, 30, 240, 180)  # x0, y0, w, h
FACTOR = 3


def make_recording(seed: int = 20240611) -> np.ndarray:
    """Uniform random events over the sensor and ``DURATION_US``, sorted by t."""
    rng = np.random.default_rng(seed)
    ev = np.empty(N_EVENTS, dtype=EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, DURATION_US, N_EVENTS))
    ev["x"] = rng.integers(0, WIDTH, N_EVENTS)
    ev["y"] = rng.integers(0, HEIGHT, N_EVENTS)
    ev["p"] = rng.integers(0, 2, N_EVENTS)
    return ev


def tonic_fixed_crop(ev: np.ndarray) -> np.ndarray:
    """tonic's random crop with its two ``np.random.rand()`` draws giving offsets (x0, y0)."""
    x0, y0, w, h = CROP
    draws = iter([(x0 + 0.5) / (WIDTH - w), (y0 + 0.5) / (HEIGHT - h)])
    with mock.patch.object(np.random, "rand", lambda: next(draws)):
        return TF.crop_numpy(ev, (WIDTH, HEIGHT), (w, h))


def time_pair(
    ours: Callable[[], np.ndarray], ref: Callable[[], np.ndarray], repeats: int
) -> dict[str, list[float]]:
    """Seconds of each run of each, interleaved (the order alternates every repetition)."""
    ours()  # warm-up (the Numba cache is loaded by the check before)
    times: dict[str, list[float]] = {"ours": [], "tonic": []}
    fns = {"ours": ours, "tonic": ref}
    gc.collect()
    gc.disable()
    try:
        for rep in range(repeats):
            for name in ("ours", "tonic") if rep % 2 == 0 else ("tonic", "ours"):
                t0 = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return times


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    ev = make_recording()
    down = Downsample(spatial_factor=1 / FACTOR)
    cases = {
        "denoise=5000": (lambda: denoise(ev, 5000), lambda: TF.denoise_numpy(ev, 5000), 3),
        "refractory=1000": (lambda: refractory(ev, 1000), lambda: TF.refractory_period_numpy(ev, 1000), 3),
        "crop={},{},{},{}".format(*CROP): (lambda: crop(ev, CROP), lambda: tonic_fixed_crop(ev), 21),
        f"downsample={FACTOR}": (lambda: downsample(ev, FACTOR), lambda: down(ev), 21),
    }
    versions = {"numpy": np.__version__, "numba": numba.__version__, "tonic": tonic.__version__}
    only = set(sys.argv[1:])
    for spec, (ours, ref, repeats) in cases.items():
        if only and spec.split("=")[0] not in only:
            continue
        a, b = ours(), ref()
        assert a.dtype == b.dtype and np.array_equal(a, b), f"{spec}: differs from tonic"
        times = time_pair(ours, ref, repeats)
        med = {name: statistics.median(v) for name, v in times.items()}
        best = {name: min(v) for name, v in times.items()}
        ratio = med["tonic"] / med["ours"]
        print(
            json.dumps(
                {
                    "filter": spec,
                    "events": N_EVENTS,
                    "kept": int(a.size),
                    "sensor": [WIDTH, HEIGHT],
                    "repeats": repeats,
                    "ours_ms": 1e3 * med["ours"],
                    "tonic_ms": 1e3 * med["tonic"],
                    "ours_events_per_s": N_EVENTS / med["ours"],
                    "tonic_events_per_s": N_EVENTS / med["tonic"],
                    "ratio_vs_tonic": ratio,
                    "best_ms": {name: 1e3 * v for name, v in best.items()},
                    "ratio_of_best": best["tonic"] / best["ours"],
                    "target": TARGET,
                    "passed": bool(ratio >= TARGET),
                    "versions": versions,
                    "machine": platform.processor() or platform.machine(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
