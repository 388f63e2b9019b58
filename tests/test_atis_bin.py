"""ATIS 40-bit .bin/.bs2 reader and writer, against real N-MNIST files and tonic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL, REAL_NMNIST_TONIC, check_read_outcome, fuzz_settings, needs_real
from hypothesis import given
from hypothesis import strategies as st

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import EVENT_DTYPE
from tmkt_data.formats import atis_bin, read_events

TONIC_BIN = REAL_NMNIST_TONIC
SLAYER = {1: 4681, 2: 5028, 3: 3307, 4: 2723, 6: 4921}
REAL_FILES = [(TONIC_BIN, 4325)] + [(REAL / "nmnist_slayer" / f"{k}.bs2", n) for k, n in SLAYER.items()]
FUZZ = fuzz_settings(60)

# tonic's read_mnist_file fills the dtype's fields *positionally* in the order
# (x, y, timestamp, polarity), so the dtype must list them in that order.
TONIC_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


def record(x: int, y: int, on: int, ts: int) -> bytes:
    return bytes([x, y, (on << 7) | (ts >> 16), (ts >> 8) & 0xFF, ts & 0xFF])


@needs_real()
@pytest.mark.parametrize(("path", "count"), REAL_FILES, ids=lambda v: getattr(v, "name", str(v)))
def test_real_files_match_tonic(path: Path, count: int) -> None:
    import tonic.io

    rec = atis_bin.read(path)
    assert len(rec) == count
    assert rec.sensor_size == (34, 34) and rec.metadata["sensor_size_from"] == "extent"
    assert rec.metadata["overflow_markers"] == 0 and rec.metadata["records"] == count
    assert rec.events.dtype == EVENT_DTYPE and rec.events["t"][0] == 0
    ref = tonic.io.read_mnist_file(str(path), dtype=TONIC_DTYPE)
    np.testing.assert_array_equal(rec.events["x"], ref["x"])
    np.testing.assert_array_equal(rec.events["y"], ref["y"])
    np.testing.assert_array_equal(rec.events["p"], ref["p"])
    np.testing.assert_array_equal(rec.events["t"] + rec.t0_abs, ref["t"])
    fixed = atis_bin.read(path, sensor_size=(34, 34))
    assert fixed.metadata["sensor_size_from"] == "option"
    np.testing.assert_array_equal(fixed.events, rec.events)


@needs_real()
def test_tonic_sample_facts() -> None:
    rec = read_events(TONIC_BIN)  # .bin: detected by extension
    assert rec.source_format == "atis_bin"
    assert rec.t0_abs == 654 and rec.t0_abs + int(rec.events["t"][-1]) == 311175
    assert int(rec.events["p"].sum()) == 2145 and len(rec) - 2145 == 2180
    assert int(rec.events["x"].max()) <= 33 and int(rec.events["y"].max()) <= 33
    assert len(rec.metadata["sha256"]) == 64 and rec.metadata["sha256"].startswith("3c9159329633efbb")


@needs_real()
@pytest.mark.parametrize(("path", "count"), REAL_FILES, ids=lambda v: getattr(v, "name", str(v)))
def test_writer_reproduces_real_files_byte_for_byte(tmp_path: Path, path: Path, count: int) -> None:
    rec = atis_bin.read(path)
    out = tmp_path / "copy.bin"
    atis_bin.write(out, rec.events, rec.sensor_size, t0_abs=rec.t0_abs)
    assert out.read_bytes() == path.read_bytes()


def test_overflow_markers_hand_built(tmp_path: Path) -> None:
    data = (
        record(1, 2, 1, 100)
        + record(0, 240, 0, 0)  # marker: +2**23 from here on
        + record(3, 4, 0, 50)
        + record(9, 240, 1, 77)  # two more markers (their own fields are ignored)
        + record(0, 240, 0, 0)
        + record(5, 6, 1, 7)
    )
    path = tmp_path / "overflow.bin"
    path.write_bytes(data)
    rec = atis_bin.read(path)
    assert rec.metadata["overflow_markers"] == 3 and rec.metadata["records"] == 6
    absolute = [100, 2**23 + 50, 3 * 2**23 + 7]
    assert rec.t0_abs == 100
    assert (rec.events["t"] + rec.t0_abs).tolist() == absolute
    assert rec.events["x"].tolist() == [1, 3, 5] and rec.events["y"].tolist() == [2, 4, 6]
    assert rec.events["p"].tolist() == [1, 0, 1]
    assert rec.sensor_size == (6, 7)

    # tonic (like Orchard's eventvision.py) adds 2**13 per marker instead of 2**23
    import tonic.io

    ref = tonic.io.read_mnist_file(str(path), dtype=TONIC_DTYPE)
    assert ref["t"].tolist() == [100, 2**13 + 50, 3 * 2**13 + 7]


def test_writer_inserts_markers(tmp_path: Path) -> None:
    ev = np.zeros(3, dtype=EVENT_DTYPE)
    ev["t"] = [0, 2**23 - 100, 2 * 2**23 + 5]
    ev["x"] = [1, 2, 3]
    ev["y"] = [4, 5, 6]
    ev["p"] = [1, 0, 1]
    path = tmp_path / "w.bin"
    atis_bin.write(path, ev, (10, 10), t0_abs=100)
    raw = path.read_bytes()
    assert len(raw) == 5 * 5  # 3 events + 2 markers
    assert raw[:5] == record(1, 4, 1, 100)
    assert raw[5:10] == record(0, 240, 0, 0)
    assert raw[10:15] == record(2, 5, 0, 0)  # 2**23 - 100 + 100 = 2**23 -> low bits 0
    assert raw[15:20] == record(0, 240, 0, 0)
    assert raw[20:25] == record(3, 6, 1, 105)
    back = atis_bin.read(path)
    assert back.t0_abs == 100
    np.testing.assert_array_equal(back.events["t"], ev["t"])


events_strategy = st.integers(min_value=0, max_value=60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 3 * 2**23), min_size=n, max_size=n),
        st.lists(st.integers(0, 255), min_size=n, max_size=n),
        st.lists(st.integers(0, 254).map(lambda v: v + (v >= 240)), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@FUZZ
@given(cols=events_strategy, t0=st.integers(0, 2**25))
def test_write_read_round_trip(tmp_path: Path, cols, t0: int) -> None:
    t, x, y, p = (np.asarray(c, dtype=np.int64) for c in cols)
    ev = np.zeros(t.size, dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = t, x, y, p
    path = tmp_path / "rt.bin"
    atis_bin.write(path, ev, (256, 256), t0_abs=t0)
    if t.size == 0:
        assert path.read_bytes() == b""
        return
    back = atis_bin.read(path, sensor_size=(256, 256))
    order = np.argsort(ev["t"], kind="stable")
    want = ev[order]
    np.testing.assert_array_equal(back.events["t"] + back.t0_abs, want["t"] + t0)
    for f in ("x", "y", "p"):
        np.testing.assert_array_equal(back.events[f], want[f])
    assert back.metadata["overflow_markers"] == (int(want["t"][-1]) + t0) >> 23


def test_partial_record_names_offset(tmp_path: Path) -> None:
    path = tmp_path / "p.bin"
    path.write_bytes(record(1, 1, 0, 1) + b"\x01\x02")
    with pytest.raises(FormatError, match=r"p\.bin at byte 5: .*partial record of 2 bytes") as err:
        atis_bin.read(path)
    assert err.value.offset == 5


def test_event_outside_given_sensor(tmp_path: Path) -> None:
    path = tmp_path / "o.bin"
    path.write_bytes(record(1, 1, 0, 1) + record(40, 2, 1, 2))
    with pytest.raises(FormatError, match="outside the given sensor") as err:
        atis_bin.read(path, sensor_size=(34, 34))
    assert err.value.offset == 5


def test_only_markers(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(record(0, 240, 0, 0) * 2)
    with pytest.raises(FormatError, match="no events"):
        atis_bin.read(path)
    rec = atis_bin.read(path, sensor_size=(34, 34))
    assert len(rec) == 0 and rec.sensor_size == (34, 34) and rec.metadata["overflow_markers"] == 2


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "e.bin"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        atis_bin.read(path)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("y", 240, "y=240"), ("x", 256, "0..255"), ("t", -5, "negative")],
)
def test_writer_rejects_unrepresentable(tmp_path: Path, field: str, value: int, match: str) -> None:
    ev = np.zeros(2, dtype=[("t", "<i8"), ("x", "<i4"), ("y", "<i4"), ("p", "u1")])
    ev["t"] = [0, 10]
    ev[field][1] = value
    path = tmp_path / "bad.bin"
    with pytest.raises(EventsError, match=match):
        atis_bin.write(path, ev, (300, 300))
    assert not path.exists() and os.listdir(tmp_path) == []


def test_writer_checks_sensor_and_is_atomic(tmp_path: Path) -> None:
    ev = np.zeros(1, dtype=EVENT_DTYPE)
    ev["x"] = 20
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(EventsError, match="outside the sensor"):
        atis_bin.write(path, ev, (10, 10))
    assert path.read_bytes() == b"old"
    atis_bin.write(path, ev, (34, 34))
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]
    assert path.stat().st_size == 5


def test_sniff_and_registry() -> None:
    assert atis_bin.sniff(b"\x00\x01\x02\x03\x04") is False
    assert atis_bin.NAME == "atis_bin" and atis_bin.EXTENSIONS == (".bin", ".bs2")


def _check_outcome(path: Path) -> None:
    rec = check_read_outcome(path, "atis_bin")
    if rec is not None and len(rec):
        assert (
            int(rec.events["x"].max()) < rec.sensor_size[0]
            and int(rec.events["y"].max()) < rec.sensor_size[1]
        )


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "r.bin"
    path.write_bytes(data)
    _check_outcome(path)


@needs_real()
@FUZZ
@given(
    op=st.sampled_from(["flip", "truncate", "insert"]),
    pos=st.integers(0, 21624),
    val=st.binary(min_size=1, max_size=7),
)
def test_fuzz_mutated_real_file(tmp_path: Path, op: str, pos: int, val: bytes) -> None:
    data = bytearray(TONIC_BIN.read_bytes()[:2000] if pos % 2 else TONIC_BIN.read_bytes())
    pos %= len(data)
    if op == "flip":
        data[pos] ^= val[0] or 1
    elif op == "truncate":
        del data[pos:]
    else:
        data[pos:pos] = val
    path = tmp_path / "m.bin"
    path.write_bytes(bytes(data))
    _check_outcome(path)
