"""AEDAT 3.1 reader and writer, checked against hand-built packets, hand-computed values and tonic."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_NMNIST_TONIC, event_lists, fuzz_path, fuzz_settings, put_bytes, require_real
from hypothesis import given, settings
from hypothesis import strategies as st

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import Recording, make_events
from tmkt_data.formats import aedat31

HEADER = (
    b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
    b"#Start-Time: 2017-01-01 00:00:00 (TZ+0100)\r\n#!END-HEADER\r\n"
)


def pol(x: int, y: int, on: int, valid: int = 1) -> int:
    return (x << 17) | (y << 2) | (on << 1) | valid


def packet(
    events, *, etype=1, source=1, size=8, tsoff=4, overflow=0, capacity=None, number=None, valid=None
) -> bytes:
    """A packet from (data, ts) pairs (polarity) or from raw bytes (other types)."""
    if isinstance(events, bytes):
        payload = events
        n = len(payload) // size
    else:
        payload = b"".join(struct.pack("<Ii", d, t) for d, t in events)
        n = len(events)
    cap = n if capacity is None else capacity
    num = n if number is None else number
    val = num if valid is None else valid
    return struct.pack("<hhiiiiii", etype, source, size, tsoff, overflow, cap, num, val) + payload


# IMU6 packet: 2 events of 36 bytes (zeros, so that tonic's misreading of it stays small and deterministic)
IMU6 = packet(bytes(72), etype=3, size=36, tsoff=32)
EDGE_FILE = (
    HEADER
    + packet([(pol(3, 5, 1), 100), (pol(127, 0, 0), 200), (pol(9, 9, 1, valid=0), 250)])
    + IMU6
    + packet([(pol(0, 127, 1), 5), (pol(64, 64, 0), 7)], overflow=1)
)


def test_sniff():
    assert aedat31.sniff(b"#!AER-DAT3.1\r\n#Format: RAW")
    assert not aedat31.sniff(b"#!AER-DAT2.0\r\n")
    assert not aedat31.sniff(b"#!AER-DAT4.0\r\n")
    assert not aedat31.sniff(b"")


def test_hand_example_skips_imu_drops_invalid_applies_overflow(tmp_path):
    rec = aedat31.read(put_bytes(tmp_path, EDGE_FILE))
    t_abs = [100, 200, 2**31 + 5, 2**31 + 7]
    assert event_lists(rec) == ([3, 127, 0, 64], [5, 0, 127, 64], [1, 0, 1, 0], [t - 100 for t in t_abs])
    assert rec.t0_abs == 100
    assert rec.sensor_size == (128, 128)
    assert rec.source_format == "aedat31"
    md = rec.metadata
    assert md["skipped_packets"] == {3: 1}
    assert md["dropped_invalid"] == 1
    assert md["packets"] == 3
    assert md["source"] == "DVS128"
    assert md["start_time"] == "2017-01-01 00:00:00 (TZ+0100)"
    assert md["resorted"] is False


def test_only_event_number_events_decoded(tmp_path):
    # capacity 3, number 2: the third slot is unused even though it looks valid
    data = HEADER + packet([(pol(1, 1, 1), 10), (pol(2, 2, 1), 11), (pol(3, 3, 1), 12)], number=2)
    rec = aedat31.read(put_bytes(tmp_path, data))
    assert rec.events["x"].tolist() == [1, 2]


def test_out_of_order_packets_are_resorted(tmp_path):
    data = HEADER + packet([(pol(1, 1, 1), 50)]) + packet([(pol(2, 2, 0), 20)])
    rec = aedat31.read(put_bytes(tmp_path, data))
    assert rec.metadata["resorted"] is True
    assert event_lists(rec) == ([2, 1], [2, 1], [0, 1], [0, 30])


def test_sensor_size_from_source_xml_and_override(tmp_path):
    h346 = b"#!AER-DAT3.1\r\n#Source 1: DAVIS346B\r\n#!END-HEADER\r\n"
    ev = packet([(pol(345, 259, 1), 1)])
    assert aedat31.read(put_bytes(tmp_path, h346 + ev)).sensor_size == (346, 260)
    hxml = (
        b'#!AER-DAT3.1\r\n#Source 1: Foo\r\n#-Source 1: <attr key="sizeX" type="short">400</attr>'
        b'<attr key="sizeY" type="short">300</attr>\r\n#!END-HEADER\r\n'
    )
    ev = packet([(pol(399, 299, 1), 1)])
    assert aedat31.read(put_bytes(tmp_path, hxml + ev)).sensor_size == (400, 300)
    hnone = b"#!AER-DAT3.1\r\n#!END-HEADER\r\n"
    assert aedat31.read(put_bytes(tmp_path, hnone + packet([(pol(1, 1, 1), 1)]))).sensor_size == (128, 128)
    big = HEADER + packet([(pol(200, 150, 1), 1)])
    rec = aedat31.read(put_bytes(tmp_path, big), sensor_size=(256, 256))
    assert rec.sensor_size == (256, 256)
    assert event_lists(rec) == ([200], [150], [1], [0])


def test_event_outside_sensor_is_error_with_record_offset(tmp_path):
    first = packet([(pol(1, 1, 1), 1)])
    data = HEADER + first + packet([(pol(5, 5, 1), 2), (pol(128, 0, 1), 3)])
    with pytest.raises(FormatError) as ei:
        aedat31.read(put_bytes(tmp_path, data))
    assert ei.value.offset == len(HEADER) + len(first) + 28 + 8


def test_invalid_event_outside_sensor_is_ignored(tmp_path):
    data = HEADER + packet([(pol(5000, 5000, 1, valid=0), 2), (pol(1, 2, 0), 3)])
    assert event_lists(aedat31.read(put_bytes(tmp_path, data))) == ([1], [2], [0], [0])


# ---------------------------------------------------------------- bad input


def test_missing_end_header(tmp_path):
    with pytest.raises(FormatError, match="END-HEADER"):
        aedat31.read(put_bytes(tmp_path, b"#!AER-DAT3.1\r\n#Format: RAW\r\n" + packet([(pol(1, 1, 1), 1)])))


def test_not_aedat3(tmp_path):
    with pytest.raises(FormatError):
        aedat31.read(put_bytes(tmp_path, b"#!AER-DAT2.0\r\n#!END-HEADER\r\n"))


def test_empty_file(tmp_path):
    with pytest.raises(FormatError):
        aedat31.read(put_bytes(tmp_path, b""))


def test_header_only_gives_no_events(tmp_path):
    rec = aedat31.read(put_bytes(tmp_path, HEADER))
    assert len(rec) == 0
    assert rec.metadata["packets"] == 0


def test_truncated_body_names_packet_offset(tmp_path):
    first = packet([(pol(1, 1, 1), 1)])
    data = HEADER + first + packet([(pol(2, 2, 1), 2), (pol(3, 3, 1), 3)])
    with pytest.raises(FormatError) as ei:
        aedat31.read(put_bytes(tmp_path, data[:-3]))
    assert ei.value.offset == len(HEADER) + len(first)
    assert "bytes follow" in str(ei.value)


def test_truncated_packet_header(tmp_path):
    first = packet([(pol(1, 1, 1), 1)])
    with pytest.raises(FormatError) as ei:
        aedat31.read(put_bytes(tmp_path, HEADER + first + b"\x01\x00\x01"))
    assert ei.value.offset == len(HEADER) + len(first)


def test_absurd_capacity_fails_fast_without_allocating(tmp_path):
    data = HEADER + packet([(pol(1, 1, 1), 1)], capacity=2**30, number=1)
    p = put_bytes(tmp_path, data)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(FormatError) as ei:
            aedat31.read(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < 1 << 20
    assert ei.value.offset == len(HEADER)
    assert str(2**30) in str(ei.value)


@pytest.mark.parametrize(
    "kw",
    [
        {"size": -8},
        {"size": 0},
        {"size": 2**31 - 1},
        {"capacity": -1},
        {"number": 5},  # more than capacity 1
        {"valid": 2},  # more than number 1
        {"overflow": -1},
        {"etype": -1},
        {"size": 16},  # polarity events are 8 bytes
        {"tsoff": 0},
    ],
)
def test_corrupt_packet_header_fields(tmp_path, kw):
    data = HEADER + packet([(pol(1, 1, 1), 1)], **kw)
    with pytest.raises(FormatError) as ei:
        aedat31.read(put_bytes(tmp_path, data))
    assert ei.value.offset == len(HEADER)


def test_negative_timestamp(tmp_path):
    with pytest.raises(FormatError) as ei:
        aedat31.read(put_bytes(tmp_path, HEADER + packet([(pol(1, 1, 1), -5)])))
    assert ei.value.offset == len(HEADER) + 28


def test_garbage_after_header(tmp_path):
    with pytest.raises(FormatError):
        aedat31.read(put_bytes(tmp_path, HEADER + bytes(range(256)) * 3))


# ---------------------------------------------------------------- writer


def parse_packets(data: bytes):
    """Independent parse of a written file: header lines and (header fields, events) per packet."""
    end = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    lines = data[:end].split(b"\r\n")[:-1]
    pos, packets = end, []
    while pos < len(data):
        hdr = struct.unpack_from("<hhiiiiii", data, pos)
        n = hdr[5] * hdr[2]
        packets.append(
            (hdr, np.frombuffer(data, dtype=[("d", "<u4"), ("t", "<i4")], count=hdr[5], offset=pos + 28))
        )
        pos += 28 + n
    return lines, packets


def test_writer_layout_and_overflow(tmp_path):
    ev = make_events([0, 10, 60, 70, 80], [3, 127, 0, 5, 6], [5, 0, 127, 6, 7], [1, 0, 1, 0, 1])
    p = tmp_path / "w.aedat"
    aedat31.write(p, ev, (128, 128), packet_size=2, t0_abs=2**31 - 50)
    lines, packets = parse_packets(p.read_bytes())
    assert lines[:3] == [b"#!AER-DAT3.1", b"#Format: RAW", b"#Source 1: DVS128"]
    assert lines[3].startswith(b"#Start-Time: ")
    assert lines[-1] == b"#!END-HEADER"
    # t_abs = 2**31 - 50, 2**31 - 40 | 2**31 + 10, 2**31 + 20 | 2**31 + 30 (packet_size 2, split at overflow)
    assert [h[4] for h, _ in packets] == [0, 1, 1]
    assert [h[5] for h, _ in packets] == [2, 2, 1]
    for h, _ in packets:
        assert h[:4] == (1, 1, 8, 4)
        assert h[5] == h[6] == h[7]
    d = np.concatenate([e["d"] for _, e in packets])
    t = np.concatenate([e["t"] for _, e in packets])
    assert d.tolist() == [pol(3, 5, 1), pol(127, 0, 0), pol(0, 127, 1), pol(5, 6, 0), pol(6, 7, 1)]
    assert t.tolist() == [2**31 - 50, 2**31 - 40, 10, 20, 30]
    rec = aedat31.read(p)
    assert rec.t0_abs == 2**31 - 50
    np.testing.assert_array_equal(rec.events, ev)
    assert not list(tmp_path.glob(".*tmp"))


def test_writer_unusual_sensor_size_round_trips(tmp_path):
    ev = make_events([0, 1], [33, 0], [33, 0], [1, 0])
    p = tmp_path / "w.aedat"
    aedat31.write(p, ev, (34, 34))
    rec = aedat31.read(p)
    assert rec.sensor_size == (34, 34)
    np.testing.assert_array_equal(rec.events, ev)


def test_writer_rejects_out_of_sensor(tmp_path):
    with pytest.raises(EventsError):
        aedat31.write(tmp_path / "w.aedat", make_events([0], [128], [0], [1]), (128, 128))
    assert not (tmp_path / "w.aedat").exists()


@st.composite
def sensor_events(draw):
    w = draw(st.integers(1, 400))
    h = draw(st.integers(1, 400))
    n = draw(st.integers(0, 50))
    xs = draw(st.lists(st.integers(0, w - 1), min_size=n, max_size=n))
    ys = draw(st.lists(st.integers(0, h - 1), min_size=n, max_size=n))
    ps = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(0, 10**7), min_size=n, max_size=n))
    t0 = draw(st.sampled_from([0, 777, 2**31 - 3000, 5 * 2**31 + 1]))
    packet_size = draw(st.integers(1, 20))
    return (w, h), make_events(ts, xs, ys, ps), t0, packet_size


@fuzz_settings(80)
@given(sensor_events())
def test_round_trip(tmp_path, case):
    sensor, ev, t0, packet_size = case
    p = tmp_path / "rt.aedat"
    aedat31.write(p, ev, sensor, packet_size=packet_size, t0_abs=t0)
    rec = aedat31.read(p)
    assert rec.sensor_size == sensor
    first = int(ev["t"][0]) if ev.size else 0
    np.testing.assert_array_equal(rec.events["t"], ev["t"] - first)
    for f in ("x", "y", "p"):
        np.testing.assert_array_equal(rec.events[f], ev[f])
    if ev.size:
        assert rec.t0_abs == t0 + first


# ---------------------------------------------------------------- tonic


def _tonic_ibm(path: Path):
    """tonic's AEDAT 3.1 path: its header and raw-packet readers, decoded with read_dvs_ibm's bit masks."""
    import tonic.io as tio

    version, start, _ = tio.read_aedat_header_from_file(str(path))
    assert version == pytest.approx(3.1)
    raw = tio.get_aer_events_from_file(str(path), version, start)
    a = raw["address"]
    return (a >> 17) & 0x1FFF, (a >> 2) & 0x1FFF, (a >> 1) & 1, raw["timeStamp"]


def test_tonic_read_dvs_ibm_is_broken_in_1_7_0(tmp_path):
    import tonic.io as tio

    p = put_bytes(tmp_path, HEADER + packet([(pol(1, 2, 1), 3)]))
    # like read_dvs_128: unpacks two values from read_aedat_header_from_file, which returns three
    with pytest.raises(ValueError):
        tio.read_dvs_ibm(str(p))


def test_matches_tonic_on_plain_file(tmp_path):
    rng = np.random.default_rng(7)
    data = HEADER
    allx, ally, allp, allt = [], [], [], []
    t = 1000
    for k in (5, 17, 1, 40):  # packets of varying size, all valid, no overflow
        xs, ys, ps = rng.integers(0, 128, k), rng.integers(0, 128, k), rng.integers(0, 2, k)
        ts = t + np.cumsum(rng.integers(0, 50, k))
        t = int(ts[-1])
        data += packet(
            [(pol(int(a), int(b), int(c)), int(d)) for a, b, c, d in zip(xs, ys, ps, ts, strict=True)]
        )
        allx += xs.tolist()
        ally += ys.tolist()
        allp += ps.tolist()
        allt += ts.tolist()
    p = put_bytes(tmp_path, data)
    tx, ty, tp, tt = _tonic_ibm(p)
    rec = aedat31.read(p)
    np.testing.assert_array_equal(rec.events["x"], tx)
    np.testing.assert_array_equal(rec.events["y"], ty)
    np.testing.assert_array_equal(rec.events["p"], tp)
    np.testing.assert_array_equal(rec.events["t"] + rec.t0_abs, tt)
    # and both equal the hand-known values
    assert rec.events["x"].tolist() == allx
    assert (rec.events["t"] + rec.t0_abs).tolist() == allt


def test_tonic_ignores_overflow_and_valid_bit(tmp_path):
    data = (
        HEADER
        + packet([(pol(3, 5, 1), 100), (pol(9, 9, 1, valid=0), 150)])
        + packet([(pol(1, 1, 0), 5)], overflow=1)
    )
    p = put_bytes(tmp_path, data)
    tx, _, _, tt = _tonic_ibm(p)
    assert tx.tolist() == [3, 9, 1]  # the invalidated event is kept
    assert tt.tolist() == [100, 150, 5]  # no overflow: time goes backwards
    rec = aedat31.read(p)
    assert rec.events["x"].tolist() == [3, 1]
    assert (rec.events["t"] + rec.t0_abs).tolist() == [100, 2**31 + 5]


def test_tonic_misreads_non_polarity_packet(tmp_path):
    # tonic reads eventCapacity 8-byte records whatever the packet type: of the 72-byte IMU6 body it
    # takes 16 bytes as two polarity events, then parses the rest as (empty) packet headers until it
    # happens to land on the next real header; the invalid event is kept and the overflow ignored.
    # Our reader skips eventCapacity * eventSize bytes.
    p = put_bytes(tmp_path, EDGE_FILE)
    tx, ty, _, tt = _tonic_ibm(p)
    assert tx.tolist() == [3, 127, 9, 0, 0, 0, 64]
    assert ty.tolist() == [5, 0, 9, 0, 0, 127, 64]
    assert tt.tolist() == [100, 200, 250, 0, 0, 5, 7]
    assert len(aedat31.read(p)) == 4


# ---------------------------------------------------------------- real N-MNIST events re-encoded


def test_nmnist_round_trip(tmp_path):
    src = require_real(REAL_NMNIST_TONIC)
    import tonic.io as tio

    dt = np.dtype([("x", int), ("y", int), ("p", int), ("t", int)])
    nm = tio.read_mnist_file(str(src), dtype=dt)
    assert len(nm) == 4325
    ev = make_events(nm["t"], nm["x"], nm["y"], nm["p"])
    for sensor in ((34, 34), (128, 128)):
        p = tmp_path / "nmnist.aedat"
        aedat31.write(p, ev, sensor, packet_size=1000)
        rec = aedat31.read(p)
        assert rec.sensor_size == sensor
        assert len(rec) == 4325
        assert rec.t0_abs == int(ev["t"][0])
        np.testing.assert_array_equal(rec.events["t"], ev["t"] - ev["t"][0])
        for f in ("x", "y", "p"):
            np.testing.assert_array_equal(rec.events[f], ev[f])
    # tonic reads our DVS128-sized file identically
    tx, ty, tp, tt = _tonic_ibm(p)
    np.testing.assert_array_equal(tx, ev["x"])
    np.testing.assert_array_equal(ty, ev["y"])
    np.testing.assert_array_equal(tp, ev["p"])
    np.testing.assert_array_equal(tt, ev["t"])


# ---------------------------------------------------------------- fuzz


def _read_or_format_error(data: bytes) -> None:
    p = fuzz_path("aedat31.aedat")
    p.write_bytes(data)
    t0 = time.perf_counter()
    try:
        rec = aedat31.read(p)
    except FormatError:
        pass
    else:
        assert isinstance(rec, Recording)
        assert rec.events.dtype.names == ("t", "x", "y", "p")
    assert time.perf_counter() - t0 < 1.0


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    _read_or_format_error(data)
    _read_or_format_error(HEADER + data)


@settings(max_examples=250, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "truncate", "insert", "delete"]),
            st.integers(0, len(EDGE_FILE)),
            st.binary(min_size=1, max_size=9),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_mutated_valid_file(mutations):
    data = bytearray(EDGE_FILE)
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
    _read_or_format_error(bytes(data))
