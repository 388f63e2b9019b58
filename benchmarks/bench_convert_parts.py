"""The per-part figures behind ``bench_convert.py``: each faster part against what it replaced.

Measured in one run, one thread, on files written by ``bench_convert.py``'s generator
(CIFAR10-DVS-like AEDAT 2.0, DVS128, about 300k events each), every pair checked equal
first, interleaved repetitions, medians:

a. ``decode``: the straight AEDAT 2.0 loop (``aedat2._decode_body``, which runs
   ``_decode_plain`` on these plain files) against the general loop
   (``aedat2._decode_records``) on the same bytes, into the same event array;
b. ``count``: ``aedat2.read_frames`` (bytes straight to 10 frames by count) against
   ``aedat2.read`` + ``to_frames`` (both read and hash the file);
c. ``compress``: Blosc zstd level 2 against levels 3 and 5 on the resized float16
   frames (10 x 2 x 48 x 48) and on 128 x 128 uint16 count frames, time and bytes;
d. ``sample_arrays``: the per-sample arrays of a finalised store written by
   ``store.write_sample_array`` against zarr-python's ``create_array(data=...)``
   (byte-identical files; ``tests/test_store.py``).

Prints one JSON object. Run from the project root:
``PYTHONPATH=. .venv/bin/python benchmarks/bench_convert_parts.py [--files 40]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr
from bench_convert import SENSOR, make_tree
from numcodecs import blosc

from tmkt_data.binning import to_frames
from tmkt_data.events import EVENT_DTYPE
from tmkt_data.formats import aedat2
from tmkt_data.formats._io import read_hash_header
from tmkt_data.resize import resize_frames
from tmkt_data.store import write_sample_array


def median_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time (ms) of each function, run interleaved ``repeats`` times after a warm-up."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(1e3 * (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


def pair(ours: float, reference: float, unit: str = "ms") -> dict[str, float]:
    return {
        f"ours_{unit}": round(ours, 3),
        f"reference_{unit}": round(reference, 3),
        "ratio": round(reference / ours, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=40, help="recordings (default 40)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (default 5)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tmkt_bench_parts_"))
    try:
        make_tree(work / "raw", args.files, 300_000)
        files = sorted((work / "raw").rglob("*.aedat"))
        datas = [p.read_bytes() for p in files]
        bodies = [
            np.frombuffer(d, np.uint8, offset=read_hash_header(d, p)[1])
            for d, p in zip(datas, files, strict=True)
        ]
        out = np.empty(max(len(b) for b in bodies) // 8, dtype=EVENT_DTYPE)
        n_ev = sum(len(b) // 8 for b in bodies)
        sj = aedat2._ORIENT_CODE["spikingjelly"]

        # a. decode: both loops give the same events
        for b in bodies[:3]:
            n = len(b) // 8
            aedat2._decode_records(b, 8, False, SENSOR, SENSOR, sj, out)
            general = out[:n].copy()
            assert aedat2._decode_body(b, 8, False, SENSOR, SENSOR, sj, out)[0] == n
            assert np.array_equal(out[:n], general)
        dec = median_ms(
            {
                "straight": lambda: [
                    aedat2._decode_body(b, 8, False, SENSOR, SENSOR, sj, out) for b in bodies
                ],
                "general": lambda: [
                    aedat2._decode_records(b, 8, False, SENSOR, SENSOR, sj, out) for b in bodies
                ],
            },
            args.repeats,
        )

        # b. count: equal frames
        def two_step(p: Path) -> np.ndarray:
            rec = aedat2.read(p)
            return to_frames(rec.events, rec.sensor_size, n_event_bins=10, remainder="last", dtype=np.float32)

        def direct(p: Path) -> np.ndarray:
            return aedat2.read_frames(p, n_frames=10, split_by="number", remainder="last").frames

        for p in files[:3]:
            assert np.array_equal(direct(p), two_step(p))
        cnt = median_ms(
            {"direct": lambda: [direct(p) for p in files], "two_step": lambda: [two_step(p) for p in files]},
            args.repeats,
        )

        # c. compress
        counts = [two_step(p) for p in files[:20]]
        frames = {
            "float16_48x48": [resize_frames(c, (48, 48), "bilinear").astype(np.float16) for c in counts],
            "uint16_128x128": [c.astype(np.uint16) for c in counts],
        }
        compress: dict[str, dict] = {}
        for name, arrs in frames.items():
            shuffle = 2 if name.startswith("uint") else 0  # as store.frames_compressor
            res = {}
            for level in (2, 3, 5):
                enc = [blosc.compress(a, b"zstd", level, shuffle, 0) for a in arrs]
                assert all(
                    np.array_equal(np.frombuffer(blosc.decompress(e), a.dtype), a.ravel())
                    for e, a in zip(enc, arrs, strict=True)
                )
                ms = median_ms(
                    {
                        "c": lambda a=arrs, lv=level, sh=shuffle: [
                            blosc.compress(x, b"zstd", lv, sh, 0) for x in a
                        ]
                    },
                    args.repeats,
                )["c"]
                res[level] = (ms / len(arrs), float(np.mean([len(e) for e in enc])))
            compress[name] = {
                f"level2_vs_{lv}": pair(res[2][0], res[lv][0], "ms_per_sample")
                | {
                    "bytes_level2": round(res[2][1]),
                    f"bytes_level{lv}": round(res[lv][1]),
                    "size_ratio": round(res[2][1] / res[lv][1], 3),
                }  # fmt: skip
                for lv in (3, 5)
            }

        # d. per-sample arrays of a 200-sample store
        n = 200
        rng = np.random.default_rng(0)
        arrays = {f"i{k}": rng.integers(0, 10**6, n).astype(np.int64) for k in range(7)}
        arrays |= {
            f"s{k}": np.array([f"class_{k}/sample_{i:05d}.aedat" for i in range(n)], dtype=object)
            for k in range(4)
        }

        def ours() -> None:
            g = work / "ours.zarr"
            shutil.rmtree(g, ignore_errors=True)
            zarr.open_group(str(g), mode="w", zarr_format=3)
            for name, v in arrays.items():
                write_sample_array(g, name, v)

        def theirs() -> None:
            g = work / "theirs.zarr"
            shutil.rmtree(g, ignore_errors=True)
            grp = zarr.open_group(str(g), mode="w", zarr_format=3)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name, v in arrays.items():
                    data = v.astype(np.dtypes.StringDType()) if v.dtype == object else v
                    grp.create_array(name, data=data, chunks=(n,), dimension_names=("sample",))

        arr = median_ms({"ours": ours, "theirs": theirs}, args.repeats)

        print(
            json.dumps(
                {
                    "benchmark": "parts of convert, one thread",
                    "files": len(files),
                    "events": n_ev,
                    "decode_straight_vs_general_loop": pair(
                        dec["straight"] / len(files), dec["general"] / len(files), "ms_per_file"
                    ),
                    "read_frames_vs_read_then_to_frames": pair(
                        cnt["direct"] / len(files), cnt["two_step"] / len(files), "ms_per_file"
                    ),
                    "compress_zstd": compress,
                    "sample_arrays_direct_vs_zarr_python": pair(
                        arr["ours"], arr["theirs"], "ms_for_11_arrays"
                    ),
                    "python": platform.python_version(),
                },
                indent=2,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
