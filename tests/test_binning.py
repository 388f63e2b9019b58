"""Tests of tmkt_data.binning against independent references.

References: tonic 1.7.0's ``to_frame_numpy`` (bit for bit), a plain-numpy
re-implementation of spikingjelly's ``integrate_events_by_fixed_frames_number``
(docs/formats.md 5.2), hand-computed frames and the published counts of the real
N-MNIST sample (docs/formats.md 5.4).
"""

from __future__ import annotations

import numpy as np
import pytest
import tonic
from conftest import REAL_NMNIST_TONIC, require_real
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tonic.functional import to_frame_numpy

from tmkt_data.binning import to_frames, to_frames_many
from tmkt_data.errors import EventsError
from tmkt_data.events import EVENT_DTYPE

NMNIST = REAL_NMNIST_TONIC
# tonic's own N-MNIST dtype: read_mnist_file fills fields by position (x, y, t, p),
# so the field order must be x, y, t, p (with x, y, p, t it would swap p and t).
NMNIST_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])

HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make(t, x, y, p, dtype=EVENT_DTYPE) -> np.ndarray:
    ev = np.empty(len(t), dtype=dtype)
    ev["t"], ev["x"], ev["y"], ev["p"] = t, x, y, p
    return ev


def random_events(seed: int, n: int, w: int, h: int, max_dt: int, t0: int = 0) -> np.ndarray:
    """Sorted events; ``max_dt`` bounds the gap between events (0 gives equal timestamps)."""
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.integers(0, max_dt + 1, n))
    return make(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n))


@st.composite
def recordings(draw, max_n: int = 3000):
    w = draw(st.integers(1, 7))
    h = draw(st.integers(1, 7))
    n = draw(st.one_of(st.integers(0, 4), st.integers(0, 80), st.integers(0, max_n)))
    max_dt = draw(st.sampled_from([0, 1, 2, 5, 100, 3000]))
    t0 = draw(st.sampled_from([0, 1, 654, 10**6, 2**40]))
    seed = draw(st.integers(0, 2**32 - 1))
    return random_events(seed, n, w, h, max_dt, t0), (w, h)


def assert_same_as_tonic(ev: np.ndarray, sensor: tuple[int, int], **kw) -> None:
    ours = to_frames(ev, sensor, **kw)
    ref = to_frame_numpy(ev, sensor_size=(*sensor, 2), **kw)
    assert ours.dtype == ref.dtype == np.int16
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


# --------------------------------------------------------------------------- (a) tonic, bit for bit


@HYPO
@given(rec=recordings(), data=st.data())
def test_time_window_matches_tonic(rec, data):
    ev, sensor = rec
    assume(ev.size > 0)  # tonic: IndexError on t[0]
    duration = int(ev["t"][-1] - ev["t"][0])
    window = data.draw(
        st.one_of(
            st.integers(1, 40),
            st.integers(1, 8).map(lambda k: max(1, duration // k)),
            st.sampled_from([0.5, 2.5, 37.25]),
        ),
        label="time_window",
    )
    overlap = data.draw(
        st.one_of(
            st.just(0),
            st.just(0.0),
            st.integers(0, max(0, int(np.ceil(window)) - 1)).filter(lambda o: o < window),
            st.floats(0, 0.9).map(lambda f: f * window),
        ),
        label="overlap",
    )
    start = data.draw(st.one_of(st.none(), st.integers(-50, 50).map(lambda d: int(ev["t"][0]) + d)))
    end = data.draw(st.one_of(st.none(), st.integers(-50, 50).map(lambda d: int(ev["t"][-1]) + d)))
    a = int(ev["t"][0]) if start is None else start
    e = int(ev["t"][-1]) if end is None else end
    assume((e - a) / (window - overlap) < 400)  # keep tonic's per-frame Python loop short
    kw = dict(time_window=window, overlap=overlap, start_time=start, end_time=end)
    assert_same_as_tonic(ev, sensor, include_incomplete=data.draw(st.booleans()), **kw)


@HYPO
@given(rec=recordings(), data=st.data())
def test_event_count_matches_tonic(rec, data):
    ev, sensor = rec
    count = data.draw(st.integers(1, max(1, ev.size + 3)), label="event_count")
    overlap = data.draw(
        st.one_of(st.just(0), st.integers(0, count - 1), st.floats(0, 0.95).map(lambda f: f * count)),
        label="overlap",
    )
    assume(overlap < count and ev.size / (count - overlap) < 400)
    incomplete = data.draw(st.booleans())
    assert_same_as_tonic(ev, sensor, event_count=count, overlap=overlap, include_incomplete=incomplete)


@HYPO
@given(rec=recordings(), data=st.data())
def test_n_time_bins_matches_tonic(rec, data):
    ev, sensor = rec
    assume(ev.size > 0)  # tonic: IndexError on t[-1]
    n_bins = data.draw(st.integers(1, 25), label="n_time_bins")
    overlap = data.draw(st.one_of(st.just(0), st.just(0.0), st.floats(0, 0.95)), label="overlap")
    incomplete = data.draw(st.booleans())  # ignored by tonic's bin modes, and by ours
    assert_same_as_tonic(ev, sensor, n_time_bins=n_bins, overlap=overlap, include_incomplete=incomplete)


@HYPO
@given(rec=recordings(), data=st.data())
def test_n_event_bins_matches_tonic(rec, data):
    ev, sensor = rec
    n_bins = data.draw(st.integers(1, 25), label="n_event_bins")
    overlap = data.draw(st.one_of(st.just(0), st.just(0.0), st.floats(0, 0.95)), label="overlap")
    assert_same_as_tonic(ev, sensor, n_event_bins=n_bins, overlap=overlap)


def test_tonic_transform_and_field_order():
    """tonic's ToFrame class and tonic-style field orders/dtypes give the same frames."""
    ev = random_events(7, 2000, 16, 12, 50)
    ref = tonic.transforms.ToFrame(sensor_size=(16, 12, 2), n_time_bins=7)(ev)
    np.testing.assert_array_equal(to_frames(ev, (16, 12), n_time_bins=7), ref)
    for dtype in (
        NMNIST_DTYPE,
        np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)]),
        np.dtype([("t", ">i8"), ("x", ">u2"), ("y", ">u2"), ("p", "u1"), ("extra", "O")]),
        np.dtype([("x", "<u4"), ("y", "<u4"), ("t", "<u8"), ("p", "<i1")]),
    ):
        other = make(ev["t"], ev["x"], ev["y"], ev["p"], dtype=dtype)
        np.testing.assert_array_equal(to_frames(other, (16, 12, 2), n_time_bins=7), ref)
    # strided views and ndarray subclasses are read in place
    np.testing.assert_array_equal(
        to_frames(ev[::3], (16, 12), n_event_bins=4), to_frames(ev[::3].copy(), (16, 12), n_event_bins=4)
    )
    np.testing.assert_array_equal(to_frames(ev.view(np.recarray), (16, 12), n_time_bins=7), ref)


# --------------------------------------------------------------------------- (b) spikingjelly


def spikingjelly_reference(ev: np.ndarray, sensor: tuple[int, int], n_frames: int, split_by: str):
    """docs/formats.md 5.2, written from the definition with masks (empty windows allowed)."""
    w, h = sensor
    t = ev["t"].astype(np.int64)
    n = t.size
    frames = np.zeros((n_frames, 2, h, w))
    for i in range(n_frames):
        if split_by == "number":
            d = n // n_frames
            sel = np.zeros(n, dtype=bool)
            sel[i * d : (i + 1) * d if i < n_frames - 1 else n] = True
        else:
            dt = (t[-1] - t[0]) // n_frames
            t_l = t[0] + i * dt
            sel = t >= t_l
            if i < n_frames - 1:
                sel &= t < t_l + dt
        e = ev[sel]
        np.add.at(frames, (i, (e["p"] != 0).astype(int), e["y"].astype(int), e["x"].astype(int)), 1)
    return frames


@HYPO
@given(rec=recordings(), n_frames=st.integers(1, 20), split_by=st.sampled_from(["number", "time"]))
def test_remainder_last_matches_spikingjelly(rec, n_frames, split_by):
    ev, sensor = rec
    assume(ev.size > 0)
    mode = {"n_event_bins" if split_by == "number" else "n_time_bins": n_frames}
    ours = to_frames(ev, sensor, remainder="last", dtype=np.float64, **mode)
    np.testing.assert_array_equal(ours, spikingjelly_reference(ev, sensor, n_frames, split_by))
    assert ours.sum() == ev.size  # no event lost


# --------------------------------------------------------------------------- (c) by hand


def tiny():
    """6 events on a 3 x 2 sensor (W=3, H=2)."""
    return make(
        t=[0, 10, 10, 25, 30, 41],
        x=[0, 1, 1, 2, 0, 2],
        y=[0, 0, 0, 1, 1, 1],
        p=[1, 0, 0, 1, 1, 0],
    )


def frame(cells) -> np.ndarray:
    """One (2, H=2, W=3) frame from {(p, y, x): count}."""
    f = np.zeros((2, 2, 3), dtype=np.int16)
    for (p, y, x), c in cells.items():
        f[p, y, x] = c
    return f


def test_hand_computed_time_bins():
    ev = tiny()
    # w = (41 - 0) // 2 = 20: [0, 20) holds events 0-2, [20, 40) events 3-4, t = 41 dropped
    f0 = frame({(1, 0, 0): 1, (0, 0, 1): 2})
    f1 = frame({(1, 1, 2): 1, (1, 1, 0): 1})
    np.testing.assert_array_equal(to_frames(ev, (3, 2), n_time_bins=2), np.stack([f0, f1]))
    f1_last = frame({(1, 1, 2): 1, (1, 1, 0): 1, (0, 1, 2): 1})
    np.testing.assert_array_equal(
        to_frames(ev, (3, 2), n_time_bins=2, remainder="last"), np.stack([f0, f1_last])
    )


def test_hand_computed_event_bins_and_windows():
    ev = tiny()
    single = [
        frame({(1, 0, 0): 1}),
        frame({(0, 0, 1): 1}),
        frame({(0, 0, 1): 1}),
        frame({(1, 1, 2): 1}),
    ]
    # n // 4 = 1 event per bin; events 4 and 5 dropped, or added to the last bin
    np.testing.assert_array_equal(to_frames(ev, (3, 2), n_event_bins=4), np.stack(single))
    last = to_frames(ev, (3, 2), n_event_bins=4, remainder="last")
    np.testing.assert_array_equal(last[:3], np.stack(single[:3]))
    np.testing.assert_array_equal(last[3], frame({(1, 1, 2): 1, (1, 1, 0): 1, (0, 1, 2): 1}))
    # time_window=15: floor((41 - 15) / 15) + 1 = 2 windows [0, 15) [15, 30); t = 30 is out
    tw = to_frames(ev, (3, 2), time_window=15)
    np.testing.assert_array_equal(tw, np.stack([frame({(1, 0, 0): 1, (0, 0, 1): 2}), frame({(1, 1, 2): 1})]))
    # include_incomplete: ceil(26 / 15) + 1 = 3 windows, the third [30, 45) holds events 4, 5
    tw3 = to_frames(ev, (3, 2), time_window=15, include_incomplete=True)
    assert tw3.shape == (3, 2, 2, 3)
    np.testing.assert_array_equal(tw3[2], frame({(1, 1, 0): 1, (0, 1, 2): 1}))
    # event_count=4: one full frame; include_incomplete adds [4, 6)
    np.testing.assert_array_equal(to_frames(ev, (3, 2), event_count=4).sum(axis=(1, 2, 3)), [4])
    np.testing.assert_array_equal(
        to_frames(ev, (3, 2), event_count=4, include_incomplete=True).sum(axis=(1, 2, 3)), [4, 2]
    )
    # overlap 0.5 with n_event_bins=2: c = int(3 * 1.5) = 4, stride int(4 * 0.5) = 2
    np.testing.assert_array_equal(
        to_frames(ev, (3, 2), n_event_bins=2, overlap=0.5).sum(axis=(1, 2, 3)), [4, 4]
    )


# --------------------------------------------------------------------------- (d) real N-MNIST


@pytest.fixture(scope="module")
def nmnist() -> np.ndarray:
    require_real()
    ev = tonic.io.read_mnist_file(str(NMNIST), dtype=NMNIST_DTYPE)
    assert ev.size == 4325 and int(ev["t"][0]) == 654 and int(ev["t"][-1]) == 311175
    return ev


def totals(frames: np.ndarray) -> list[int]:
    return frames.sum(axis=(1, 2, 3), dtype=np.int64).tolist()


def test_nmnist_reference_counts(nmnist):
    s = (34, 34)
    tb = to_frames(nmnist, s, n_time_bins=10)
    assert totals(tb) == [198, 789, 373, 191, 654, 387, 179, 448, 855, 250]
    assert sum(totals(tb)) == 4324
    np.testing.assert_array_equal(
        tb, tonic.transforms.ToFrame(sensor_size=(34, 34, 2), n_time_bins=10)(nmnist)
    )
    assert totals(to_frames(nmnist, s, n_time_bins=10, remainder="last"))[-1] == 251
    assert totals(to_frames(nmnist, s, n_event_bins=10)) == [432] * 10
    assert totals(to_frames(nmnist, s, n_event_bins=10, remainder="last")) == [432] * 9 + [437]
    assert totals(to_frames(nmnist, s, time_window=100000)) == [1373, 1288, 1643]
    assert totals(to_frames(nmnist, s, time_window=100000, include_incomplete=True)) == [1373, 1288, 1643, 21]


# --------------------------------------------------------------------------- (e) dtypes


def one_pixel(count: int) -> np.ndarray:
    """``count`` ON events at (x=1, y=0) plus one OFF event at (0, 0), on a 2 x 1 sensor."""
    return make(np.arange(count + 1), [1] * count + [0], [0] * (count + 1), [1] * count + [0])


def test_uint8_and_uint16_saturate():
    ev = one_pixel(300)
    f8, n_sat = to_frames(ev, (2, 1), event_count=1000, dtype=np.uint8, return_saturation=True)
    assert f8.dtype == np.uint8 and n_sat == 1
    assert f8[0, 1, 0, 1] == 255 and f8[0, 0, 0, 0] == 1 and f8.sum() == 256
    f16, n_sat16 = to_frames(ev, (2, 1), event_count=1000, dtype=np.uint16, return_saturation=True)
    assert f16.dtype == np.uint16 and f16[0, 1, 0, 1] == 300 and n_sat16 == 0
    # exactly at the maximum is not saturated
    assert to_frames(one_pixel(255), (2, 1), event_count=1000, dtype=np.uint8, return_saturation=True)[1] == 0
    big = one_pixel(70000)
    g16, n_big = to_frames(big, (2, 1), n_event_bins=1, dtype="uint16", return_saturation=True)
    assert g16[0, 1, 0, 1] == 65535 and n_big == 1
    # with overlapping frames every frame's cell counts
    _, n_two = to_frames(
        one_pixel(600), (2, 1), n_event_bins=2, overlap=0.5, dtype=np.uint8, return_saturation=True
    )
    assert n_two == 2


def test_int16_wraps_like_tonic():
    ev = one_pixel(40000)
    ours, n_wrapped = to_frames(ev, (2, 1), n_event_bins=1, return_saturation=True)
    ref = to_frame_numpy(ev, sensor_size=(2, 1, 2), n_event_bins=1)
    np.testing.assert_array_equal(ours, ref)
    assert ours[0, 1, 0, 1] == 40000 - 65536 and n_wrapped == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16, np.int16])
def test_float_and_int_dtypes_agree(dtype):
    ev = random_events(3, 5000, 9, 5, 20)
    ref = to_frames(ev, (9, 5), n_time_bins=6, overlap=0.3)
    ours, n_sat = to_frames(ev, (9, 5), n_time_bins=6, overlap=0.3, dtype=dtype, return_saturation=True)
    assert ours.dtype == np.dtype(dtype) and n_sat == 0
    np.testing.assert_array_equal(ours, ref.astype(dtype))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, bool, np.int8, "complex64"])
def test_other_dtypes_rejected(dtype):
    with pytest.raises(EventsError, match="dtype"):
        to_frames(tiny(), (3, 2), n_time_bins=2, dtype=dtype)


# --------------------------------------------------------------------------- (f) edge cases


@pytest.mark.parametrize(
    ("kw", "n_frames"),
    [
        ({"n_time_bins": 5}, 5),
        ({"n_event_bins": 4}, 4),
        ({"n_time_bins": 3, "remainder": "last"}, 3),
        ({"time_window": 1000}, 1),
        ({"event_count": 10, "include_incomplete": True}, 1),
        ({"time_window": 100, "start_time": 0, "end_time": 450, "include_incomplete": True}, 5),
    ],
)
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint8])
def test_empty_input(kw, n_frames, dtype):
    empty = np.empty(0, dtype=EVENT_DTYPE)
    frames = to_frames(empty, (6, 4), dtype=dtype, **kw)
    assert frames.shape == (n_frames, 2, 4, 6) and frames.dtype == np.dtype(dtype) and not frames.any()
    if "remainder" not in kw and not ("time_window" in kw and "start_time" not in kw):
        # where tonic's to_frame_numpy copes with empty input (event modes, explicit range)
        if "n_time_bins" not in kw:
            np.testing.assert_array_equal(frames, to_frame_numpy(empty, sensor_size=(6, 4, 2), **kw))
    assert to_frames(empty, (6, 4), dtype=dtype, return_saturation=True, **kw)[1] == 0


def test_one_event():
    ev = make([123], [2], [1], [1])
    for kw in ({"n_time_bins": 4}, {"n_event_bins": 4}, {"time_window": 10}, {"event_count": 3}):
        assert_same_as_tonic(ev, (3, 2), **kw)
    # w = 0: tonic's time bins are all empty; remainder="last" keeps the event in the last frame
    assert not to_frames(ev, (3, 2), n_time_bins=4).any()
    last = to_frames(ev, (3, 2), n_time_bins=4, remainder="last")
    assert last[3, 1, 1, 2] == 1 and last.sum() == 1
    assert to_frames(ev, (3, 2), n_event_bins=4, remainder="last")[3, 1, 1, 2] == 1


def test_all_events_at_one_timestamp():
    ev = random_events(5, 500, 4, 3, max_dt=0, t0=777)
    for kw in (
        {"n_time_bins": 3},
        {"n_time_bins": 3, "overlap": 0.5},
        {"n_event_bins": 3},
        {"time_window": 10},
        {"time_window": 10, "include_incomplete": True},
        {"event_count": 200, "overlap": 50},
    ):
        assert_same_as_tonic(ev, (4, 3), **kw)
    assert not to_frames(ev, (4, 3), n_time_bins=3).any()
    last = to_frames(ev, (4, 3), n_time_bins=3, remainder="last")
    assert totals(last) == [0, 0, 500]
    assert to_frames(ev, (4, 3), time_window=10).sum() == 500


@pytest.mark.parametrize(
    "kw",
    [
        {"n_time_bins": 7},
        {"n_event_bins": 5, "remainder": "last"},
        {"time_window": 333, "overlap": 100},
        {"event_count": 77, "overlap": 7, "include_incomplete": True},
    ],
)
def test_unsorted_input_is_sorted_first(kw):
    ev = random_events(11, 3000, 8, 8, 30)
    rng = np.random.default_rng(1)
    shuffled = ev[rng.permutation(ev.size)]
    before = shuffled.copy()
    expected = to_frames(shuffled[np.argsort(shuffled["t"], kind="stable")], (8, 8), **kw)
    np.testing.assert_array_equal(to_frames(shuffled, (8, 8), **kw), expected)
    np.testing.assert_array_equal(shuffled, before)  # input untouched
    if "event_count" not in kw and "n_event_bins" not in kw:
        np.testing.assert_array_equal(to_frames(shuffled, (8, 8), **kw), to_frames(ev, (8, 8), **kw))


def test_out_of_sensor_raises_with_index():
    ev = random_events(2, 50, 5, 4, 10)
    ev["x"][17] = 5
    with pytest.raises(EventsError, match=r"event 17 at \(x=5, y=\d\)"):
        to_frames(ev, (5, 4), n_time_bins=3)
    ev["x"][17] = 0
    ev["y"][30] = 9
    with pytest.raises(EventsError, match=r"event 30 at \(x=\d, y=9\)"):
        to_frames(ev, (5, 4), n_event_bins=3)
    # also when the event is not in any frame, and in unsorted input (index in the caller's order)
    with pytest.raises(EventsError, match="event 30"):
        to_frames(ev, (5, 4), event_count=5)
    unsorted = ev.copy()
    unsorted[[0, 40]] = unsorted[[40, 0]]
    assert unsorted["t"][0] > unsorted["t"][1]
    with pytest.raises(EventsError, match="event 30"):
        to_frames(unsorted, (5, 4), n_time_bins=2)
    signed = make(ev["t"], ev["x"], ev["y"], ev["p"], dtype=NMNIST_DTYPE)
    signed["y"][30] = 0
    signed["x"][4] = -1
    with pytest.raises(EventsError, match=r"event 4 at \(x=-1,"):
        to_frames(signed, (5, 4), n_time_bins=3)


@pytest.mark.parametrize("bad_p", [2, 7, -1])
def test_bad_polarity_raises(bad_p):
    ev = make([0, 1, 2], [0, 0, 0], [0, 0, 0], [0, 1, 0], dtype=NMNIST_DTYPE)
    ev["p"][2] = bad_p
    with pytest.raises(EventsError, match=f"event 2 has polarity p={bad_p}"):
        to_frames(ev, (1, 1), n_event_bins=1)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_time_bins": 2, "n_event_bins": 2}, "exactly one"),
        ({}, "exactly one"),
        ({"time_window": 10, "event_count": 5}, "exactly one"),
        ({"n_time_bins": 0}, "n_time_bins"),
        ({"n_event_bins": 2.0}, "n_event_bins"),
        ({"time_window": 0}, "time_window"),
        ({"time_window": 10, "overlap": 10}, "overlap"),
        ({"event_count": 5, "overlap": -1}, "overlap"),
        ({"n_time_bins": 3, "overlap": 1.0}, "overlap"),
        ({"time_window": 10, "remainder": "last"}, "remainder"),
        ({"n_time_bins": 3, "overlap": 0.2, "remainder": "last"}, "overlap"),
        ({"n_time_bins": 3, "remainder": "pad"}, "remainder"),
        ({"n_event_bins": 3, "start_time": 0}, "start_time"),
    ],
)
def test_bad_options_raise(kw, match):
    with pytest.raises(EventsError, match=match):
        to_frames(tiny(), (3, 2), **kw)


@pytest.mark.parametrize(
    ("events", "sensor"),
    [
        (tiny(), (3, 2, 1)),
        (tiny(), (3,)),
        (tiny(), (0, 2)),
        (np.zeros(3, dtype=[("t", int), ("x", int), ("y", int)]), (3, 2)),
        (np.zeros((3, 4)), (3, 2)),
        (np.zeros(3, dtype=[("t", float), ("x", int), ("y", int), ("p", int)]), (3, 2)),
    ],
)
def test_bad_inputs_raise(events, sensor):
    with pytest.raises(EventsError):
        to_frames(events, sensor, n_time_bins=2)


# --------------------------------------------------------------------------- (g) many samples


@pytest.mark.parametrize("workers", [None, 1, 3])
def test_to_frames_many_equals_loop(workers):
    samples = [random_events(s, 100 * s, 10, 6, 40) for s in range(8)]
    kw = {"time_window": 500, "overlap": 100, "dtype": np.uint8, "return_saturation": True}
    got = to_frames_many(samples, (10, 6), workers=workers, **kw)
    want = [to_frames(ev, (10, 6), **kw) for ev in samples]
    assert len(got) == len(want)
    for (g, gs), (w, ws) in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
        assert gs == ws
