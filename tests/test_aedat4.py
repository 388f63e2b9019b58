"""AEDAT 4.0 reader (aedat + Python pre-validation) and hand-made flatbuffer writer."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_AEDAT4, check_read_outcome, fuzz_settings, needs_real
from hypothesis import given
from hypothesis import strategies as st

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import EVENT_DTYPE
from tmkt_data.formats import aedat4, read_events

SAMPLE = REAL_AEDAT4
needs_sample = needs_real(SAMPLE)
FUZZ = fuzz_settings(60)


def dv_xml(streams: dict[int, tuple[str, int, int]]) -> str:
    nodes = []
    for sid, (ident, w, h) in streams.items():
        info = (
            f'<node name="info"><attr key="sizeX" type="int">{w}</attr>'
            f'<attr key="sizeY" type="int">{h}</attr></node>'
        )
        nodes.append(
            f'<node name="{sid}"><attr key="compression" type="string">NONE</attr>'
            f'<attr key="typeIdentifier" type="string">{ident}</attr>{info}</node>'
        )
    return f'<dv version="2.0"><node name="outInfo">{"".join(nodes)}</node></dv>'


def build(xml: str, packets: list[tuple[int, bytes]], compression: int = 0) -> bytes:
    hdr = aedat4.ioheader_flatbuffer(compression, xml)
    out = [aedat4.MAGIC, struct.pack("<I", len(hdr)), hdr]
    for sid, body in packets:
        out += [struct.pack("<II", sid, len(body)), body]
    return b"".join(out)


def packet(t, x, y, on) -> bytes:
    return aedat4.event_packet_flatbuffer(np.asarray(t), np.asarray(x), np.asarray(y), np.asarray(on))


@needs_sample
def test_real_sample_matches_tonic_and_aedat() -> None:
    import tonic.io

    rec = read_events(SAMPLE)
    assert rec.source_format == "aedat4"
    assert len(rec) == 111_954 and rec.sensor_size == (320, 240)
    assert rec.metadata["streams"] == {0: "events", 2: "imus", 3: "triggers"}
    assert rec.metadata["stream"] == 0 and rec.metadata["compression"] == "lz4"
    assert rec.metadata["source"] == "DVXplorer_DXB00010"
    assert rec.metadata["sha256"].startswith("b42f119af2548d43")
    assert 0.58 < rec.duration_us / 1e6 < 0.60
    assert rec.t0_abs > 1_600_000_000_000_000  # absolute us since the epoch, kept exact as int64
    ref = tonic.io.read_aedat4(str(SAMPLE))
    np.testing.assert_array_equal(rec.events["t"] + rec.t0_abs, ref["t"].astype(np.int64))
    np.testing.assert_array_equal(rec.events["x"], ref["x"])
    np.testing.assert_array_equal(rec.events["y"], ref["y"])
    np.testing.assert_array_equal(rec.events["p"], ref["on"].astype(np.uint8))


@needs_sample
def test_stream_option() -> None:
    assert len(aedat4.read(SAMPLE, stream=0)) == 111_954
    with pytest.raises(FormatError, match="stream 2 is imus, expected an event"):
        aedat4.read(SAMPLE, stream=2)
    with pytest.raises(FormatError, match="stream 7 is absent"):
        aedat4.read(SAMPLE, stream=7)


@needs_sample
@pytest.mark.parametrize("compression", ["lz4", "none"])
def test_writer_round_trip_real_events(tmp_path: Path, compression: str) -> None:
    import aedat
    import tonic.io

    rec = aedat4.read(SAMPLE)
    out = tmp_path / "copy.aedat4"
    aedat4.write(out, rec.events, rec.sensor_size, t0_abs=rec.t0_abs, compression=compression)
    decoder = aedat.Decoder(str(out))
    assert decoder.id_to_stream() == {0: {"type": "events", "width": 320, "height": 240}}
    got = np.concatenate([p["events"] for p in decoder if "events" in p])
    ref = tonic.io.read_aedat4(str(SAMPLE))
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(tonic.io.read_aedat4(str(out)), ref)
    back = aedat4.read(out)
    assert back.t0_abs == rec.t0_abs and back.sensor_size == (320, 240)
    assert back.metadata["compression"] == compression and back.metadata["file_data_position"] == -1
    np.testing.assert_array_equal(back.events, rec.events)


@fuzz_settings(30)
@given(
    n=st.integers(0, 300),
    seed=st.integers(0, 2**32 - 1),
    t0=st.integers(0, 2**60),
    compression=st.sampled_from(["lz4", "none"]),
    per_packet=st.integers(1, 200),
)
def test_writer_round_trip_random(tmp_path: Path, n, seed, t0, compression, per_packet) -> None:
    import aedat

    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 10**7, n))
    ev["x"] = rng.integers(0, 640, n)
    ev["y"] = rng.integers(0, 480, n)
    ev["p"] = rng.integers(0, 2, n)
    out = tmp_path / "r.aedat4"
    aedat4.write(out, ev, (640, 480), t0_abs=t0, compression=compression, packet_events=per_packet)
    got = [p["events"] for p in aedat.Decoder(str(out)) if "events" in p]
    assert len(got) == -(-n // per_packet)
    if n:
        cat = np.concatenate(got)
        np.testing.assert_array_equal(cat["t"].astype(np.int64), ev["t"] + t0)
        np.testing.assert_array_equal(cat["x"], ev["x"])
        np.testing.assert_array_equal(cat["on"], ev["p"].astype(bool))
    back = aedat4.read(out)
    assert len(back) == n and back.sensor_size == (640, 480)
    if n:
        assert back.t0_abs == int(ev["t"][0]) + t0
        np.testing.assert_array_equal(back.events["t"], ev["t"] - ev["t"][0])
        np.testing.assert_array_equal(back.events[["x", "y", "p"]], ev[["x", "y", "p"]])


def test_xxh32_and_lz4_frame_header() -> None:
    assert aedat4._xxh32(b"") == 0x02CC5D05
    assert aedat4._xxh32(b"abc") == 0x32D153FF
    assert aedat4._xxh32(b"Nobody inspects the spammish repetition") == 0xE2293B2F
    # header checksum byte of the real DV frames (FLG 0x40, BD 0x40) is 0xC0
    assert (aedat4._xxh32(bytes([0x40, 0x40])) >> 8) & 0xFF == 0xC0
    frame = aedat4.lz4_frame_stored(b"x" * 70000)
    assert frame[:4] == b"\x04\x22\x4d\x18" and frame.endswith(b"\x00\x00\x00\x00")
    assert struct.unpack_from("<I", frame, 7)[0] == 0x80000000 | 65536


def test_writer_validation(tmp_path: Path) -> None:
    ev = np.zeros(1, dtype=EVENT_DTYPE)
    ev["x"] = 50
    with pytest.raises(EventsError, match="outside the sensor"):
        aedat4.write(tmp_path / "a.aedat4", ev, (10, 10))
    with pytest.raises(EventsError, match="compression 'zstd'"):
        aedat4.write(tmp_path / "a.aedat4", ev, (64, 64), compression="zstd")
    assert list(tmp_path.iterdir()) == []
    aedat4.write(tmp_path / "empty.aedat4", ev[:0], (64, 48))
    empty = aedat4.read(tmp_path / "empty.aedat4")
    assert len(empty) == 0 and empty.sensor_size == (64, 48)


def test_wrong_magic_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "x.aedat4"
    path.write_bytes(b"#!AER-DAT2.0\r\n" + b"\x00" * 40)
    with pytest.raises(FormatError, match=r"x\.aedat4 at byte 0: expected magic"):
        aedat4.read(path)
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        aedat4.read(path)
    path.write_bytes(aedat4.MAGIC + b"\x01")
    with pytest.raises(FormatError, match="inside the IOHeader length"):
        aedat4.read(path)


def test_giant_header_length_is_refused_before_aedat(tmp_path: Path) -> None:
    path = tmp_path / "big.aedat4"
    path.write_bytes(aedat4.MAGIC + struct.pack("<I", 0xFFFFFFFF) + b"abcdefgh")
    with pytest.raises(FormatError, match="IOHeader length 4294967295 exceeds the 8 bytes") as err:
        aedat4.read(path)
    assert err.value.offset == 14


def test_giant_packet_size_is_refused(tmp_path: Path) -> None:
    data = build(dv_xml({0: ("EVTS", 10, 10)}), [(0, packet([1], [1], [1], [True]))])
    pos = len(data) - len(packet([1], [1], [1], [True])) - 8
    bad = bytearray(data)
    struct.pack_into("<I", bad, pos + 4, 0xFFFFFFF0)
    path = tmp_path / "p.aedat4"
    path.write_bytes(bytes(bad))
    with pytest.raises(FormatError, match="declares 4294967280 bytes") as err:
        aedat4.read(path)
    assert err.value.offset == pos


def test_invalid_utf8_description_is_refused(tmp_path: Path) -> None:
    # aedat 2.3 aborts the whole process on this input; the Python check must catch it first
    xml = dv_xml({0: ("EVTS", 10, 10)}).replace("2.0", "2.\xe9")
    hdr = bytearray(aedat4.ioheader_flatbuffer(0, xml))
    hdr[hdr.index("é".encode())] = 0xE9  # lone latin-1 byte: invalid UTF-8
    path = tmp_path / "u.aedat4"
    path.write_bytes(aedat4.MAGIC + struct.pack("<I", len(hdr)) + bytes(hdr))
    with pytest.raises(FormatError, match="not valid UTF-8"):
        aedat4.read(path)


def test_ioheader_offsets_out_of_bounds(tmp_path: Path) -> None:
    hdr = bytearray(aedat4.ioheader_flatbuffer(0, dv_xml({0: ("EVTS", 10, 10)})))
    struct.pack_into("<I", hdr, 0, 10_000)  # root table far outside the flatbuffer
    path = tmp_path / "o.aedat4"
    path.write_bytes(aedat4.MAGIC + struct.pack("<I", len(hdr)) + bytes(hdr))
    with pytest.raises(FormatError, match="IOHeader flatbuffer: table"):
        aedat4.read(path)


def test_no_event_stream_and_event_outside_sensor(tmp_path: Path) -> None:
    path = tmp_path / "n.aedat4"
    path.write_bytes(build(dv_xml({1: ("IMUS", 0, 0)}), []))
    with pytest.raises(FormatError, match="no event \\(EVTS\\) stream"):
        aedat4.read(path)
    path.write_bytes(build(dv_xml({0: ("EVTS", 5, 5)}), [(0, packet([1, 2], [1, 9], [1, 1], [True, False]))]))
    with pytest.raises(FormatError, match="outside the declared sensor of width 5"):
        aedat4.read(path)


def test_truncated_and_short_packets(tmp_path: Path) -> None:
    path = tmp_path / "t.aedat4"
    whole = build(dv_xml({0: ("EVTS", 10, 10)}), [(0, packet([1, 2], [1, 2], [3, 4], [True, False]))])
    path.write_bytes(whole[:-5])
    with pytest.raises(FormatError, match="truncated"):
        aedat4.read(path)
    path.write_bytes(whole + b"\x00\x00\x00")
    with pytest.raises(FormatError, match="packet header truncated"):
        aedat4.read(path)
    path.write_bytes(build(dv_xml({0: ("EVTS", 10, 10)}), [(0, b"EVTS")]))
    with pytest.raises(FormatError, match="at least 12 bytes"):
        aedat4.read(path)


def test_aedat_panic_becomes_format_error(tmp_path: Path) -> None:
    # an LZ4 packet that inflates to 8 bytes makes aedat's flatbuffers code panic
    # (pyo3_runtime.PanicException, a BaseException); it must surface as FormatError
    path = tmp_path / "panic.aedat4"
    path.write_bytes(
        build(dv_xml({0: ("EVTS", 10, 10)}), [(0, aedat4.lz4_frame_stored(b"\x04\x00\x00\x00EVTS"))], 1)
    )
    with pytest.raises(FormatError, match="aedat could not decode the file \\(PanicException"):
        aedat4.read(path)


def test_corrupt_lz4_becomes_format_error(tmp_path: Path) -> None:
    path = tmp_path / "lz.aedat4"
    path.write_bytes(build(dv_xml({0: ("EVTS", 10, 10)}), [(0, b"\x04\x22\x4d\x18zzzzzzzz")], 1))
    with pytest.raises(FormatError, match="aedat could not decode the file \\(RuntimeError: LZ4"):
        aedat4.read(path)


def test_sniff() -> None:
    assert aedat4.sniff(b"#!AER-DAT4.0\r\n\x00\x00")
    assert not aedat4.sniff(b"#!AER-DAT3.1\r\n")


@FUZZ
@given(data=st.binary(max_size=300), with_magic=st.booleans())
def test_fuzz_random_bytes(tmp_path: Path, data: bytes, with_magic: bool) -> None:
    path = tmp_path / "r.aedat4"
    path.write_bytes((aedat4.MAGIC if with_magic else b"") + data)
    check_read_outcome(path, "aedat4")


@needs_sample
@fuzz_settings(80)
@given(
    op=st.sampled_from(["flip", "set", "truncate", "insert", "high"]),
    pos=st.integers(0, 4095),
    val=st.binary(min_size=1, max_size=8),
    cut=st.integers(0, 949_252),
)
def test_fuzz_mutated_real_file(tmp_path: Path, op: str, pos: int, val: bytes, cut: int) -> None:
    data = bytearray(SAMPLE.read_bytes())
    if op == "flip":
        data[pos] ^= val[0] or 1
    elif op == "set":
        data[pos : pos + len(val)] = val
    elif op == "high":  # non-ASCII bytes in the XML description
        data[pos] = 0x80 | val[0]
    elif op == "truncate":
        del data[cut:]
    else:
        data[pos:pos] = val
    path = tmp_path / "m.aedat4"
    path.write_bytes(bytes(data))
    check_read_outcome(path, "aedat4")
