"""Benchmark random-order training reads: tmkt store vs tonic ``DiskCachedDataset`` vs per-sample ``.npy``.

Builds N synthetic CIFAR10-DVS-like samples (10 frames, 2 polarities, 48x48: Poisson event
counts of a moving textured image on a 128x128 DVS, about 300k events per sample, resized
bilinearly to 48x48 as ``convert --size 48`` does; 400 are generated, the others are shifted
and mirrored copies of them) and writes the same frames three ways:

* ``tmkt``: a frame store (``create_store``/``write_shard``/``finalize_store``, float16,
  the shard size ``convert`` would pick), read by the trainer's loader,
  ``DataLoader(StoreBatches(store, all indices, 64, shuffle=True), batch_size=None, num_workers=2)``;
* ``tonic``: ``tonic.DiskCachedDataset`` filled by running it over a plain Dataset of the
  float32 frames (one h5 file per sample, lzf), read with
  ``DataLoader(cached, batch_size=64, shuffle=True, num_workers=2)``;
* ``npy``: one uncompressed float16 ``.npy`` per sample, ``DataLoader(batch_size=64,
  shuffle=True, num_workers=2)``: the per-sample-file roof;
* ``frame_dataset``: the same store through the map-style ``tmkt_data.FrameDataset(store,
  "train")`` (float32 items, as tonic's cache returns them), read like tonic's cache,
  ``DataLoader(ds, batch_size=64, shuffle=True, num_workers=2)``.

Random access without a DataLoader is timed too: ``ds[i]`` over one random permutation of
every sample, in this process, for ``FrameDataset`` and tonic's cache (interleaved, median of
the passes, microseconds per sample).

Frames are rounded to float16 precision first, so all four paths must return identical
values (checked on several samples before timing). The three loaders are timed epoch by epoch,
interleaved, with no warm-up epoch (worker start-up included); the median epoch is reported,
with the CPU time it took (main process plus its DataLoader workers) per sample, which
other load on the machine disturbs less than wall time.
Files are in the page cache (just written). Prints one JSON object.

What checking the checksums costs (every sample chunk's crc32c against its shard record,
``tmkt_data/store/checksums.py``): ``tmkt_unchecked`` and ``frame_dataset_unchecked`` are the
same two readers timed in the same epochs with the check switched off
(``tmkt_data.store.checksums.set_checks(False)``, inherited by the forked DataLoader workers);
``checksum_cost`` gives both figures and the slowdown (target: under 5 %, CPU time per sample,
which other load on the machine disturbs less than wall time). ``--check-cost`` builds only the
store and times only these four loaders and ``FrameDataset`` random access (faster).

Run from the project root: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_read.py``
(``--samples 500`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from tmkt_data import FrameDataset
from tmkt_data.convert import default_shard_samples
from tmkt_data.store import StoreGeometry, create_store, finalize_store, sample_row, write_shard
from tmkt_data.store.checksums import set_checks
from tmkt_train.batches import StoreBatches

T, P, SENSOR, SIZE = 10, 2, 128, 48
BATCH = 64
POOL = 400  # generated samples; the others are shifted/mirrored copies (compression is per sample)
WORKERS = 2
TARGET_SPEED = 3.0
TARGET_SIZE = 2.0
TARGET_FRAME_DATASET = 1.0  # FrameDataset must read faster than tonic's cache
TARGET_CHECK_COST = 5.0  # checking the checksums may cost at most 5 % (CPU time per sample)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def synthetic_frames(label: int, seed: int, events: int = 300_000) -> np.ndarray:
    """(T, 2, 48, 48) float32 frames, values float16-exact; deterministic in (label, seed).

    A smooth random image (class-dependent blob count and scale) moves along a Lissajous
    path; each 128x128 pixel fires Poisson(rate) ON/OFF events with the rate proportional
    to the positive/negative temporal brightness change, plus uniform noise (20 %).
    """
    rng = np.random.default_rng([seed, label])
    n_blobs = 3 + label
    bx, by = rng.uniform(20, 108, n_blobs), rng.uniform(20, 108, n_blobs)
    bs, ba = rng.uniform(4, 8 + label, n_blobs), rng.uniform(-1, 1, n_blobs)
    ph = rng.uniform(0, 2 * np.pi, 2)
    s = np.arange(T + 1)[:, None] / T
    cx = bx + 20 * np.sin(2 * np.pi * s * (1 + label % 3) + ph[0])  # (T + 1, blobs)
    cy = by + 20 * np.cos(2 * np.pi * s * (1 + label % 4) + ph[1])
    pix = np.arange(SENSOR, dtype=np.float64)
    gx = np.exp(-((pix - cx[..., None]) ** 2) / (2 * bs[:, None] ** 2))  # separable Gaussian blobs
    gy = np.exp(-((pix - cy[..., None]) ** 2) / (2 * bs[:, None] ** 2)) * ba[:, None]
    imgs = np.einsum("tby,tbx->tyx", gy, gx)  # (T + 1, H, W) brightness
    diff = np.diff(imgs, axis=0)  # (T, H, W)
    rate = np.stack([np.maximum(-diff, 0), np.maximum(diff, 0)], axis=1)  # OFF, ON
    rate *= 0.8 * events / max(float(rate.sum()), 1e-9)
    rate += 0.2 * events / rate.size
    counts = rng.poisson(rate).astype(np.float32)
    x = F.interpolate(torch.from_numpy(counts), size=(SIZE, SIZE), mode="bilinear").numpy()
    return x.astype(np.float16).astype(np.float32)


def codec_of(store: Path) -> str:
    """The frames' inner codec as ``blosc <cname>-<clevel> <shuffle>``."""
    meta = json.loads((store / "frames" / "zarr.json").read_text())
    inner = meta["codecs"][0]["configuration"]["codecs"]
    conf = next(c["configuration"] for c in inner if c["name"] == "blosc")
    return f"blosc {conf['cname']}-{conf['clevel']} {conf['shuffle']}"


def dir_bytes(path: Path) -> int:
    """Apparent size (bytes) of every file below ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class FramesDataset(Dataset):
    """The frames as a plain map-style dataset (what tonic's cache is filled from)."""

    def __init__(self, frames: np.ndarray, labels: np.ndarray) -> None:
        self.frames, self.labels = frames, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.frames[i], int(self.labels[i])


class NpyDataset(Dataset):
    """One ``.npy`` file per sample."""

    def __init__(self, folder: Path, labels: np.ndarray) -> None:
        self.folder, self.labels = str(folder), labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.load(os.path.join(self.folder, f"{i}.npy")), int(self.labels[i])


def build(work: Path, n: int, store_only: bool = False) -> dict:
    """Write the store, tonic's cache and the .npy folder (``store_only``: the store alone);
    returns paths, labels, build times."""
    t0 = time.perf_counter()
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)
    labels.sort(kind="stable")  # store order: sorted by class like CIFAR10-DVS sample ids
    frames = np.empty((n, T, P, SIZE, SIZE), dtype=np.float32)
    base: dict[int, np.ndarray] = {}
    per_class = max(1, POOL // len(CLASSES))
    for i in range(n):  # a pool of generated samples per class, the rest rolled/flipped copies
        lab = int(labels[i])
        key = lab * per_class + i % per_class
        if key not in base:
            base[key] = synthetic_frames(lab, key)
        r = np.random.default_rng([i, 7])
        x = np.roll(base[key], tuple(r.integers(-8, 9, 2)), axis=(-2, -1))
        frames[i] = x[..., ::-1] if r.random() < 0.5 else x
    gen_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    store = work / "store.zarr"
    shape = (T, P, SIZE, SIZE)
    shard = default_shard_samples(n, shape, 2)
    geo = StoreGeometry(n, shape, "float16", shard)
    create_store(store, geo, {"dataset": "synthetic", "classes": list(CLASSES)})
    for k in range(geo.n_shards):
        a, b = geo.shard_range(k)
        rows = [
            sample_row(f"{CLASSES[labels[i]]}/{i:06d}", labels[i], "train", valid=True) for i in range(a, b)
        ]
        write_shard(store, k, frames[a:b].astype(np.float16), rows, "bench")
    finalize_store(store)
    store_s = time.perf_counter() - t0
    if store_only:
        seconds = {"generate": gen_s, "store_write": store_s}
        return {
            "frames": frames,
            "labels": labels,
            "store": store,
            "shard_samples": shard,
            "seconds": seconds,
        }

    import tonic

    t0 = time.perf_counter()
    cache = work / "tonic_cache"
    filler = tonic.DiskCachedDataset(FramesDataset(frames, labels), cache_path=str(cache))
    for i in range(n):
        filler[i]
    tonic_s = time.perf_counter() - t0

    npy = work / "npy"
    npy.mkdir()
    for i in range(n):
        np.save(npy / f"{i}.npy", frames[i].astype(np.float16))
    return {
        "frames": frames,
        "labels": labels,
        "store": store,
        "cache": cache,
        "npy": npy,
        "shard_samples": shard,
        "seconds": {"generate": gen_s, "store_write": store_s, "tonic_cache_fill": tonic_s},
    }


def loaders(data: dict, store_only: bool = False) -> dict:
    """(dataset, DataLoader factory) per timed reader; ``*_unchecked`` are timed with checks off."""
    ours = StoreBatches(data["store"], np.arange(len(data["labels"])), BATCH, shuffle=True, seed=0)
    fd = FrameDataset(data["store"], "train")
    assert len(fd) == len(data["labels"])
    out = {
        "tmkt": (ours, lambda: DataLoader(ours, batch_size=None, num_workers=WORKERS)),
        "frame_dataset": (fd, lambda: DataLoader(fd, batch_size=BATCH, shuffle=True, num_workers=WORKERS)),
    }
    out["tmkt_unchecked"], out["frame_dataset_unchecked"] = out["tmkt"], out["frame_dataset"]
    if store_only:
        return out
    import tonic

    cached = tonic.DiskCachedDataset(None, cache_path=str(data["cache"]))
    assert len(cached) == len(data["labels"])
    npy = NpyDataset(data["npy"], data["labels"])
    out["tonic"] = (cached, lambda: DataLoader(cached, batch_size=BATCH, shuffle=True, num_workers=WORKERS))
    out["npy"] = (npy, lambda: DataLoader(npy, batch_size=BATCH, shuffle=True, num_workers=WORKERS))
    return out


def checked(name: str, fn, *args):
    """``fn(*args)`` with the checksum checks on, or off for a ``*_unchecked`` reader."""
    set_checks(not name.endswith("_unchecked"))
    try:
        return fn(*args)
    finally:
        set_checks(True)


def check_cost(rate: dict, cpu_ms: dict, access_us: dict) -> dict:
    """Checked vs unchecked figures of both readers and what checking costs, in percent."""
    out: dict = {}
    for name in ("tmkt", "frame_dataset"):
        out[name] = {
            "samples_per_s": {
                "checked": round(rate[name], 1),
                "unchecked": round(rate[f"{name}_unchecked"], 1),
            },
            "cpu_ms_per_sample": {
                "checked": round(cpu_ms[name], 4),
                "unchecked": round(cpu_ms[f"{name}_unchecked"], 4),
            },
            "cpu_cost_pct": round(100 * (cpu_ms[name] / cpu_ms[f"{name}_unchecked"] - 1), 2),
            "wall_cost_pct": round(100 * (rate[f"{name}_unchecked"] / rate[name] - 1), 2),
        }
    ra = access_us
    out["frame_dataset_random_access_us"] = {
        "checked": round(ra["frame_dataset"], 1),
        "unchecked": round(ra["frame_dataset_unchecked"], 1),
        "cost_pct": round(100 * (ra["frame_dataset"] / ra["frame_dataset_unchecked"] - 1), 2),
    }
    out["target_pct"] = TARGET_CHECK_COST
    out["passed"] = bool(
        max(out["tmkt"]["cpu_cost_pct"], out["frame_dataset"]["cpu_cost_pct"]) < TARGET_CHECK_COST
    )
    return out


def check_equal(data: dict, sets: dict, probe: list[int]) -> int:
    """The same samples read through each path give identical frames and labels."""
    want = data["frames"]
    ours = sets["tmkt"][0]
    seen = 0
    for batch in ours:  # in-process, first epoch order; check every sample it yields
        frames, labels = batch["frames"].numpy(), batch["labels"].numpy()
        for j, i in enumerate(batch["index"].tolist()):
            np.testing.assert_array_equal(frames[j].astype(np.float32), want[i])
            assert labels[j] == data["labels"][i]
            seen += 1
    assert seen == len(want)
    fd = sets["frame_dataset"][0]
    for i in range(len(fd)):  # every sample, float32 like tonic's cache
        x, y = fd[i]
        assert x.dtype == np.float32 and y == int(data["labels"][i])
        np.testing.assert_array_equal(x, want[i])
    if "tonic" not in sets:
        return 0
    cached, npy = sets["tonic"][0], sets["npy"][0]
    for i in probe:
        x, y = cached[i]
        np.testing.assert_array_equal(x, want[i])
        assert x.dtype == np.float32 and int(y) == int(data["labels"][i])
        z, y2 = npy[i]
        np.testing.assert_array_equal(z.astype(np.float32), want[i])
        assert y2 == int(data["labels"][i])
    return len(probe)


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def time_epoch(ds, make, epoch: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of main process + its finished workers, samples) of one epoch."""
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
    c0 = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    n = 0
    loader = make()
    for batch in loader:
        n += len(batch["labels"] if isinstance(batch, dict) else batch[1])
    dt = time.perf_counter() - t0
    del loader  # workers exit and are reaped once the iterator is exhausted
    return dt, _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN) - c0, n


def time_random_access(ds, order: np.ndarray) -> float:
    """Microseconds per ``ds[i]`` over ``order``, in this process (no DataLoader)."""
    t0 = time.perf_counter()
    for i in order.tolist():
        ds[i]
    return 1e6 * (time.perf_counter() - t0) / len(order)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=3000, help="samples (default 3000)")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per loader (default 3)")
    ap.add_argument("--workdir", type=Path, default=None, help="write the data here (emptied first)")
    ap.add_argument(
        "--check-cost",
        action="store_true",
        help="only what checking the checksums costs: the store's two readers, checked and unchecked",
    )
    args = ap.parse_args()
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="tmkt_bench_read_")
        work = Path(tmp)
    else:
        work = args.workdir
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    try:
        data = build(work, args.samples, store_only=args.check_cost)
        sets = loaders(data, store_only=args.check_cost)
        probe = sorted({0, 1, args.samples // 2, args.samples - 1})
        n_probed = check_equal(data, sets, probe)
        times: dict[str, list[float]] = {name: [] for name in sets}
        cpu: dict[str, list[float]] = {name: [] for name in sets}
        for epoch in range(args.epochs):
            for name, (ds, make) in sets.items():
                dt, dc, n = checked(name, time_epoch, ds, make, epoch)
                assert n == args.samples, (name, n)
                times[name].append(dt)
                cpu[name].append(dc)
        access_names = ["frame_dataset", "frame_dataset_unchecked"] + ([] if args.check_cost else ["tonic"])
        access: dict[str, list[float]] = {name: [] for name in access_names}
        for p in range(args.epochs):
            order = np.random.default_rng([p, 11]).permutation(args.samples)
            for name in access:
                access[name].append(checked(name, time_random_access, sets[name][0], order))
        access_us = {name: statistics.median(v) for name, v in access.items()}
        rate = {name: args.samples / statistics.median(ts) for name, ts in times.items()}
        cpu_ms = {name: 1e3 * statistics.median(cs) / args.samples for name, cs in cpu.items()}
        cost = check_cost(rate, cpu_ms, access_us)
        if args.check_cost:
            print(json.dumps({
                "benchmark": "checksum checks on store reads, 10x2x48x48 frames, batch 64, num_workers=2",
                "samples": args.samples,
                "epochs_timed": args.epochs,
                "cores": os.cpu_count(),
                "checksum_cost": cost,
                "epoch_seconds": {k: [round(t, 3) for t in ts] for k, ts in times.items()},
                "equal_frames_checked": {"tmkt": args.samples, "frame_dataset": args.samples},
            }, indent=2))  # fmt: skip
            return
        size = {
            "tmkt": dir_bytes(data["store"]),
            "tonic": dir_bytes(data["cache"]),
            "npy": dir_bytes(data["npy"]),
        }
        speed_ratio = rate["tmkt"] / rate["tonic"]
        size_ratio = size["tonic"] / size["tmkt"]
        out = {
            "benchmark": "random-order reads, 10x2x48x48 frames, batch 64, DataLoader num_workers=2",
            "samples": args.samples,
            "epochs_timed": args.epochs,
            "cores": os.cpu_count(),
            "samples_per_s": {k: round(v, 1) for k, v in rate.items()},
            "epoch_seconds": {k: [round(t, 3) for t in ts] for k, ts in times.items()},
            "cpu_ms_per_sample": {k: round(v, 3) for k, v in cpu_ms.items()},
            "ratio_tmkt_over_tonic_cpu": round(cpu_ms["tonic"] / cpu_ms["tmkt"], 2),
            "bytes_on_disk": size,
            "bytes_per_sample": {k: round(v / args.samples) for k, v in size.items()},
            "raw_bytes_per_sample": {"float16": T * P * SIZE * SIZE * 2, "float32": T * P * SIZE * SIZE * 4},
            "stored_as": {
                "tmkt": f"zarr v3 float16, {codec_of(data['store'])}, {data['shard_samples']} samples/shard",
                "tonic": "one h5 per sample, float32, lzf",
                "npy": "one .npy per sample, float16, uncompressed",
                "frame_dataset": "the tmkt store above, FrameDataset items cast to float32",
            },
            "ratio_tmkt_over_tonic_speed": round(speed_ratio, 2),
            "target_speed": TARGET_SPEED,
            "passed_speed": bool(speed_ratio >= TARGET_SPEED),
            "ratio_tmkt_over_npy_speed": round(rate["tmkt"] / rate["npy"], 2),
            "ratio_frame_dataset_over_tonic_speed": round(rate["frame_dataset"] / rate["tonic"], 2),
            "ratio_frame_dataset_over_tonic_cpu": round(cpu_ms["tonic"] / cpu_ms["frame_dataset"], 2),
            "random_access_us_per_sample": {k: round(v, 1) for k, v in access_us.items()},
            "ratio_frame_dataset_over_tonic_random_access": round(
                access_us["tonic"] / access_us["frame_dataset"], 2
            ),
            "target_frame_dataset": TARGET_FRAME_DATASET,
            "passed_frame_dataset": bool(
                rate["frame_dataset"] / rate["tonic"] > TARGET_FRAME_DATASET
                and access_us["tonic"] / access_us["frame_dataset"] > TARGET_FRAME_DATASET
            ),
            "ratio_tonic_over_tmkt_bytes": round(size_ratio, 2),
            "target_bytes": TARGET_SIZE,
            "passed_bytes": bool(size_ratio >= TARGET_SIZE),
            "checksum_cost": cost,
            "equal_frames_checked": {
                "tmkt": args.samples,
                "frame_dataset": args.samples,
                "tonic_and_npy": n_probed,
            },
            "build_seconds": {k: round(v, 1) for k, v in data["seconds"].items()},
            "python": platform.python_version(),
            "torch": torch.__version__,
        }
        print(json.dumps(out, indent=2))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
