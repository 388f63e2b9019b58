"""aedat2.read_frames (AEDAT 2.0 bytes straight to frames) against read() + to_frames, and the
convert path that uses it against to_frames on every file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import fuzz_path
from hypothesis import given, settings
from hypothesis import strategies as st

from tmkt_data import read_events, to_frames
from tmkt_data.convert import ConvertOptions, convert
from tmkt_data.errors import EventsError, FormatError
from tmkt_data.formats import aedat2
from tmkt_data.layouts.cifar10dvs import CLASSES

CHIPS = {"dvs128": (128, 128), "davis240": (240, 180), "davis346": (346, 260)}


def address(chip: str, rx: np.ndarray, ry: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Raw AEDAT 2.0 addresses (module docstring of aedat2)."""
    if chip == "dvs128":
        return (ry << 8) | (rx << 1) | (1 - on)
    return (ry << 22) | (rx << 12) | (on << 11)


def write_raw(path: Path, chip: str, addr, ts) -> Path:
    """An AEDAT 2.0 file with exactly these (address, timestamp) records."""
    head = b"#!AER-DAT2.0\r\n# AEChip: " + aedat2.CHIP_CLASSES[chip].encode() + b"\r\n"
    body = b"".join(
        struct.pack(">II", int(a) & 0xFFFFFFFF, int(t) & 0xFFFFFFFF) for a, t in zip(addr, ts, strict=True)
    )
    path.write_bytes(head + body)
    return path


def plain_file(path: Path, chip: str, n: int, seed: int, *, t_start: int = 5_000, max_step: int = 40) -> Path:
    """``n`` events inside the chip, non-decreasing timestamps (repeats included), no special record."""
    rng = np.random.default_rng(seed)
    w, h = CHIPS[chip]
    rx, ry, on = rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n)
    ts = t_start + np.cumsum(rng.integers(0, max_step, n))
    return write_raw(path, chip, address(chip, rx, ry, on), ts)


def reference(path: Path, chip: str, orientation: str, mode: dict, remainder: str, dtype) -> tuple:
    rec = aedat2.read(path, chip=chip, orientation=orientation)
    frames = to_frames(rec.events, rec.sensor_size, remainder=remainder, dtype=dtype, **mode)
    return rec, frames


MODES = [("number", "n_event_bins"), ("time", "n_time_bins")]


@pytest.mark.parametrize(
    ("chip", "orientation"),
    [("dvs128", "spikingjelly"), ("dvs128", "raw"), ("davis240", "image"), ("davis346", "jaer")],
)
@pytest.mark.parametrize(("split_by", "mode_key"), MODES)
@pytest.mark.parametrize("remainder", ["last", "drop"])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_equals_read_then_to_frames(tmp_path, chip, orientation, split_by, mode_key, remainder, dtype):
    n = 4_000 + 7  # not a multiple of the frame count: "drop" loses events
    path = plain_file(tmp_path / "f.aedat", chip, n, seed=len(chip) + len(orientation))
    got = aedat2.read_frames(
        path,
        n_frames=7,
        split_by=split_by,
        remainder=remainder,
        chip=chip,
        orientation=orientation,
        dtype=dtype,
    )
    rec, expect = reference(path, chip, orientation, {mode_key: 7}, remainder, np.float32)
    assert got is not None
    assert got.frames.dtype == np.dtype(dtype) and got.frames.shape == expect.shape
    np.testing.assert_array_equal(got.frames, expect.astype(dtype))
    assert got.sensor_size == rec.sensor_size
    assert got.n_events == len(rec) == n
    assert got.n_binned == int(expect.sum())
    assert (got.n_binned < n) == (remainder == "drop")
    assert got.t0_abs == rec.t0_abs
    assert got.duration_us == int(rec.events["t"][-1])
    assert got.metadata == rec.metadata  # sha256, header, chip, orientation...


@pytest.mark.parametrize(("split_by", "mode_key"), MODES)
@pytest.mark.parametrize("remainder", ["last", "drop"])
@pytest.mark.parametrize(
    "case", ["fewer_events_than_frames", "one_timestamp", "one_event", "one_frame", "short_span"]
)
def test_edge_cases_equal_to_frames(tmp_path, split_by, mode_key, remainder, case):
    rng = np.random.default_rng(3)
    n, frames = {"fewer_events_than_frames": (4, 10), "one_event": (1, 5), "one_frame": (500, 1)}.get(
        case, (300, 10)
    )
    rx, ry, on = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    if case == "one_timestamp":
        ts = np.full(n, 77_000)  # zero duration: time bins of width 0
    elif case == "short_span":
        ts = 1_000 + np.sort(rng.integers(0, 7, n))  # span shorter than the frame count
    else:
        ts = 1_000 + np.cumsum(rng.integers(1, 30, n))
    path = write_raw(tmp_path / "f.aedat", "dvs128", address("dvs128", rx, ry, on), ts)
    got = aedat2.read_frames(path, n_frames=frames, split_by=split_by, remainder=remainder)
    rec, expect = reference(path, "dvs128", "spikingjelly", {mode_key: frames}, remainder, np.float32)
    np.testing.assert_array_equal(got.frames, expect)
    assert got.n_binned == int(expect.sum())


@pytest.mark.parametrize(
    ("chip", "defect"),
    [("dvs128", d) for d in ("special", "wrap", "backward")]
    + [("davis346", d) for d in ("special", "wrap", "backward", "outside")],
)
def test_files_that_need_the_general_reader_give_none(tmp_path, chip, defect):
    rng = np.random.default_rng(9)
    n = 2_000
    w, h = CHIPS[chip]
    rx, ry, on = rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n)
    addr = address(chip, rx, ry, on)
    ts = 10 + np.cumsum(rng.integers(0, 20, n))
    j = 1_500  # late in the file: the kernel has counted many events before it stops
    if defect == "special":
        addr[j] |= 0x80000000
    elif defect == "wrap":
        ts[j:] += 2**32 - int(ts[j - 1]) - 5  # the 32-bit clock wraps at record j
    elif defect == "backward":
        ts[j] = ts[j - 1] - 3
    else:  # DAVIS only: a DVS128 address cannot hold a coordinate outside the chip
        addr[j] = address(chip, np.int64(w + 3), np.int64(0), np.int64(1))
    path = write_raw(tmp_path / "f.aedat", chip, addr, ts)
    assert aedat2.read_frames(path, n_frames=5, split_by="number", remainder="last") is None


def test_empty_body_gives_none_and_bad_files_raise(tmp_path):
    empty = write_raw(tmp_path / "e.aedat", "dvs128", [], [])
    assert aedat2.read_frames(empty, n_frames=3, split_by="time", remainder="last") is None
    torn = tmp_path / "t.aedat"
    torn.write_bytes(b"#!AER-DAT2.0\r\n" + b"\x00" * 11)
    with pytest.raises(FormatError, match="partial record"):
        aedat2.read_frames(torn, n_frames=3, split_by="time", remainder="last")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_frames": 0},
        {"split_by": "size"},
        {"remainder": "keep"},
        {"dtype": np.uint16},
    ],
)
def test_bad_arguments_raise_events_error(tmp_path, kwargs):
    path = plain_file(tmp_path / "f.aedat", "dvs128", 50, seed=1)
    args = {"n_frames": 3, "split_by": "number", "remainder": "last"} | kwargs
    with pytest.raises(EventsError):
        aedat2.read_frames(path, **args)


def cifar_tree(root: Path) -> list[Path]:
    """Two files per class of a CIFAR10-DVS tree: plain ones, plus three that need the general
    reader (special records, a wrap, a backward step) and one whose counts saturate uint8."""
    files = []
    for label, cls in enumerate(CLASSES):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            files.append(
                plain_file(root / cls / f"cifar10_{cls}_{i}.aedat", "dvs128", 3_000, seed=10 * label + i)
            )
    rng = np.random.default_rng(0)
    n = 3_000
    rx, ry, on = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    ts = 100 + np.cumsum(rng.integers(0, 30, n))
    special = address("dvs128", rx, ry, on)
    special[::100] |= 0x8000
    write_raw(files[0], "dvs128", special, ts)
    wrapped = ts + (2**32 - int(ts[1_000]))
    write_raw(files[1], "dvs128", address("dvs128", rx, ry, on), wrapped)
    back = ts.copy()
    back[2_000] -= 50
    write_raw(files[2], "dvs128", address("dvs128", rx, ry, on), back)
    hot = np.full(n, 5)  # one pixel: far more than 255 events per frame
    write_raw(files[3], "dvs128", address("dvs128", hot, hot, np.ones(n, np.int64)), ts)
    return files


@pytest.mark.parametrize(
    "opts",
    [
        ConvertOptions(frames=6, split_by="number", remainder="last", shard_samples=4),
        ConvertOptions(frames=6, split_by="time", remainder="drop", dtype="uint8", shard_samples=4),
        ConvertOptions(frames=4, split_by="number", remainder="drop", dtype="int16", shard_samples=4),
        ConvertOptions(frames=5, split_by="time", remainder="last", size=(40, 40), dtype="float32"),
    ],
    ids=["uint16", "uint8-saturating", "int16", "resized"],
)
def test_convert_equals_to_frames_on_plain_and_other_files(tmp_path, monkeypatch, opts):
    root = tmp_path / "raw"
    cifar_tree(root)
    out = tmp_path / "s.zarr"
    results = []

    def counted(*args, **kwargs):
        results.append(direct(*args, **kwargs))
        return results[-1]

    direct = aedat2.read_frames
    monkeypatch.setattr(aedat2, "read_frames", counted)
    res = convert("cifar10dvs", root, out, opts, workers=2)
    assert res.files_failed == 0
    # every file is tried straight from its bytes; the three with special records, a wrap
    # or a backward step go through read_events + to_frames
    assert len(results) == 20 and sum(r is None for r in results) == 3
    g = zarr.open_group(str(out), mode="r")
    mode = {"n_time_bins" if opts.split_by == "time" else "n_event_bins": opts.frames}
    count_dtype = np.float32 if opts.size else np.dtype(opts.resolved_dtype())
    saturated = 0
    for i, rel in enumerate(g["source_path"][:]):
        rec = read_events(root / str(rel), format="aedat2", chip="dvs128", orientation="spikingjelly")
        counts, n_sat = to_frames(
            rec.events,
            (128, 128),
            remainder=opts.remainder,
            dtype=count_dtype,
            return_saturation=True,
            **mode,
        )
        if opts.size:
            from tmkt_data.resize import resize_frames

            counts = resize_frames(counts, opts.size, "bilinear")
        np.testing.assert_array_equal(g["frames"][i], counts.astype(opts.resolved_dtype()), err_msg=str(rel))
        assert int(g["n_saturated"][i]) == n_sat
        assert int(g["n_events"][i]) == len(rec)
        assert int(g["duration_us"][i]) == int(rec.events["t"][-1])
        assert str(g["source_sha256"][i]) == rec.metadata["sha256"]
        saturated += n_sat
    assert (saturated > 0) == (opts.dtype == "uint8")


@settings(max_examples=150, deadline=None)
@given(
    chip=st.sampled_from(["dvs128", "davis240"]),
    records=st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), min_size=1, max_size=60
    ),
    sorted_times=st.booleans(),
    n_frames=st.integers(1, 7),
    split_by=st.sampled_from(["number", "time"]),
    remainder=st.sampled_from(["last", "drop"]),
)
def test_fuzz_none_or_equal_to_read_then_to_frames(
    chip, records, sorted_times, n_frames, split_by, remainder
):
    """Any record sequence (special bits, wraps, bad coordinates, repeats): read_frames gives None
    or exactly what read() + to_frames give; read() and read_frames fail alike on bad files."""
    addr = [a for a, _ in records]
    ts = sorted(t for _, t in records) if sorted_times else [t for _, t in records]
    if sorted_times:  # mostly valid events: keep the address bits inside the chip
        w, h = CHIPS[chip]
        addr = [int(address(chip, np.int64(a % w), np.int64((a >> 12) % h), np.int64(a & 1))) for a in addr]
    path = write_raw(fuzz_path("aedat2_frames.aedat"), chip, addr, ts)
    try:
        rec = aedat2.read(path, chip=chip)
    except FormatError:
        assert (
            aedat2.read_frames(path, n_frames=n_frames, split_by=split_by, remainder=remainder, chip=chip)
            is None
        )
        return
    got = aedat2.read_frames(path, n_frames=n_frames, split_by=split_by, remainder=remainder, chip=chip)
    if got is None:
        plain = False
    else:
        plain = True
        mode = {"n_event_bins" if split_by == "number" else "n_time_bins": n_frames}
        expect = to_frames(rec.events, rec.sensor_size, remainder=remainder, dtype=np.float32, **mode)
        np.testing.assert_array_equal(got.frames, expect)
        assert got.n_events == len(rec) and got.n_binned == int(expect.sum())
        assert got.t0_abs == rec.t0_abs and got.metadata == rec.metadata
    # every file without special records, wraps, backward steps or bad coordinates is plain
    meta = rec.metadata
    assert plain == (
        len(rec) > 0
        and meta["dropped_special"] == 0
        and meta["timestamp_wraps"] == 0
        and not meta["resorted"]
        and list(ts) == sorted(ts)
    )
