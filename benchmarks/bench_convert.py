"""Benchmark ``tmkt-data convert`` on a CIFAR10-DVS-like tree against the same job done the tonic way.

Writes a deterministic synthetic tree ``<class>/cifar10_<class>_<i>.aedat`` (10 classes,
DVS128 128x128, AEDAT 2.0, moving polygons plus uniform noise), then measures in one run:

a. ``tmkt``: ``convert("cifar10dvs", ...)`` end to end (scan, sha256 of every file, read,
   bin 10 frames by event count, bilinear resize to 48x48, float16 store, finalise), dask
   threads = all cores;
b. ``tonic``: a tonic ``Dataset`` that reads each file with ``tonic.io`` the way tonic's
   ``CIFAR10DVS`` class reads its files (``os.walk`` with sorted dirs, events as
   ``(t uint64, x uint16, y uint16, p bool)``), ``ToFrame(n_event_bins=10)``, bilinear
   ``F.interpolate`` to 48x48, wrapped in ``DiskCachedDataset`` (h5 + lzf per sample),
   iterated once through a ``DataLoader`` with ``num_workers`` = cores to fill the cache;
c. ``decode``: our AEDAT 2.0 reader alone over all files on a thread pool (the roof).

tonic 1.7.0's ``CIFAR10DVS`` only reads the AEDAT4 re-release (``read_aedat4``) and its
``read_dvs_128`` is broken (it unpacks the 3-tuple header as 2 values), so (b) uses
``read_aedat_header_from_file`` + ``get_aer_events_from_file`` and decodes DVS128 addresses
with numpy in the spikingjelly orientation (x = 127 - raw_y, y = 127 - raw_x, ON = bit 0
clear), the orientation tmkt's cifar10dvs layout uses, so both produce the same frames.
Event counts are multiples of 10 so tonic's ``n_event_bins`` (remainder dropped) and tmkt's
``remainder="last"`` bin the same events; every sample's frames are compared (tonic's
float32 cast to float16 must equal the store exactly) before timings are reported.

The three are run ``--repeats`` times, interleaved (each run writes a fresh store/cache); the
median wall time gives the rates, ``cpu_ms_per_file`` is the median CPU time (process plus
DataLoader workers) per file, which other load on the machine disturbs less. The first tmkt
run in the process also pays one-off costs (Numba cache load). Files are in the page cache
(written just before). Prints one JSON object.

Run from the project root: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_convert.py``
(``--files 50 --events 100000 --repeats 1`` for a quick run, ``--workdir DIR`` to keep the tree).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tonic
import tonic.io
import tonic.transforms as tt
import torch
import torch.nn.functional as F
from tonic.dataset import Dataset

from tmkt_data.convert import ConvertOptions, convert
from tmkt_data.events import make_events
from tmkt_data.formats import aedat2, read_events
from tmkt_data.layouts.cifar10dvs import CLASSES

TARGET = 5.0
N_FRAMES = 10
SIZE = (48, 48)
SENSOR = 128


# --------------------------------------------------------------------------- synthetic tree


def synthetic_events(n_events: int, label: int, seed: int) -> np.ndarray:
    """About ``n_events`` (rounded down to a multiple of 10) DVS128 events over 1.1-1.4 s.

    80 % lie on the outline of a regular polygon (3-6 sides, size by class) whose centre
    follows a Lissajous path; the leading edge fires ON, the trailing edge OFF (10 % flipped).
    20 % are uniform noise. Deterministic in (label, seed).
    """
    rng = np.random.default_rng([seed, label])
    n = max(10, int(n_events * rng.uniform(0.9, 1.1)) // N_FRAMES * N_FRAMES)
    dur = int(rng.integers(1_100_000, 1_400_000))
    n_noise = n // 5
    n_sig = n - n_noise
    t = np.sort(rng.integers(0, dur, n_sig))
    ph = rng.uniform(0.0, 2 * np.pi, 2)
    s = t / dur
    cx = 64 + 30 * np.sin(2 * np.pi * s * (1 + label % 3) + ph[0])
    cy = 64 + 30 * np.cos(2 * np.pi * s * (1 + label % 4) + ph[1])
    sides = 3 + label % 4
    radius = 12 + 2 * label
    th = rng.uniform(0.0, 2 * np.pi, n_sig)
    rr = radius * np.cos(np.pi / sides) / np.cos(th % (2 * np.pi / sides) - np.pi / sides)
    x = np.clip(np.rint(cx + rr * np.cos(th) + rng.normal(0, 0.7, n_sig)), 0, SENSOR - 1)
    y = np.clip(np.rint(cy + rr * np.sin(th) + rng.normal(0, 0.7, n_sig)), 0, SENSOR - 1)
    p = (np.cos(th) * np.gradient(cx) + np.sin(th) * np.gradient(cy)) > 0
    p ^= rng.random(n_sig) < 0.1
    tn = rng.integers(0, dur, n_noise)
    xn = rng.integers(0, SENSOR, n_noise)
    yn = rng.integers(0, SENSOR, n_noise)
    pn = rng.integers(0, 2, n_noise)
    return make_events(
        np.concatenate([t, tn]),
        np.concatenate([x.astype(np.int64), xn]),
        np.concatenate([y.astype(np.int64), yn]),
        np.concatenate([p, pn]),
    )


def make_tree(root: Path, n_files: int, n_events: int, seed: int = 0) -> tuple[int, int]:
    """Write ``n_files`` recordings spread over the ten classes; returns (files, events)."""
    total = 0
    for j in range(n_files):
        label, i = j % len(CLASSES), j // len(CLASSES)
        cls = CLASSES[label]
        (root / cls).mkdir(parents=True, exist_ok=True)
        ev = synthetic_events(n_events, label, seed * 1_000_003 + i)
        aedat2.write(
            root / cls / f"cifar10_{cls}_{i}.aedat",
            ev,
            (SENSOR, SENSOR),
            chip="dvs128",
            orientation="spikingjelly",
        )
        total += ev.shape[0]
    return n_files, total


def tree_bytes(path: Path) -> int:
    """Apparent size (bytes) of every file below ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --------------------------------------------------------------------------- tonic path

TONIC_DTYPE = np.dtype([("t", np.uint64), ("x", np.uint16), ("y", np.uint16), ("p", bool)])


class Resize:
    """tonic-style transform: (T, 2, 128, 128) int16 counts -> float32 (T, 2, 48, 48), bilinear."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frames).float()
        return F.interpolate(x, size=self.size, mode="bilinear").numpy()


class CIFAR10DVSAedat2(Dataset):
    """tonic ``Dataset`` for the AEDAT 2.0 CIFAR10-DVS tree, built like ``tonic.datasets.CIFAR10DVS``."""

    dtype = TONIC_DTYPE
    ordering = dtype.names
    sensor_size = (128, 128, 2)
    classes = {c: i for i, c in enumerate(CLASSES)}

    def __init__(self, save_to: str, transform=None) -> None:
        super().__init__(save_to, transform=transform)
        self.location_on_system = os.path.expanduser(save_to)  # the tree itself, not <save_to>/<class>
        for path, dirs, files in os.walk(self.location_on_system):  # as CIFAR10DVS (files unsorted)
            dirs.sort()
            for file in files:
                if file.endswith(".aedat"):
                    self.data.append(os.path.join(path, file))
                    self.targets.append(self.classes[os.path.basename(path)])

    def __getitem__(self, index: int):
        version, start, _ = tonic.io.read_aedat_header_from_file(self.data[index])
        raw = tonic.io.get_aer_events_from_file(self.data[index], version, start)
        a = raw["address"]
        events = np.empty(a.shape[0], dtype=self.dtype)
        events["t"] = raw["timeStamp"]
        events["x"] = 127 - ((a >> 8) & 0x7F)
        events["y"] = 127 - ((a >> 1) & 0x7F)
        events["p"] = (a & 1) == 0
        target = self.targets[index]
        if self.transform is not None:
            events = self.transform(events)
        return events, target

    def __len__(self) -> int:
        return len(self.data)


def run_tonic(root: Path, cache: Path, workers: int) -> tuple[float, object, str]:
    """Fill tonic's disk cache for every file; returns (seconds, cached dataset, how it ran)."""
    t0 = time.perf_counter()
    transform = tt.Compose([tt.ToFrame(sensor_size=(128, 128, 2), n_event_bins=N_FRAMES), Resize(SIZE)])
    ds = CIFAR10DVSAedat2(str(root), transform=transform)
    cached = tonic.DiskCachedDataset(ds, cache_path=str(cache))
    try:
        pickle.dumps(cached)
        mode = f"DataLoader num_workers={workers}"
        loader = torch.utils.data.DataLoader(cached, batch_size=None, shuffle=False, num_workers=workers)
    except Exception as err:  # report why it ran serially
        mode = f"serial (dataset not picklable: {type(err).__name__})"
        loader = cached
    n = 0
    for _frames, _target in loader:
        n += 1
    assert n == len(ds)
    return time.perf_counter() - t0, cached, mode


# --------------------------------------------------------------------------- checks and roof


def stored_as(store: Path) -> str:
    """dtype and compressor of the store's frames, read from its metadata."""
    meta = json.loads((store / "frames" / "zarr.json").read_text())
    blosc = meta["codecs"][0]["configuration"]["codecs"][-1]["configuration"]
    return f"{meta['data_type']}, blosc {blosc['cname']}-{blosc['clevel']} {blosc['shuffle']}"


def check_same_frames(store: Path, cached) -> int:
    """Every tonic cache entry equals the store's frames of the same file; returns samples compared."""
    import zarr
    from tonic.cached_dataset import load_from_disk_cache

    g = zarr.open_group(str(store), mode="r")
    frames = g["frames"][:]
    row = {str(p): i for i, p in enumerate(g["source_path"][:])}
    root = Path(cached.dataset.location_on_system)
    for k, path in enumerate(cached.dataset.data):
        data, target = load_from_disk_cache(os.path.join(cached.cache_path, f"{k}_0.hdf5"))
        i = row[Path(path).relative_to(root).as_posix()]
        assert int(target) == int(g["labels"][i])
        ours = frames[i]
        # same counts, same bilinear rule; float32 rounding may differ (torch uses FMA), which can
        # move a value across a float16 rounding boundary: at most one float16 step apart
        np.testing.assert_allclose(ours.astype(np.float32), data, rtol=1e-3, atol=1e-3, err_msg=path)
        step = np.spacing(np.abs(data).astype(np.float16)).astype(np.float32)
        assert np.all(np.abs(ours.astype(np.float32) - data.astype(np.float16).astype(np.float32)) <= step), (
            path
        )
    return len(cached.dataset.data)


def decode_rate(root: Path, workers: int) -> tuple[float, int]:
    files = sorted(root.rglob("*.aedat"))

    def one(p: Path) -> int:
        return len(read_events(p, format="aedat2", chip="dvs128", orientation="spikingjelly"))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        n = sum(pool.map(one, files))
    return time.perf_counter() - t0, n


def _cpu() -> float:
    """CPU seconds of this process plus its finished children (DataLoader workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _rates(seconds: float, n_files: int, n_events: int) -> dict:
    return {
        "seconds": round(seconds, 3),
        "files_per_s": round(n_files / seconds, 1),
        "events_per_s": round(n_events / seconds),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=200, help="recordings in the tree (default 200)")
    ap.add_argument("--events", type=int, default=300_000, help="events per recording, +-10%% (default 300k)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each path (default 3)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the tree here (reused if it matches)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="threads/processes (default: cores)")
    args = ap.parse_args()
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="tmkt_bench_convert_")
        work = Path(tmp)
    else:
        work = args.workdir
        work.mkdir(parents=True, exist_ok=True)
    try:
        root = work / "raw"
        t0 = time.perf_counter()
        manifest = {"files": args.files, "events": args.events, "generator": 1}
        if (root / "manifest.json").is_file() and json.loads(
            (root / "manifest.json").read_text()
        ) == manifest:
            n_files, n_events = json.loads((root / "counts.json").read_text())
        else:
            shutil.rmtree(root, ignore_errors=True)
            n_files, n_events = make_tree(root, args.files, args.events)
            (root / "counts.json").write_text(json.dumps([n_files, n_events]))
            (root / "manifest.json").write_text(json.dumps(manifest))
        gen_s = time.perf_counter() - t0
        workers = int(args.workers)
        store, cache = work / "store.zarr", work / "tonic_cache"
        opts = ConvertOptions(frames=N_FRAMES, split_by="number", remainder="last", size=SIZE)
        runs: dict[str, list[tuple[float, float]]] = {"tmkt": [], "tonic": [], "decode_only": []}
        tonic_mode, compared, res = "", 0, None
        for rep in range(args.repeats):  # interleaved: slow drifts of the machine hit all paths
            for name in ("decode_only", "tmkt", "tonic"):
                shutil.rmtree(store if name == "tmkt" else cache, ignore_errors=True)
                c0, t0 = _cpu(), time.perf_counter()
                if name == "decode_only":
                    _, n = decode_rate(root, workers)
                    assert n == n_events
                elif name == "tmkt":
                    res = convert("cifar10dvs", root, store, opts, workers=workers)
                    assert res.files_converted == n_files and res.events == n_events
                else:
                    _, cached, tonic_mode = run_tonic(root, cache, workers)
                runs[name].append((time.perf_counter() - t0, _cpu() - c0))
                if name == "tonic" and rep == 0:
                    compared = check_same_frames(store, cached)  # untimed: every sample, both paths

        import zarr

        shard_samples = int(zarr.open_group(str(store), mode="r").attrs["shard_samples"])
        wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
        ratio = wall["tonic"] / wall["tmkt"]
        out = {
            "benchmark": "convert CIFAR10-DVS-like AEDAT 2.0 -> 10 frames by count, 48x48",
            "files": n_files,
            "events": n_events,
            "events_per_file": round(n_events / n_files),
            "raw_bytes": tree_bytes(root),
            "cores": os.cpu_count(),
            "workers": workers,
            "repeats": args.repeats,
            "tmkt": _rates(wall["tmkt"], n_files, n_events)
            | {
                "first_run_seconds": round(runs["tmkt"][0][0], 3),
                "cpu_ms_per_file": round(1e3 * cpu["tmkt"] / n_files, 2),
                "store_bytes": tree_bytes(store),
                "stored_as": stored_as(store),
                "shard_samples": shard_samples,
                "shards": res.shards_total,
            },
            "tonic": _rates(wall["tonic"], n_files, n_events)
            | {
                "first_run_seconds": round(runs["tonic"][0][0], 3),
                "cpu_ms_per_file": round(1e3 * cpu["tonic"] / n_files, 2),
                "cache_bytes": tree_bytes(cache),
                "stored_as": "float32, one h5 per sample, lzf",
                "ran_as": tonic_mode,
            },
            "decode_only": _rates(wall["decode_only"], n_files, n_events)
            | {"cpu_ms_per_file": round(1e3 * cpu["decode_only"] / n_files, 2), "threads": workers},
            "ratio_tmkt_over_tonic": round(ratio, 2),
            "ratio_tmkt_over_tonic_cpu": round(cpu["tonic"] / cpu["tmkt"], 2),
            "target": TARGET,
            "passed": bool(ratio >= TARGET),
            "tmkt_fraction_of_decode_roof": round(wall["decode_only"] / wall["tmkt"], 3),
            "ratio_cache_bytes_tonic_over_tmkt": round(tree_bytes(cache) / tree_bytes(store), 2),
            "frames_equal_checked_samples": compared,
            "all_seconds": {k: [round(w, 3) for w, _ in v] for k, v in runs.items()},
            "generate_seconds": round(gen_s, 1),
            "python": platform.python_version(),
        }
        print(json.dumps(out, indent=2))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
