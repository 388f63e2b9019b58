"""AEDAT 2.0/1.0 reader and writer, checked against hand-built bytes, hand-computed values and tonic."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_NMNIST_TONIC, event_lists, fuzz_path, fuzz_settings, put_bytes, require_real
from hypothesis import given, settings
from hypothesis import strategies as st

from tmkt_data.errors import FormatError
from tmkt_data.events import Recording, make_events
from tmkt_data.formats import aedat2
from tmkt_data.formats._io import read_hash_header

DVS128_CLASS = b"ch.unizh.ini.jaer.chip.retina.DVS128"
DAVIS240_CLASS = b"eu.seebetter.ini.chips.davis.DAVIS240C"
DAVIS346_CLASS = b"eu.seebetter.ini.chips.davis.Davis346B"


def header(chip_class: bytes | None = None, version: bytes = b"#!AER-DAT2.0") -> bytes:
    h = version + b"\r\n# This is a raw AE data file - do not edit\r\n# Timestamps tick is 1 us\r\n"
    if chip_class is not None:
        h += b"# AEChip: " + chip_class + b"\r\n"
    return h + b"# End of ASCII Header\r\n"


def body(records) -> bytes:
    return b"".join(struct.pack(">II", a, t) for a, t in records)


def dvs_addr(raw_x: int, raw_y: int, on: int) -> int:
    return (raw_y << 8) | (raw_x << 1) | (1 - on)


def davis_addr(raw_x: int, raw_y: int, on: int) -> int:
    return (raw_y << 22) | (raw_x << 12) | (on << 11)


# ---------------------------------------------------------------- sniff


def test_sniff_is_conservative():
    assert aedat2.sniff(b"#!AER-DAT2.0\r\n# ...")
    assert aedat2.sniff(b"#!AER-DAT1.0\r\n")
    assert not aedat2.sniff(b"#!AER-DAT3.1\r\n")
    assert not aedat2.sniff(b"#!AER-DAT4.0\r\n")
    assert not aedat2.sniff(b"# some comment\r\n")
    assert not aedat2.sniff(b"")


# ---------------------------------------------------------------- DVS128

DVS_RECORDS = [
    (dvs_addr(10, 5, 1), 1000),
    (dvs_addr(0, 127, 0), 1010),
    (0x8000 | dvs_addr(3, 3, 1), 1020),  # external event (bit 15): dropped
    (0x80000000, 1030),  # special (bit 31): dropped
    (dvs_addr(127, 0, 1), 1040),
]
RAW_X = [10, 0, 127]
RAW_Y = [5, 127, 0]
# hand-computed, W = H = 128
DVS_EXPECTED = {
    "raw": (RAW_X, RAW_Y, (128, 128)),
    "jaer": ([117, 127, 0], RAW_Y, (128, 128)),
    "image": ([117, 127, 0], [122, 0, 127], (128, 128)),
    "spikingjelly": ([122, 0, 127], [117, 127, 0], (128, 128)),
}


@pytest.mark.parametrize("orientation", list(DVS_EXPECTED))
def test_dvs128_hand_example(tmp_path, orientation):
    p = put_bytes(tmp_path, header(DVS128_CLASS) + body(DVS_RECORDS))
    rec = aedat2.read(p, orientation=orientation)
    ex, ey, sensor = DVS_EXPECTED[orientation]
    assert event_lists(rec) == (ex, ey, [1, 0, 1], [0, 10, 40])
    assert rec.sensor_size == sensor
    assert rec.t0_abs == 1000
    assert rec.source_format == "aedat2"
    assert rec.metadata["chip"] == "dvs128"
    assert rec.metadata["orientation"] == orientation
    assert rec.metadata["dropped_special"] == 2
    assert rec.metadata["version"] == "2.0"
    assert rec.metadata["resorted"] is False


def test_dvs128_default_is_spikingjelly_and_no_aechip_means_dvs128(tmp_path):
    p = put_bytes(tmp_path, header(None) + body(DVS_RECORDS))
    rec = aedat2.read(p)
    assert rec.metadata["chip"] == "dvs128"
    assert rec.metadata["orientation"] == "spikingjelly"
    # spikingjelly's CIFAR10-DVS convention: x = 127 - raw_y, y = 127 - raw_x, ON = 1 - bit0
    assert rec.events["x"].tolist() == [127 - v for v in RAW_Y]
    assert rec.events["y"].tolist() == [127 - v for v in RAW_X]


def test_dvs128_other_address_bits_ignored_like_jaer(tmp_path):
    # bits 16-30 are not part of the DVS128 address; bit 15 / 31 are the only drop markers
    p = put_bytes(tmp_path, header() + body([(0x00010000 | dvs_addr(4, 6, 0), 7)]))
    rec = aedat2.read(p, orientation="raw")
    assert event_lists(rec) == ([4], [6], [0], [0])


# ---------------------------------------------------------------- DAVIS

DAVIS240_RECORDS = [
    (davis_addr(3, 7, 1), 5),
    (davis_addr(239, 179, 0), 6),
    (0x80000000 | davis_addr(10, 10, 1), 7),  # APS sample: dropped
    (0x400 | davis_addr(20, 20, 1), 8),  # IMU/special: dropped
    (davis_addr(0, 0, 0), 9),
]
# hand-computed, W = 240, H = 180
DAVIS240_EXPECTED = {
    "raw": ([3, 239, 0], [7, 179, 0], (240, 180)),
    "jaer": ([236, 0, 239], [7, 179, 0], (240, 180)),
    "image": ([236, 0, 239], [172, 0, 179], (240, 180)),
    "spikingjelly": ([172, 0, 179], [236, 0, 239], (180, 240)),
}


@pytest.mark.parametrize("orientation", list(DAVIS240_EXPECTED))
def test_davis240_hand_example(tmp_path, orientation):
    p = put_bytes(tmp_path, header(DAVIS240_CLASS) + body(DAVIS240_RECORDS))
    rec = aedat2.read(p, orientation=orientation)
    ex, ey, sensor = DAVIS240_EXPECTED[orientation]
    assert event_lists(rec) == (ex, ey, [1, 0, 0], [0, 1, 4])
    assert rec.sensor_size == sensor
    assert rec.t0_abs == 5
    assert rec.metadata["chip"] == "davis240"
    assert rec.metadata["dropped_special"] == 2


def test_davis_auto_orientation_is_image(tmp_path):
    p = put_bytes(tmp_path, header(DAVIS240_CLASS) + body(DAVIS240_RECORDS))
    rec = aedat2.read(p)
    assert rec.metadata["orientation"] == "image"
    assert rec.sensor_size == (240, 180)


def test_davis346_hand_example(tmp_path):
    recs = [
        (davis_addr(345, 259, 1), 100),
        (davis_addr(1, 2, 0), 101),
        (0x80000000 | 0x7FFFFFFF, 102),  # APS with out-of-range bits: dropped, not an error
        (0x400, 103),
    ]
    p = put_bytes(tmp_path, header(DAVIS346_CLASS) + body(recs))
    rec = aedat2.read(p)
    assert rec.metadata["chip"] == "davis346"
    assert event_lists(rec) == ([0, 344], [0, 257], [1, 0], [0, 1])
    rec = aedat2.read(p, orientation="spikingjelly")
    assert rec.sensor_size == (260, 346)
    assert event_lists(rec) == ([0, 257], [0, 344], [1, 0], [0, 1])


@pytest.mark.parametrize(
    ("chip_class", "addr"),
    [
        (DAVIS240_CLASS, davis_addr(240, 0, 1)),
        (DAVIS240_CLASS, davis_addr(0, 180, 1)),
        (DAVIS346_CLASS, davis_addr(346, 0, 0)),
    ],
)
def test_davis_coordinate_outside_chip_is_error_with_offset(tmp_path, chip_class, addr):
    h = header(chip_class)
    p = put_bytes(tmp_path, h + body([(davis_addr(1, 1, 1), 1), (addr, 2)]))
    with pytest.raises(FormatError) as ei:
        aedat2.read(p)
    assert ei.value.offset == len(h) + 8


def test_chip_override_and_unknown_aechip(tmp_path):
    p = put_bytes(
        tmp_path, header(b"eu.seebetter.ini.chips.davis.DAVIS640") + body([(davis_addr(1, 2, 1), 3)])
    )
    with pytest.raises(FormatError, match="AEChip"):
        aedat2.read(p)
    rec = aedat2.read(p, chip="davis346", orientation="raw")
    assert event_lists(rec) == ([1], [2], [1], [0])


# ---------------------------------------------------------------- timestamps


def test_wraparound_unwrapped(tmp_path):
    ts = [2**32 - 20, 2**32 - 10, 5, 15]
    p = put_bytes(tmp_path, header() + body([(dvs_addr(i, i, 1), t) for i, t in enumerate(ts)]))
    rec = aedat2.read(p, orientation="raw")
    assert rec.t0_abs == 2**32 - 20
    assert rec.events["t"].tolist() == [0, 10, 25, 35]
    assert rec.events["x"].tolist() == [0, 1, 2, 3]
    assert rec.metadata["timestamp_wraps"] == 1
    assert rec.metadata["resorted"] is False


def test_two_wraps(tmp_path):
    ts = [2**32 - 1, 0, 2**31, 2**32 - 1, 3]
    p = put_bytes(tmp_path, header() + body([(dvs_addr(1, 1, 1), t) for t in ts]))
    rec = aedat2.read(p)
    # unwrapped: 2**32 - 1, 2**32, 2**32 + 2**31, 2**33 - 1, 2**33 + 3
    assert rec.events["t"].tolist() == [0, 1, 2**31 + 1, 2**32, 2**32 + 4]
    assert rec.metadata["timestamp_wraps"] == 2


def test_small_backward_jump_is_resorted_stably(tmp_path):
    recs = [
        (dvs_addr(0, 0, 1), 100),
        (dvs_addr(1, 0, 1), 50),
        (dvs_addr(2, 0, 1), 100),
        (dvs_addr(3, 0, 1), 200),
    ]
    p = put_bytes(tmp_path, header() + body(recs))
    rec = aedat2.read(p, orientation="raw")
    assert rec.metadata["resorted"] is True
    assert rec.metadata["timestamp_wraps"] == 0
    assert rec.events["x"].tolist() == [1, 0, 2, 3]
    assert rec.events["t"].tolist() == [0, 50, 50, 150]


# ---------------------------------------------------------------- AEDAT 1.0


def test_aedat1_hand_example(tmp_path):
    recs = (
        struct.pack(">HI", dvs_addr(10, 5, 1), 7)
        + struct.pack(">HI", 0x8000, 8)
        + struct.pack(">HI", dvs_addr(2, 3, 0), 9)
    )
    p = put_bytes(tmp_path, b"#!AER-DAT1.0\r\n# x\r\n" + recs, "f.dat")
    rec = aedat2.read(p, orientation="raw")
    assert rec.metadata["version"] == "1.0"
    assert event_lists(rec) == ([10, 2], [5, 3], [1, 0], [0, 2])
    # no #!AER-DAT line at all also means 1.0
    p = put_bytes(tmp_path, b"# old jAER file\r\n" + recs, "g.dat")
    assert event_lists(aedat2.read(p, orientation="raw")) == ([10, 2], [5, 3], [1, 0], [0, 2])


def test_aedat1_partial_record(tmp_path):
    h = b"#!AER-DAT1.0\r\n"
    p = put_bytes(tmp_path, h + struct.pack(">HI", 1, 2) + b"\x00\x01\x02")
    with pytest.raises(FormatError) as ei:
        aedat2.read(p)
    assert ei.value.offset == len(h) + 6


# ---------------------------------------------------------------- bad input


def test_truncated_body_names_offset_of_partial_record(tmp_path):
    h = header()
    p = put_bytes(tmp_path, h + body([(dvs_addr(1, 1, 1), 1), (dvs_addr(2, 2, 1), 2)]) + b"\x00\x00\x01")
    with pytest.raises(FormatError) as ei:
        aedat2.read(p)
    assert ei.value.offset == len(h) + 16
    assert "partial record" in str(ei.value)


def test_header_line_without_newline(tmp_path):
    p = put_bytes(tmp_path, b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128")
    with pytest.raises(FormatError):
        aedat2.read(p)


def test_empty_file(tmp_path):
    with pytest.raises(FormatError):
        aedat2.read(put_bytes(tmp_path, b""))


def test_header_only_gives_no_events(tmp_path):
    rec = aedat2.read(put_bytes(tmp_path, header()))
    assert len(rec) == 0
    assert rec.events.dtype.names == ("t", "x", "y", "p")


def test_garbage_bytes(tmp_path):
    with pytest.raises(FormatError):
        aedat2.read(
            put_bytes(tmp_path, bytes(range(200, 255)))
        )  # 55 bytes: no header, not whole 6-byte records


def test_aedat3_header_rejected(tmp_path):
    with pytest.raises(FormatError, match="AEDAT"):
        aedat2.read(put_bytes(tmp_path, b"#!AER-DAT3.1\r\n#!END-HEADER\r\n"))


def test_missing_file(tmp_path):
    with pytest.raises(FormatError):
        aedat2.read(tmp_path / "nope.aedat")


# ---------------------------------------------------------------- writer


def test_writer_header_and_bytes(tmp_path):
    ev = make_events(
        [0, 5], [122, 0], [117, 127], [1, 0]
    )  # spikingjelly coordinates of raw (10,5) and (0,127)
    p = tmp_path / "w.aedat"
    aedat2.write(p, ev, (128, 128), t0_abs=1000)
    data = p.read_bytes()
    lines = [
        b"#!AER-DAT2.0",
        b"# This is a raw AE data file - do not edit",
        b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
        b"# Timestamps tick is 1 us",
        b"# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128",
        b"# End of ASCII Header",
    ]
    h = b"".join(line + b"\r\n" for line in lines)
    assert data[: len(h)] == h
    assert data[len(h) :] == body([(dvs_addr(10, 5, 1), 1000), (dvs_addr(0, 127, 0), 1005)])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_writer_davis_hash_first_byte_gets_leading_special_record(tmp_path):
    # raw_y = 140 puts 0x23 ('#') in the first byte of the address, which would read as a header line
    ev = make_events([0, 1], [239 - 5, 0], [179 - 140, 0], [1, 1])  # image orientation
    p = tmp_path / "w.aedat"
    aedat2.write(p, ev, (240, 180), chip="davis240", orientation="image")
    data = p.read_bytes()
    start = data.index(b"# End of ASCII Header\r\n") + len(b"# End of ASCII Header\r\n")
    assert data[start] != 0x23
    rec = aedat2.read(p)
    assert rec.metadata["dropped_special"] == 1
    assert event_lists(rec) == ([234, 0], [39, 0], [1, 1], [0, 1])


def test_writer_rejects_bad_sensor_and_coordinates(tmp_path):
    from tmkt_data.errors import EventsError

    ev = make_events([0], [130], [0], [1])
    with pytest.raises(EventsError):
        aedat2.write(tmp_path / "a.aedat", ev, (128, 128))
    with pytest.raises(EventsError):
        aedat2.write(
            tmp_path / "a.aedat",
            make_events([0], [0], [0], [1]),
            (346, 260),
            chip="davis346",
            orientation="spikingjelly",
        )
    assert not (tmp_path / "a.aedat").exists()


SIZES = {"dvs128": (128, 128), "davis240": (240, 180), "davis346": (346, 260)}


@st.composite
def chip_events(draw):
    chip = draw(st.sampled_from(list(SIZES)))
    orientation = draw(st.sampled_from(["spikingjelly", "jaer", "image", "raw"]))
    w, h = SIZES[chip]
    if orientation == "spikingjelly":
        w, h = h, w
    n = draw(st.integers(0, 40))
    xs = draw(st.lists(st.integers(0, w - 1), min_size=n, max_size=n))
    ys = draw(st.lists(st.integers(0, h - 1), min_size=n, max_size=n))
    ps = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(0, 10**7), min_size=n, max_size=n))
    t0 = draw(st.sampled_from([0, 12345, 2**32 - 5000, 3 * 2**32]))
    return chip, orientation, (w, h), make_events(ts, xs, ys, ps), t0


@fuzz_settings(80)
@given(chip_events())
def test_round_trip_every_chip_and_orientation(tmp_path, case):
    chip, orientation, sensor, ev, t0 = case
    p = tmp_path / "rt.aedat"
    aedat2.write(p, ev, sensor, chip=chip, orientation=orientation, t0_abs=t0)
    rec = aedat2.read(p, orientation=orientation)  # chip from the AEChip line
    assert rec.metadata["chip"] == chip
    assert rec.sensor_size == sensor
    first = int(ev["t"][0]) if ev.size else 0
    np.testing.assert_array_equal(rec.events["t"], ev["t"] - first)
    for f in ("x", "y", "p"):
        np.testing.assert_array_equal(rec.events[f], ev[f])
    if ev.size:
        assert rec.t0_abs == (t0 + first) % 2**32


# ---------------------------------------------------------------- tonic


def test_tonic_read_dvs_128_is_broken_in_1_7_0(tmp_path):
    import tonic.io as tio

    p = put_bytes(tmp_path, header(DVS128_CLASS) + body(DVS_RECORDS))
    # read_dvs_128 unpacks two values from read_aedat_header_from_file, which returns three
    with pytest.raises(ValueError):
        tio.read_dvs_128(str(p))


def test_tonic_dvs128_mapping_differs(tmp_path):
    """tonic's intended DVS128 decoding (read_dvs_128 body, applied to its raw address reader):
    x = raw_y, y = raw_x, p = bit0 (1 = OFF), and it keeps special events."""
    import tonic.io as tio

    p = put_bytes(tmp_path, header(DVS128_CLASS) + body(DVS_RECORDS))
    version, start, _ = tio.read_aedat_header_from_file(str(p))
    raw = tio.get_aer_events_from_file(str(p), version, start)
    assert len(raw) == 5  # the two special records are kept by tonic
    a = raw["address"][[0, 1, 4]]
    ours = aedat2.read(p, orientation="raw").events
    np.testing.assert_array_equal((a >> 8) & 0x7F, ours["y"])  # tonic x == our raw y
    np.testing.assert_array_equal((a >> 1) & 0x7F, ours["x"])  # tonic y == our raw x
    np.testing.assert_array_equal(a & 1, 1 - ours["p"])  # tonic p == 1 for OFF


def test_matches_tonic_read_davis_346(tmp_path):
    import tonic.io as tio

    rng = np.random.default_rng(3)
    n = 500
    raw_x = rng.integers(0, 346, n)
    raw_y = rng.integers(0, 260, n)
    on = rng.integers(0, 2, n)
    ts = np.sort(rng.integers(10, 10**6, n))
    recs = [
        (davis_addr(int(a), int(b), int(c)), int(t)) for a, b, c, t in zip(raw_x, raw_y, on, ts, strict=True)
    ]
    p = put_bytes(tmp_path, header(DAVIS346_CLASS) + body(recs))
    shape, start_ts, tev = tio.read_davis_346(str(p))
    assert shape == (346, 260)
    assert start_ts is None
    rec = aedat2.read(p, chip="davis346", orientation="image")
    assert rec.sensor_size == (346, 260)
    np.testing.assert_array_equal(rec.events["x"], tev["x"])
    np.testing.assert_array_equal(rec.events["y"], tev["y"])
    np.testing.assert_array_equal(rec.events["p"], tev["p"].astype(np.uint8))
    np.testing.assert_array_equal(rec.events["t"] + rec.t0_abs, tev["t"])


def test_tonic_read_davis_346_keeps_aps_and_imu_records(tmp_path):
    import tonic.io as tio

    recs = [
        (davis_addr(1, 2, 1), 1),
        (0x80000000 | davis_addr(5, 5, 0), 2),
        (0x400, 3),
        (davis_addr(3, 4, 0), 4),
    ]
    p = put_bytes(tmp_path, header(DAVIS346_CLASS) + body(recs))
    _, _, tev = tio.read_davis_346(str(p))
    assert len(tev) == 4  # tonic decodes APS and IMU records as polarity events
    assert len(aedat2.read(p)) == 2


def test_tonic_does_not_unwrap(tmp_path):
    import tonic.io as tio

    recs = [(davis_addr(1, 1, 1), 2**32 - 10), (davis_addr(2, 2, 1), 5)]
    p = put_bytes(tmp_path, header(DAVIS346_CLASS) + body(recs))
    _, _, tev = tio.read_davis_346(str(p))
    assert tev["t"].tolist() == [2**32 - 10, 5]
    rec = aedat2.read(p)
    assert (rec.events["t"] + rec.t0_abs).tolist() == [2**32 - 10, 2**32 + 5]


# ---------------------------------------------------------------- real N-MNIST events re-encoded


def test_nmnist_round_trip_dvs128_raw(tmp_path):
    src = require_real(REAL_NMNIST_TONIC)
    import tonic.io as tio

    dt = np.dtype([("x", int), ("y", int), ("p", int), ("t", int)])
    nm = tio.read_mnist_file(str(src), dtype=dt)
    assert len(nm) == 4325
    ev = make_events(nm["t"], nm["x"], nm["y"], nm["p"])
    p = tmp_path / "nmnist.aedat"
    aedat2.write(p, ev, (128, 128), chip="dvs128", orientation="raw")
    rec = aedat2.read(p, orientation="raw")
    assert len(rec) == 4325
    assert rec.t0_abs == int(ev["t"][0])
    np.testing.assert_array_equal(rec.events["t"], ev["t"] - ev["t"][0])
    for f in ("x", "y", "p"):
        np.testing.assert_array_equal(rec.events[f], ev[f])


# ---------------------------------------------------------------- fuzz


def _read_or_format_error(data: bytes, **kw) -> None:
    p = fuzz_path("aedat2.aedat")
    p.write_bytes(data)
    try:
        rec = aedat2.read(p, **kw)
    except FormatError:
        return
    assert isinstance(rec, Recording)
    assert rec.events.dtype.names == ("t", "x", "y", "p")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["auto", "dvs128", "davis240", "davis346"]))
def test_fuzz_random_bytes(data, chip):
    _read_or_format_error(data, chip=chip)
    _read_or_format_error(b"#!AER-DAT2.0\r\n" + data, chip=chip)


_VALID = (
    header(DAVIS240_CLASS)
    + body(DAVIS240_RECORDS)
    + body([(davis_addr(9, 9, 1), 2**32 - 1), (davis_addr(8, 8, 0), 3)])
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "truncate", "insert", "delete"]),
            st.integers(0, len(_VALID)),
            st.binary(min_size=1, max_size=9),
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["auto", "dvs128", "davis346"]),
)
def test_fuzz_mutated_valid_file(mutations, chip):
    data = bytearray(_VALID)
    for kind, pos, blob in mutations:
        pos = min(pos, len(data))
        if kind == "flip" and pos < len(data):
            data[pos] ^= blob[0] or 0xFF
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = blob
        elif kind == "delete":
            del data[pos : pos + len(blob)]
    _read_or_format_error(bytes(data), chip=chip)


# ---------------------------------------------------------------- compiled decoder vs a plain-numpy reference

_DROP = {"dvs128": 0x80008000, "davis240": 0x80000400, "davis346": 0x80000400}


def reference_decode(data: bytes, start: int, version: str, chip: str, orientation: str):
    """Plain numpy/Python decode of an AEDAT 1.0/2.0 body, written from the format description.

    Returns ``("error", offset)`` for a DAVIS coordinate outside the chip, else
    ``(events, t0_abs, sensor_size, dropped, wraps, resorted)``.
    """
    size = 8 if version == "2.0" else 6
    n = (len(data) - start) // size
    dt = np.dtype([("a", ">u4" if size == 8 else ">u2"), ("t", ">u4")])
    rec = np.frombuffer(data, dtype=dt, count=n, offset=start)
    a = rec["a"].astype(np.int64)
    t = rec["t"].astype(np.int64)
    t_abs = np.empty(n, dtype=np.int64)
    shift = wraps = 0
    for i in range(n):  # every record counts, special ones included
        if i and int(t[i]) - int(t[i - 1]) < -(2**31):
            shift += 2**32
            wraps += 1
        t_abs[i] = int(t[i]) + shift
    w, h = SIZES[chip]
    keep = (a & _DROP[chip]) == 0
    if chip == "dvs128":
        rx, ry, p = (a >> 1) & 0x7F, (a >> 8) & 0x7F, 1 - (a & 1)
    else:
        rx, ry, p = (a >> 12) & 0x3FF, (a >> 22) & 0x1FF, (a >> 11) & 1
        bad = np.flatnonzero(keep & ((rx >= w) | (ry >= h)))
        if bad.size:
            return "error", start + int(bad[0]) * size
    rx, ry, p, tk = rx[keep], ry[keep], p[keep], t_abs[keep]
    x, y, sensor = {
        "raw": (rx, ry, (w, h)),
        "jaer": (w - 1 - rx, ry, (w, h)),
        "image": (w - 1 - rx, h - 1 - ry, (w, h)),
        "spikingjelly": (h - 1 - ry, w - 1 - rx, (h, w)),
    }[orientation]
    resorted = any(tk[j] < tk[j - 1] for j in range(1, tk.size))
    order = sorted(range(tk.size), key=lambda j: int(tk[j]))  # Python's sort is stable
    ev = np.empty(tk.size, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    t0 = int(tk[order[0]]) if tk.size else 0
    ev["t"] = tk[order] - t0
    ev["x"], ev["y"], ev["p"] = x[order], y[order], p[order]
    return ev, t0, sensor, int(n - keep.sum()), wraps, resorted


def random_records(rng, chip: str, n: int, *, special: float, backward: float, t_start: int):
    """``n`` (address, timestamp) records: valid events, special/APS/IMU records (random other
    bits, out-of-range coordinates allowed), 32-bit timestamps that wrap, some going backwards."""
    w, h = SIZES[chip]
    rx = rng.integers(0, w, n)
    ry = rng.integers(0, h, n)
    on = rng.integers(0, 2, n)
    if chip == "dvs128":
        addr = (ry << 8) | (rx << 1) | (1 - on) | (rng.integers(0, 1 << 15, n) << 16)  # bits 16-30 ignored
        marks = rng.choice(np.array([0x8000, 0x80000000, 0x80008000]), n)
    else:
        addr = (ry << 22) | (rx << 12) | (on << 11) | rng.integers(0, 1 << 10, n)  # bits 0-9 ignored
        marks = rng.choice(np.array([0x400, 0x80000000, 0x80000400]), n)
    sp = rng.random(n) < special
    addr = np.where(sp, addr | marks | rng.integers(0, 1 << 32, n), addr) & 0xFFFFFFFF
    steps = rng.integers(0, 1 << 24, n)  # < 2**31: wraps come from the 32-bit modulo only
    back = rng.random(n) < backward
    steps[back] = -rng.integers(1, 50, int(back.sum()))
    ts = (t_start + np.cumsum(steps)) % 2**32
    return [(int(a), int(t)) for a, t in zip(addr, ts, strict=True)]


def _check_against_reference(path: Path, data: bytes, version: str, chip: str, orientation: str):
    start = read_hash_header(data, path)[1]
    ref = reference_decode(data, start, version, chip, orientation)
    if isinstance(ref[0], str):
        with pytest.raises(FormatError, match="expected x <") as ei:
            aedat2.read(path, chip=chip, orientation=orientation)
        assert ei.value.offset == ref[1]
        return None
    ev, t0, sensor, dropped, wraps, resorted = ref
    rec = aedat2.read(path, chip=chip, orientation=orientation)
    assert rec.events.dtype == ev.dtype
    for f in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(rec.events[f], ev[f], err_msg=f)
    assert rec.t0_abs == t0
    assert rec.sensor_size == sensor
    assert rec.metadata["dropped_special"] == dropped
    assert rec.metadata["timestamp_wraps"] == wraps
    assert rec.metadata["resorted"] is resorted
    assert rec.metadata["version"] == version
    return rec


@pytest.mark.parametrize("orientation", ["raw", "jaer", "image", "spikingjelly"])
@pytest.mark.parametrize("chip", ["dvs128", "davis240", "davis346"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decoder_matches_numpy_reference(tmp_path, chip, orientation, seed):
    rng = np.random.default_rng([seed, len(chip), len(orientation)])
    n = int(rng.integers(1000, 3000))
    recs = random_records(
        rng,
        chip,
        n,
        special=[0.0, 0.1, 0.7][seed],  # seed 2: most records dropped
        backward=[0.0, 0.0, 0.02][seed],  # seed 2: small backward jumps (stable re-sort)
        t_start=[2**32 - 2_000_000, 12345, 2**31][seed],
    )
    data = header(
        {"dvs128": DVS128_CLASS, "davis240": DAVIS240_CLASS, "davis346": DAVIS346_CLASS}[chip]
    ) + body(recs)
    rec = _check_against_reference(put_bytes(tmp_path, data), data, "2.0", chip, orientation)
    assert rec is not None
    assert rec.metadata["timestamp_wraps"] > 0  # ~8e6 us per record on average: several wraps
    if seed == 2:
        assert rec.metadata["resorted"] is True
    if seed == 0:
        assert rec.metadata["dropped_special"] == 0


def _plain_records(rng, chip: str, n: int) -> list[tuple[int, int]]:
    """Records the straight decoding loop finishes: no special record, no wrap, no backward step."""
    recs = random_records(rng, chip, n, special=0.0, backward=0.0, t_start=1000)
    t = np.cumsum(rng.integers(0, 50, n)) + 1000  # small steps, repeats included: never wraps
    return [(a, int(ti)) for (a, _), ti in zip(recs, t, strict=True)]


@pytest.mark.parametrize("orientation", ["raw", "jaer", "image", "spikingjelly"])
@pytest.mark.parametrize(
    ("chip", "late"),
    [
        (chip, late)
        for chip in ("dvs128", "davis240", "davis346")
        for late in (None, "special", "wrap", "backward", "bad_xy")
        if not (chip == "dvs128" and late == "bad_xy")  # DVS128 addresses hold only 0..127
    ],
)
def test_straight_loop_and_late_fallback_match_reference(tmp_path, chip, orientation, late):
    """The straight loop decodes a plain file alone; a file that breaks its conditions only
    at the last record is decoded again by the general loop, with the same result as the
    numpy reference."""
    rng = np.random.default_rng([len(chip), len(orientation), len(late or "")])
    recs = _plain_records(rng, chip, 3000)
    w, h = SIZES[chip]
    a_last, t_last = recs[-1]
    if late == "special":
        recs[-1] = (a_last | (0x80000000 if chip == "dvs128" else 0x400), t_last)
    elif late == "wrap":
        recs.append((recs[0][0], (t_last + 2**31 + 5) % 2**32))  # forward gap over 2**31: no wrap
        recs.append((recs[1][0], 7))  # drop of more than 2**31: one wrap
    elif late == "backward":
        recs[-1] = (a_last, t_last - 100)
    elif late == "bad_xy":
        recs[-1] = (davis_addr(w, 0, 1), t_last)
    data = header(
        {"dvs128": DVS128_CLASS, "davis240": DAVIS240_CLASS, "davis346": DAVIS346_CLASS}[chip]
    ) + body(recs)
    rec = _check_against_reference(put_bytes(tmp_path, data), data, "2.0", chip, orientation)
    if late is None:
        assert rec.metadata["dropped_special"] == 0 and rec.metadata["resorted"] is False
        assert len(rec) == 3000
    elif late == "bad_xy":
        assert rec is None


@pytest.mark.parametrize("orientation", ["raw", "jaer", "image", "spikingjelly"])
def test_decoder_matches_numpy_reference_aedat1(tmp_path, orientation):
    rng = np.random.default_rng(11)
    recs = random_records(rng, "dvs128", 2000, special=0.2, backward=0.01, t_start=2**32 - 10**6)
    raw = b"".join(struct.pack(">HI", a & 0xFFFF, t) for a, t in recs)  # 16-bit addresses: bit 15 drops
    data = b"#!AER-DAT1.0\r\n# x\r\n" + raw
    rec = _check_against_reference(put_bytes(tmp_path, data, "f.dat"), data, "1.0", "dvs128", orientation)
    assert rec is not None and rec.metadata["dropped_special"] > 0


@pytest.mark.parametrize("chip", ["davis240", "davis346"])
def test_decoder_bad_coordinate_matches_reference(tmp_path, chip):
    rng = np.random.default_rng(5)
    w, h = SIZES[chip]
    recs = random_records(rng, chip, 1000, special=0.3, backward=0.0, t_start=0)
    recs[700] = (davis_addr(int(rng.integers(w, 1024)), 3, 1), recs[700][1])  # x outside the chip
    recs[900] = (davis_addr(2, int(rng.integers(h, 512)), 0), recs[900][1])  # y outside, later
    data = header() + body(recs)
    assert _check_against_reference(put_bytes(tmp_path, data), data, "2.0", chip, "image") is None


def test_decoder_only_special_records(tmp_path):
    data = header() + body([(0x80000000, 5), (0x8000 | dvs_addr(1, 1, 1), 2**32 - 1), (0x80008000, 3)])
    rec = _check_against_reference(put_bytes(tmp_path, data), data, "2.0", "dvs128", "raw")
    assert len(rec) == 0 and rec.t0_abs == 0 and rec.metadata["timestamp_wraps"] == 1


def test_decoder_kernel_releases_the_gil():
    assert aedat2._decode_body.targetoptions["nogil"] is True
