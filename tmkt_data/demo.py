"""The embedded default job: write small recordings in every format, read, bin, summarise.

Needs no download: the recordings are a synthetic bar sweeping across the
sensor (ON events on its leading edge, OFF on its trailing edge, plus a little
uniform noise), clearly synthetic and deterministic for a given seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.binning import to_frames
from tmkt_data.events import make_events
from tmkt_data.formats import FORMATS, read_events

#: (format, file name, sensor (W, H), writer options) written by the demo.
DEMO_FILES: tuple[tuple[str, str, tuple[int, int], dict[str, Any]], ...] = (
    ("aedat2", "cifar10dvs_like.aedat", (128, 128), {}),
    ("aedat31", "gesture_like.aedat", (128, 128), {}),
    ("aedat4", "davis_like.aedat4", (346, 260), {}),
    ("atis_bin", "nmnist_like.bin", (34, 34), {}),
    ("npy", "tonic_like.npz", (128, 128), {}),
    ("hdf5", "table.h5", (240, 180), {}),
    ("mat", "cepdvs_like.mat", (128, 128), {}),
)


def sweeping_bar(
    sensor_size: tuple[int, int],
    *,
    duration_us: int = 300_000,
    events_per_edge_pixel: int = 2,
    noise_fraction: float = 0.05,
    seed: int = 0,
) -> np.ndarray:
    """Synthetic events of a bright vertical bar crossing the sensor from left to right.

    Args:
        sensor_size: (W, H) in pixels.
        duration_us: time the bar takes to cross, microseconds.
        events_per_edge_pixel: events each edge pixel emits as the edge passes.
        noise_fraction: extra uniformly random events, as a fraction of edge events.
        seed: random seed.
    """
    w, h = sensor_size
    rng = np.random.default_rng(seed)
    width = max(2, w // 8)
    cols = np.arange(w + width)
    # Leading edge reaches column c at time c * dt; trailing edge `width` columns later.
    dt = duration_us / (w + width)
    lead_c, rows = np.meshgrid(cols[:w], np.arange(h), indexing="ij")
    lead_c = np.repeat(lead_c.ravel(), events_per_edge_pixel)
    rows = np.repeat(rows.ravel(), events_per_edge_pixel)
    jitter = rng.uniform(0, dt, size=lead_c.size)
    t_on = lead_c * dt + jitter
    t_off = (lead_c + width) * dt + rng.uniform(0, dt, size=lead_c.size)
    n_noise = int(noise_fraction * 2 * lead_c.size)
    t = np.concatenate([t_on, t_off, rng.uniform(0, duration_us, n_noise)])
    x = np.concatenate([lead_c, lead_c, rng.integers(0, w, n_noise)])
    y = np.concatenate([rows, rows, rng.integers(0, h, n_noise)])
    p = np.concatenate([np.ones(lead_c.size), np.zeros(lead_c.size), rng.integers(0, 2, n_noise)])
    events = make_events(np.round(t).astype(np.int64), x, y, p)
    events["t"] -= events["t"][0]  # canonical events start at t = 0
    return events


def run_demo(out: Path, *, n_frames: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    """Write one recording per writable format into ``out``, read each back and bin it.

    Returns one summary row per file: the reader's summary plus the frame shape,
    the number of events the frames hold, and whether the events read back equal
    the events written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (fmt, name, sensor, opts) in enumerate(DEMO_FILES):
        mod = FORMATS[fmt]
        if not hasattr(mod, "write"):
            continue
        events = sweeping_bar(sensor, seed=seed + i)
        path = out / name
        mod.write(path, events, sensor, **opts)
        rec = read_events(path)
        frames = to_frames(rec.events, rec.sensor_size, n_time_bins=n_frames, remainder="last")
        same = rec.events.shape == events.shape and all(
            np.array_equal(rec.events[f], events[f]) for f in ("t", "x", "y", "p")
        )
        row = rec.summary()
        row.update(
            file=name,
            frames_shape=list(frames.shape),
            binned_events=int(frames.sum()),
            round_trip=bool(same),
        )
        rows.append(row)
    return rows
