"""Event filters (tmkt_data/filters.py) against tonic 1.7's functional implementations and plain-numpy
references, their specs, and ``tmkt-data convert --filter`` (stored frames, parameters, fast path, CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import tonic.functional as TF
import zarr
from conftest import make_nmnist_tree
from hypothesis import given, settings
from hypothesis import strategies as st
from test_aedat2_frames import cifar_tree
from tonic.transforms import CenterCrop, Downsample
from typer.testing import CliRunner

from tmkt_data import read_events, to_frames
from tmkt_data.cli import app
from tmkt_data.convert import ConvertError, ConvertOptions, convert
from tmkt_data.errors import EventsError
from tmkt_data.events import EVENT_DTYPE
from tmkt_data.filters import (
    FilterError,
    apply_filters,
    crop,
    denoise,
    downsample,
    filtered_sensor_size,
    parse_filter,
    parse_filters,
    refractory,
)
from tmkt_data.formats import aedat2
from tmkt_data.store import open_store

runner = CliRunner()


def events_of(t, x, y, p=None) -> np.ndarray:
    """An EVENT_DTYPE array in the given order (not sorted)."""
    ev = np.empty(len(t), dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"] = t, x, y
    ev["p"] = 0 if p is None else p
    return ev


@st.composite
def event_arrays(draw, max_n: int = 200) -> tuple[np.ndarray, tuple[int, int]]:
    """(events, sensor): small sensors (so borders are hit often), few distinct timestamps
    (so equal timestamps are common), sorted or, sometimes, in arbitrary order."""
    w = draw(st.integers(1, 12))
    h = draw(st.integers(1, 12))
    n = draw(st.integers(0, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    span = draw(st.sampled_from([1, 5, 50, 5_000, 200_000]))
    rng = np.random.default_rng(seed)
    t = rng.integers(0, span, n)
    if draw(st.booleans()):
        t = np.sort(t)
    ev = events_of(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n))
    return ev, (w, h)


def tonic_crop(events: np.ndarray, sensor: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """tonic's random crop with its random offsets fixed at (x0, y0)."""
    x0, y0, w, h = box
    draws = iter([(x0 + 0.5) / (sensor[0] - w) if sensor[0] > w else 0.0,
                  (y0 + 0.5) / (sensor[1] - h) if sensor[1] > h else 0.0])  # fmt: skip
    with mock.patch.object(np.random, "rand", lambda: next(draws)):
        return TF.crop_numpy(events, sensor, (w, h))


def numpy_downsample(events: np.ndarray, factor: int) -> np.ndarray:
    out = events.copy()
    out["x"] //= factor
    out["y"] //= factor
    return out


# --------------------------------------------------------------------------- each filter against tonic


@settings(max_examples=300, deadline=None)
@given(data=event_arrays(), filter_time=st.sampled_from([1, 2, 3, 10, 1_000, 50_000, 10**6]))
def test_denoise_equals_tonic(data, filter_time: int) -> None:
    ev, _ = data
    got = denoise(ev, filter_time)
    assert got.dtype == ev.dtype
    if ev.size == 0:  # tonic takes max() of the empty coordinates and raises
        assert got.size == 0
        return
    np.testing.assert_array_equal(got, TF.denoise_numpy(ev.copy(), filter_time))


@settings(max_examples=300, deadline=None)
@given(data=event_arrays(), period=st.sampled_from([0, 1, 2, 3, 10, 1_000, 50_000]))
def test_refractory_equals_tonic(data, period: int) -> None:
    ev, _ = data
    got = refractory(ev, period)
    assert got.dtype == ev.dtype
    if ev.size == 0:
        assert got.size == 0
        return
    np.testing.assert_array_equal(got, TF.refractory_period_numpy(ev.copy(), period))


@settings(max_examples=300, deadline=None)
@given(data=event_arrays(), frac=st.tuples(*[st.floats(0, 1)] * 4))
def test_crop_equals_tonic_crop_with_fixed_offset(data, frac) -> None:
    ev, (w, h) = data
    cw, ch = 1 + int(frac[0] * (w - 1)), 1 + int(frac[1] * (h - 1))
    x0, y0 = int(frac[2] * (w - cw)), int(frac[3] * (h - ch))
    got = crop(ev, (x0, y0, cw, ch))
    np.testing.assert_array_equal(got, tonic_crop(ev.copy(), (w, h), (x0, y0, cw, ch)))
    assert filtered_sensor_size(parse_filters([f"crop={x0},{y0},{cw},{ch}"]), (w, h)) == (cw, ch)


def test_crop_equals_tonic_center_crop_on_border_events() -> None:
    w, h = 9, 7
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    ev = events_of(np.arange(w * h), xs.ravel(), ys.ravel())  # every pixel, borders included
    size = (5, 3)
    box = ((w - size[0]) // 2, (h - size[1]) // 2, *size)
    got = crop(ev, box)
    np.testing.assert_array_equal(got, CenterCrop(sensor_size=(w, h, 2), size=size)(ev.copy()))
    assert got.size == 15 and got["x"].max() == 4 and got["y"].max() == 2
    full = crop(ev, (0, 0, w, h))  # the whole sensor keeps everything, unshifted
    np.testing.assert_array_equal(full, ev)


@settings(max_examples=300, deadline=None)
@given(data=event_arrays(), factor=st.integers(1, 60))
def test_downsample_equals_floor_division_and_tonic_below_49(data, factor: int) -> None:
    ev, (w, h) = data
    got = downsample(ev, factor)
    np.testing.assert_array_equal(got, numpy_downsample(ev, factor))
    if factor < 49:  # tonic multiplies by the rounded 1/F: equal to the floor for F <= 48
        np.testing.assert_array_equal(got, Downsample(spatial_factor=1 / factor)(ev.copy()))
    sw, sh = filtered_sensor_size(parse_filters([f"downsample={factor}"]), (w, h))
    assert (sw, sh) == (-(-w // factor), -(-h // factor))
    if got.size:
        assert got["x"].max() < sw and got["y"].max() < sh


def test_downsample_where_tonic_float_rounding_differs() -> None:
    """x = 49 with F = 49: 49 * (1/49) = 0.999..., so tonic puts it in column 0; the floor gives 1."""
    ev = events_of([0, 1, 2], [48, 49, 98], [0, 49, 97])
    assert downsample(ev, 49)[["x", "y"]].tolist() == [(0, 0), (1, 1), (2, 1)]
    assert Downsample(spatial_factor=1 / 49)(ev.copy())[["x", "y"]].tolist() == [(0, 0), (0, 0), (1, 1)]


def test_downsample_keeps_duplicates_time_and_polarity() -> None:
    ev = events_of([5, 5, 5, 9], [0, 1, 1, 3], [0, 1, 0, 3], [1, 1, 0, 0])
    got = downsample(ev, 2)
    assert got.tolist() == [(5, 0, 0, 1), (5, 0, 0, 1), (5, 0, 0, 0), (9, 1, 1, 0)]
    frames = to_frames(got, (2, 2), n_event_bins=1)
    assert frames[0, 1, 0, 0] == 2 and frames.sum() == 4


def test_downsample_wider_fields_and_other_dtypes() -> None:
    """x, y held in wider (or signed) fields: the division table covers the events' extent."""
    dt = np.dtype([("x", "<i4"), ("y", "<u4"), ("t", "<i8"), ("p", "i1")])
    ev = np.zeros(4, dtype=dt)
    ev["x"], ev["y"], ev["t"] = [0, 70_000, 5, 3], [100_001, 2, 7, 0], [1, 2, 3, 4]
    got = downsample(ev, 7)
    assert got.dtype == dt
    np.testing.assert_array_equal(got, numpy_downsample(ev, 7))
    neg = ev.copy()
    neg["x"][2] = -1
    with pytest.raises(EventsError, match=r"event 2 has x=-1"):
        downsample(neg, 2)


def test_extra_fields_travel_with_their_events() -> None:
    """Records with more fields than t, x, y, p are copied whole (tonic keeps every field too)."""
    dt = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("w", "<f4")])
    rng = np.random.default_rng(11)
    n = 3_000
    ev = np.zeros(n, dtype=dt)
    ev["t"], ev["x"], ev["y"] = (
        np.sort(rng.integers(0, 50_000, n)),
        rng.integers(0, 20, n),
        rng.integers(0, 16, n),
    )
    ev["p"], ev["w"] = rng.integers(0, 2, n), rng.random(n)
    np.testing.assert_array_equal(denoise(ev, 800), TF.denoise_numpy(ev.copy(), 800))
    np.testing.assert_array_equal(refractory(ev, 800), TF.refractory_period_numpy(ev.copy(), 800))
    np.testing.assert_array_equal(crop(ev, (3, 2, 10, 9)), tonic_crop(ev.copy(), (20, 16), (3, 2, 10, 9)))
    np.testing.assert_array_equal(downsample(ev, 3), Downsample(spatial_factor=1 / 3)(ev.copy()))


# --------------------------------------------------------------------------- semantics, spelled out


def test_denoise_semantics() -> None:
    f = 100
    # a lone event after the start-up window goes; one whose 4-neighbour fired < f us before stays
    ev = events_of([500, 550, 560, 700, 900], [5, 6, 7, 7, 0], [5, 5, 6, 6, 9])
    assert denoise(ev, f)["t"].tolist() == [550]
    # a diagonal neighbour does not count; the same pixel does not count
    assert denoise(events_of([500, 550], [5, 6], [5, 6]), f).size == 0
    assert denoise(events_of([500, 550], [5, 5], [5, 5]), f).size == 0
    # exactly f us later is too late (the stamp t + f must exceed t)
    assert denoise(events_of([500, 600, 650], [5, 6, 7], [5, 5, 5]), f)["t"].tolist() == [650]
    # same timestamp: only the later one in the array is supported
    assert denoise(events_of([500, 500], [5, 6], [5, 5]), f)[["x"]].tolist() == [(6,)]
    # tonic's start-up: every event with t < f survives when the events' extent gives it a neighbour
    assert denoise(events_of([0, 99, 500], [0, 3, 3], [0, 3, 0]), f)["t"].tolist() == [0, 99]
    # ... and the grid is the events' own extent, not the sensor: alone at (0, 0) there is no
    # neighbour at all, alone at (1, 0) the never-fired (0, 0) supports it
    assert denoise(events_of([0], [0], [0]), f).size == 0
    assert denoise(events_of([0], [1], [0]), f).size == 1
    for ev in (events_of([0], [0], [0]), events_of([0], [1], [0])):
        np.testing.assert_array_equal(denoise(ev, f), TF.denoise_numpy(ev.copy(), f))


def test_refractory_semantics() -> None:
    r = 100
    ev = events_of([0, 50, 150, 200, 251, 300], [1, 1, 1, 1, 1, 2], [1, 1, 1, 1, 1, 1])
    # t=0 first at its pixel: dropped (t - (-r) = r is not > r); 50: within r of 0; 150: 100 after
    # the dropped 50 (the period restarts at dropped events); 200: 50 after; 251: 51 after 200;
    # (2, 1) first fires at 300: kept
    assert refractory(ev, r)["t"].tolist() == [300]
    assert refractory(events_of([1, 102, 203], [0, 0, 0], [0, 0, 0]), r)["t"].tolist() == [1, 102, 203]
    # polarity is ignored: both share the pixel's clock
    assert refractory(events_of([10, 20], [0, 0], [0, 0], [0, 1]), r)["t"].tolist() == [10]
    # period 0 removes repeats at one pixel and time (and t = 0 firsts)
    assert refractory(events_of([0, 5, 5, 6], [0, 0, 0, 0], [0, 0, 0, 0]), 0)["t"].tolist() == [5, 6]


def test_one_event_and_empty_input() -> None:
    one = events_of([7], [3], [2])
    for f in (5, 10):  # t=7 < 10: kept by tonic's start-up rule; t=7 >= 5: dropped
        np.testing.assert_array_equal(denoise(one, f), TF.denoise_numpy(one.copy(), f))
    assert denoise(one, 10).size == 1 and denoise(one, 5).size == 0
    np.testing.assert_array_equal(refractory(one, 10), TF.refractory_period_numpy(one.copy(), 10))
    assert refractory(one, 10).size == 1 and refractory(events_of([0], [3], [2]), 10).size == 0
    np.testing.assert_array_equal(crop(one, (3, 2, 1, 1)), events_of([7], [0], [0]))
    empty = np.empty(0, dtype=EVENT_DTYPE)
    for f in parse_filters(["denoise=5", "refractory=5", "crop=0,0,2,2", "downsample=3"]):
        out = f.apply(empty)
        assert out.dtype == EVENT_DTYPE and out.size == 0
    got, size = apply_filters(empty, (10, 8), parse_filters(["crop=1,1,5,5", "downsample=2"]))
    assert got.size == 0 and size == (3, 3)


def test_input_is_not_modified() -> None:
    rng = np.random.default_rng(3)
    ev = events_of(np.sort(rng.integers(0, 1000, 500)), rng.integers(0, 20, 500), rng.integers(0, 20, 500))
    before = ev.copy()
    apply_filters(
        ev, (20, 20), parse_filters(["denoise=50", "refractory=5", "crop=2,2,10,10", "downsample=3"])
    )
    np.testing.assert_array_equal(ev, before)


# --------------------------------------------------------------------------- order and chains


def test_filters_run_in_the_order_given() -> None:
    rng = np.random.default_rng(5)
    n = 5_000
    ev = events_of(np.sort(rng.integers(0, 200_000, n)), rng.integers(0, 40, n), rng.integers(0, 30, n))
    sensor = (40, 30)
    a, size_a = apply_filters(ev, sensor, parse_filters(["crop=3,2,30,24", "downsample=4"]))
    b, size_b = apply_filters(ev, sensor, parse_filters(["downsample=4", "crop=3,2,7,6"]))
    assert size_a == (8, 6) and size_b == (7, 6)
    np.testing.assert_array_equal(a, numpy_downsample(tonic_crop(ev.copy(), sensor, (3, 2, 30, 24)), 4))
    np.testing.assert_array_equal(b, tonic_crop(numpy_downsample(ev, 4), (10, 8), (3, 2, 7, 6)))
    assert a.size != b.size
    # denoise before/after a downsample: neighbourhoods change, so do the survivors
    c, _ = apply_filters(ev, sensor, parse_filters(["denoise=2000", "downsample=2"]))
    d, _ = apply_filters(ev, sensor, parse_filters(["downsample=2", "denoise=2000"]))
    np.testing.assert_array_equal(c, numpy_downsample(TF.denoise_numpy(ev.copy(), 2000), 2))
    np.testing.assert_array_equal(d, TF.denoise_numpy(numpy_downsample(ev, 2), 2000))
    assert c.size != d.size
    r, _ = apply_filters(ev, sensor, parse_filters(["refractory=3000", "denoise=2000"]))
    s, _ = apply_filters(ev, sensor, parse_filters(["denoise=2000", "refractory=3000"]))
    np.testing.assert_array_equal(r, TF.denoise_numpy(TF.refractory_period_numpy(ev.copy(), 3000), 2000))
    np.testing.assert_array_equal(s, TF.refractory_period_numpy(TF.denoise_numpy(ev.copy(), 2000), 3000))
    assert r.size != s.size


def test_events_outside_the_sensor_are_named_before_filtering() -> None:
    ev = events_of([0, 1, 2], [1, 34, 2], [1, 1, 1])
    with pytest.raises(EventsError, match=r"event 1 at \(x=34, y=1\) is outside the sensor of width 34"):
        apply_filters(ev, (34, 34), parse_filters(["crop=0,0,10,10"]))
    assert apply_filters(ev, (34, 34), ())[0] is ev  # no filter: untouched, unchecked


# --------------------------------------------------------------------------- specs


def test_specs_parse_to_canonical_text() -> None:
    specs = ["denoise=5000", " Refractory = 0100 ", "crop=1, 2,30,28", "downsample=2"]
    assert [f.spec for f in parse_filters(specs)] == [
        "denoise=5000",
        "refractory=100",
        "crop=1,2,30,28",
        "downsample=2",
    ]
    assert parse_filter("crop=0,0,1,1").args == (0, 0, 1, 1)
    assert parse_filters(None) == () and parse_filters("downsample=3")[0].args == (3,)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("denoise=abc", "'denoise=abc': expected denoise=FILTER_TIME_US"),
        ("denoise=0", "positive integer"),
        ("denoise=1.5", "expected denoise="),
        ("refractory=-1", "expected refractory=PERIOD_US"),
        ("crop=1,2", "expected crop=X0,Y0,W,H"),
        ("crop=0,0,0,4", "W, H >= 1"),
        ("downsample=0", "expected downsample=F, a positive integer"),
        ("blur=3", "unknown filter 'blur'; expected one of denoise, refractory, crop, downsample"),
        ("denoise", "expected NAME=VALUE"),
    ],
)
def test_bad_specs_are_one_line_errors(spec: str, match: str) -> None:
    with pytest.raises(FilterError, match=match) as err:
        parse_filter(spec)
    assert "\n" not in str(err.value) and repr(spec) in str(err.value)


def test_crop_outside_the_sensor_it_sees() -> None:
    with pytest.raises(FilterError, match=r"'crop=30,0,5,5'.*outside the 34x34 sensor"):
        filtered_sensor_size(parse_filters(["crop=30,0,5,5"]), (34, 34))
    # after a downsample the sensor is 17x17: the same box no longer fits
    assert filtered_sensor_size(parse_filters(["crop=10,0,20,20"]), (34, 34)) == (20, 20)
    with pytest.raises(FilterError, match=r"outside the 17x17 sensor"):
        filtered_sensor_size(parse_filters(["downsample=2", "crop=10,0,20,20"]), (34, 34))


# --------------------------------------------------------------------------- convert


SPECS = ["refractory=500", "crop=2,3,28,26", "denoise=5000", "downsample=2"]


def reference_chain(events: np.ndarray) -> np.ndarray:
    """SPECS with tonic (refractory, crop with a fixed offset, denoise) and numpy (downsample)."""
    ev = TF.refractory_period_numpy(events.copy(), 500)
    ev = tonic_crop(ev, (34, 34), (2, 3, 28, 26))
    ev = TF.denoise_numpy(ev, 5000) if ev.size else ev
    return numpy_downsample(ev, 2)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_nmnist_tree(tmp_path_factory.mktemp("filters") / "raw", per_digit=1)


def test_convert_stores_filter_then_to_frames(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.zarr"
    opts = ConvertOptions(frames=5, split_by="time", remainder="last", shard_samples=4, filters=tuple(SPECS))
    res = convert("nmnist", tree, out, opts)
    assert res.files_failed == 0
    g = open_store(out)
    assert g["frames"].shape[1:] == (5, 2, 13, 14)
    for i in range(g["frames"].shape[0]):
        rec = read_events(tree / str(g["source_path"][i]))
        kept = reference_chain(rec.events)
        expect = to_frames(kept, (14, 13), n_time_bins=5, remainder="last", dtype=np.uint16)
        np.testing.assert_array_equal(g["frames"][i], expect, err_msg=str(g["sample_id"][i]))
        assert int(g["n_events"][i]) == len(rec)  # read, before the filters
        assert int(g["n_binned"][i]) == kept.size < len(rec)
    params = g.attrs["params"]
    assert params["conversion"]["filters"] == SPECS
    assert params["sensor_size"] == [34, 34] and params["filtered_sensor_size"] == [14, 13]


def test_filters_change_the_parameter_hash(tree: Path, tmp_path: Path) -> None:
    base = dict(frames=3, shard_samples=8)
    hashes = {}
    for name, specs in {
        "none": (),
        "a": ("denoise=5000", "downsample=2"),
        "b": ("downsample=2", "denoise=5000"),  # the same filters in another order
        "c": ("denoise=4000", "downsample=2"),
    }.items():
        convert("nmnist", tree, tmp_path / f"{name}.zarr", ConvertOptions(**base, filters=specs))
        g = open_store(tmp_path / f"{name}.zarr")
        hashes[name] = g.attrs["params_hash"]
        if not specs:  # absent, so stores made before filters existed keep their hash
            assert "filters" not in g.attrs["params"]["conversion"]
            assert "filtered_sensor_size" not in g.attrs["params"]
    assert len(set(hashes.values())) == 4
    # another spelling of the same filters is the same store: it resumes (nothing to redo)
    res = convert(
        "nmnist",
        tree,
        tmp_path / "a.zarr",
        ConvertOptions(**base, filters=(" DENOISE=5000", "downsample = 2")),
    )
    assert res.shards_done_before == res.shards_total
    # other filters on an existing store are refused, naming them
    with pytest.raises(ConvertError, match=r"filters=\['denoise=5000', 'downsample=2'\]"):
        convert("nmnist", tree, tmp_path / "a.zarr", ConvertOptions(**base, filters=("denoise=5000",)))


def test_aedat2_fast_path_is_not_taken_with_filters(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "raw"
    cifar_tree(root)
    calls = []
    direct = aedat2.read_frames

    def counted(*args, **kwargs):
        calls.append(1)
        return direct(*args, **kwargs)

    monkeypatch.setattr(aedat2, "read_frames", counted)
    specs = ("refractory=50", "downsample=4")
    out = tmp_path / "c.zarr"
    convert("cifar10dvs", root, out, ConvertOptions(frames=4, shard_samples=8, filters=specs), workers=1)
    assert calls == []
    g = zarr.open_group(str(out), mode="r")
    assert g["frames"].shape[1:] == (4, 2, 32, 32)
    for i, rel in enumerate(g["source_path"][:]):
        rec = read_events(root / str(rel), format="aedat2", chip="dvs128", orientation="spikingjelly")
        kept = numpy_downsample(TF.refractory_period_numpy(rec.events.copy(), 50), 4)
        expect = to_frames(kept, (32, 32), n_event_bins=4, remainder="last", dtype=np.uint16)
        np.testing.assert_array_equal(g["frames"][i], expect, err_msg=str(rel))
    convert("cifar10dvs", root, tmp_path / "plain.zarr", ConvertOptions(frames=4, shard_samples=8), workers=1)
    assert len(calls) == 20  # without filters every file is tried straight from its bytes


def test_pipeline_recipe_filters(tree: Path, tmp_path: Path) -> None:
    from tmkt_data.convert import ConvertError
    from tmkt_train.pipeline import convert_step, load_pipeline

    text = (Path(__file__).resolve().parents[1] / "pipelines" / "cifar10dvs.toml").read_text()
    text = text.replace('dataset = "cifar10dvs"', 'dataset = "nmnist"').replace("size = 48", "size = 16")

    def recipe(filters: str):
        path = tmp_path / "r.toml"
        path.write_text(text.replace("[convert]\n", f"[convert]\nfilters = {filters}\n"))
        return load_pipeline(path, out=tmp_path / "out")

    store = tmp_path / "p.zarr"
    convert_step(recipe('["crop=1,1,32,32", "denoise=5000"]'), tree, store, None)
    params = open_store(store).attrs["params"]
    assert params["conversion"]["filters"] == ["crop=1,1,32,32", "denoise=5000"]
    assert params["filtered_sensor_size"] == [32, 32]
    with pytest.raises(FilterError, match=r"filter 'crop=1,2': expected crop=X0,Y0,W,H"):
        convert_step(recipe('["crop=1,2"]'), tree, tmp_path / "bad.zarr", None)
    with pytest.raises(ConvertError, match=r"\[convert\] filters = 5000: expected a list of strings"):
        convert_step(recipe("5000"), tree, tmp_path / "bad.zarr", None)
    assert not (tmp_path / "bad.zarr").exists()


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("denoise=abc", "'denoise=abc'"),
        ("crop=1,2", "'crop=1,2'"),
        ("sharpen=2", "unknown filter 'sharpen'"),
        ("crop=0,0,35,10", "outside the 34x34 sensor"),
        ("downsample=0", "'downsample=0'"),
    ],
)
def test_cli_bad_filter_is_one_line_exit_2(tree: Path, tmp_path: Path, spec: str, named: str) -> None:
    out = tmp_path / "bad.zarr"
    res = runner.invoke(
        app, ["convert", "nmnist", str(tree), str(out), "--filter", "denoise=100", "--filter", spec]
    )
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and named in lines[0], res.stderr
    assert "Traceback" not in res.output and not out.exists()


def test_cli_convert_with_filters_and_inspect(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.zarr"
    args = ["convert", "nmnist", str(tree), str(out), "--frames", "3", "--filter", "crop=0,0,30,30"]
    res = runner.invoke(app, [*args, "--filter", "downsample=3"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    info = json.loads(res.stdout)
    assert info["filters"] == ["crop=0,0,30,30", "downsample=3"] and info["frame_shape"] == [3, 2, 10, 10]
    assert info["sensor_size"] == [34, 34] and info["filtered_sensor_size"] == [10, 10]
    res = runner.invoke(app, ["inspect", str(out)])
    assert res.exit_code == 0 and "crop=0,0,30,30 then downsample=3" in res.stdout
