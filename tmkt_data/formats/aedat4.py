"""AEDAT 4.0 files (iniVation DV; flatbuffers, optionally LZ4/zstd-compressed packets).

Layout (see ``docs/formats.md`` §2.3):

* magic ``#!AER-DAT4.0\\r\\n`` (14 bytes), then a ``uint32`` LE length and an
  IOHeader flatbuffer (identifier ``IOHE``): ``compression`` (int32: 0 none,
  1 LZ4, 2 LZ4 high, 3 zstd, 4 zstd high), ``file_data_position`` (int64, -1
  when there is no file data table), ``description`` (DV XML naming one
  ``<node>`` per stream id under ``outInfo``, with ``typeIdentifier`` ``EVTS``,
  ``FRME``, ``IMUS`` or ``TRIG`` and, for events, ``info/sizeX``, ``info/sizeY``).
* packets: ``int32`` stream id, ``int32`` byte size, then the (compressed)
  body: a size-prefixed flatbuffer ``EVTS`` ``EventPacket { elements: [Event] }``,
  ``struct Event { t: int64; x: int16; y: int16; on: bool }`` (16 bytes), ``t``
  in absolute microseconds since the Unix epoch.

Decoding is done by the ``aedat`` package (Rust). It is not robust on its own
against corrupt input, so :func:`read` validates in Python first, before aedat
sees the file:

* the magic (a wrong file gives "expected magic ..." rather than aedat's text);
* the IOHeader length against the file size (aedat allocates the declared
  length before reading it, up to 4 GiB);
* the IOHeader flatbuffer: every offset in bounds, a known compression code, and
  the description strictly UTF-8 (aedat 2.3 reads it unchecked; invalid UTF-8
  in the XML makes it abort the whole process with "panic in a destructor
  during cleanup", uncatchable from Python);
* the chain of packet headers: each declared size must fit in the file, and
  the chain must end exactly at the end of file or at ``file_data_position``
  (aedat allocates each declared size before reading it); with compression
  0, a packet under 12 bytes (too short for a size-prefixed flatbuffer) is
  refused too.

aedat 2.3 runs the flatbuffers verifier on each (decompressed) packet, so
packet contents need no Python check. Errors from aedat (``RuntimeError``,
and ``pyo3_runtime.PanicException``, a :class:`BaseException` subclass raised
when its Rust code panics, e.g. on a packet body shorter than 12 bytes) are
re-raised as :class:`FormatError` with aedat's message.
Not guarded: a compressed packet that inflates enormously (LZ4 is bounded by
about 255x its packed size; zstd frames can inflate much more).

Writing needs no flatbuffers or LZ4 library: :func:`write` lays out the
flatbuffers by hand, and ``compression="lz4"`` writes valid LZ4 frames made
of stored (uncompressed) blocks, so the file is LZ4-typed but not smaller.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import Recording, events_to_write, recording_from_absolute
from tmkt_data.formats import FORMATS
from tmkt_data.formats._io import atomic_write_bytes, check_file

NAME = "aedat4"
EXTENSIONS = (".aedat4",)

MAGIC = b"#!AER-DAT4.0\r\n"
_HEADER_START = len(MAGIC) + 4
COMPRESSION_NAMES = {0: "none", 1: "lz4", 2: "lz4_high", 3: "zstd", 4: "zstd_high"}
_XML_COMPRESSION = {0: "NONE", 1: "LZ4", 2: "LZ4_HIGH", 3: "ZSTD", 4: "ZSTD_HIGH"}
#: On-disk event struct of an ``EVTS`` packet (16 bytes, 3 padding).
EVENT_STRUCT = np.dtype(
    {"names": ["t", "x", "y", "on"], "formats": ["<i8", "<i2", "<i2", "u1"], "itemsize": 16}
)
_EVENT_SIZE = EVENT_STRUCT.itemsize
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def sniff(head: bytes) -> bool:
    """True when ``head`` starts with the AEDAT 4.0 magic line."""
    return head.startswith(b"#!AER-DAT4.0")


# --------------------------------------------------------------------------- validation


class _FlatView:
    """Bounds-checked reads in one flatbuffer (``buf``) that raise :class:`FormatError`."""

    def __init__(self, buf: bytes, path: str | os.PathLike[str], base: int, what: str):
        self.buf = buf
        self.path = path
        self.base = base  # file offset of buf[0], for error messages
        self.what = what

    def fail(self, msg: str, at: int) -> FormatError:
        return FormatError(self.path, f"{self.what}: {msg}", offset=self.base + at)

    def unpack(self, fmt: str, at: int, field: str) -> int:
        size = struct.calcsize(fmt)
        if at < 0 or at + size > len(self.buf):
            raise self.fail(f"{field} at {at} lies outside the {len(self.buf)}-byte flatbuffer", max(at, 0))
        return struct.unpack_from(fmt, self.buf, at)[0]

    def table(self, at: int) -> tuple[int, int, int]:
        """(table position, vtable position, vtable size) of the table at ``at``, all checked."""
        soff = self.unpack("<i", at, "table")
        vt = at - soff
        vt_size = self.unpack("<H", vt, "vtable size")
        tbl_size = self.unpack("<H", vt + 2, "vtable table size")
        if vt_size < 4 or vt_size % 2 or vt + vt_size > len(self.buf):
            raise self.fail(f"vtable of {vt_size} bytes at {vt} is malformed", vt)
        if tbl_size < 4 or at + tbl_size > len(self.buf):
            raise self.fail(f"table of {tbl_size} bytes at {at} runs past the flatbuffer", at)
        return at, vt, vt_size

    def field(self, tbl: tuple[int, int, int], index: int, size: int) -> int | None:
        """Absolute position of field ``index`` (``size`` bytes) or None when absent."""
        at, vt, vt_size = tbl
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        off = self.unpack("<H", vt + slot, "vtable slot")
        if off == 0:
            return None
        tbl_size = self.unpack("<H", vt + 2, "vtable table size")
        if off < 4 or off + size > tbl_size:
            raise self.fail(f"field {index} at table offset {off} lies outside its {tbl_size}-byte table", at)
        return at + off

    def follow(self, pos: int, field: str) -> int:
        """Target of the uoffset stored at ``pos``."""
        return pos + self.unpack("<I", pos, field)


def _parse_ioheader(buf: bytes, path: str | os.PathLike[str]) -> dict[str, Any]:
    fv = _FlatView(buf, path, _HEADER_START, "IOHeader flatbuffer")
    if len(buf) < 8:
        raise fv.fail(f"{len(buf)} bytes is too short, expected a flatbuffer of at least 8 bytes", 0)
    tbl = fv.table(fv.follow(0, "root offset"))
    pos = fv.field(tbl, 0, 4)
    compression = 0 if pos is None else fv.unpack("<i", pos, "compression")
    if compression not in COMPRESSION_NAMES:
        raise fv.fail(f"compression code {compression} is unknown, expected 0 to 4", tbl[0])
    pos = fv.field(tbl, 1, 8)
    fdp = -1 if pos is None else fv.unpack("<q", pos, "file_data_position")
    pos = fv.field(tbl, 2, 4)
    if pos is None:
        raise fv.fail("no description (stream XML)", tbl[0])
    s = fv.follow(pos, "description offset")
    n = fv.unpack("<I", s, "description length")
    if s + 4 + n > len(buf):
        raise fv.fail(f"description of {n} bytes at {s} runs past the {len(buf)}-byte flatbuffer", s)
    raw = bytes(buf[s + 4 : s + 4 + n])
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as err:
        raise fv.fail(
            f"description is not valid UTF-8 ({err.reason}), expected DV XML", s + 4 + err.start
        ) from None
    if "\x00" in text:
        raise fv.fail("description contains a NUL character, expected DV XML", s + 4 + text.index("\x00"))
    return {
        "compression": compression,
        "file_data_position": fdp,
        "description": text,
        "identifier": bytes(buf[4:8]).decode("latin-1"),
    }


def _streams_from_xml(text: str) -> dict[int, dict[str, Any]]:
    """Best-effort stream facts from the DV XML (aedat parses it authoritatively)."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return {}
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for info in root.iter("node"):
        if info.get("name") != "outInfo":
            continue
        for node in info.findall("node"):
            try:
                sid = int(node.get("name", ""))
            except ValueError:
                continue
            facts: dict[str, Any] = {}
            for attr in node.findall("attr"):
                facts[attr.get("key", "")] = attr.text
            sub = node.find("node[@name='info']")
            if sub is not None:
                for attr in sub.findall("attr"):
                    facts[attr.get("key", "")] = attr.text
            out[sid] = facts
        break
    return out


def _walk_packets(fh, size: int, path: str | os.PathLike[str], start: int, header: dict[str, Any]) -> list:
    """Check the packet chain by reading each 8-byte packet header; returns [(offset, stream_id, size)]."""
    fdp = header["file_data_position"]
    packets = []
    pos = start
    while True:
        if fdp > -1 and pos == fdp:
            break
        if pos == size:
            if fdp != -1:
                raise FormatError(
                    path,
                    f"reached the end of file without meeting the file data table at byte {fdp} "
                    "that the IOHeader declares",
                    offset=pos,
                )
            break
        fh.seek(pos)
        raw = fh.read(8)
        if len(raw) < 8:
            raise FormatError(
                path,
                f"packet header truncated: {len(raw)} bytes left, expected 8 (stream id, size)",
                offset=pos,
            )
        sid, n = struct.unpack("<II", raw)
        if n > size - pos - 8:
            raise FormatError(
                path,
                f"packet of stream {sid} declares {n} bytes, only {size - pos - 8} remain (truncated file?)",
                offset=pos,
            )
        if header["compression"] == 0 and n < 12:
            raise FormatError(
                path,
                f"uncompressed packet of stream {sid} has {n} bytes, expected a size-prefixed "
                "flatbuffer of at least 12 bytes",
                offset=pos,
            )
        packets.append((pos, sid, n))
        pos += 8 + n
    return packets


# --------------------------------------------------------------------------- reading


def _decoder_error(path: str | os.PathLike[str], err: BaseException) -> FormatError:
    kind = type(err).__name__
    return FormatError(path, f"aedat could not decode the file ({kind}: {err})")


def _validate_file(p: os.PathLike[str], fsize: int) -> tuple[dict[str, Any], list, str]:
    """Check magic, IOHeader and packet chain before aedat sees the file; (header, packets, sha256)."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(_HEADER_START)
            if head[: len(MAGIC)] != MAGIC:
                raise FormatError(
                    p, f"expected magic {MAGIC!r} (AEDAT 4.0), found {head[: len(MAGIC)]!r}", offset=0
                )
            if len(head) < _HEADER_START:
                raise FormatError(p, "file ends inside the IOHeader length field", offset=len(MAGIC))
            (hlen,) = struct.unpack_from("<I", head, len(MAGIC))
            if hlen > fsize - _HEADER_START:
                raise FormatError(
                    p,
                    f"IOHeader length {hlen} exceeds the {fsize - _HEADER_START} bytes left in the file",
                    offset=len(MAGIC),
                )
            header = _parse_ioheader(fh.read(hlen), p)
            packets = _walk_packets(fh, fsize, p, _HEADER_START + hlen, header)
            fh.seek(0)
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as err:
        raise FormatError(p, f"cannot read file ({err.strerror or err})") from None
    return header, packets, digest


def _open_decoder(p: os.PathLike[str]) -> tuple[Any, dict[int, dict[str, Any]]]:
    """(aedat decoder, stream id -> stream facts); aedat failures become FormatError."""
    import aedat

    try:
        decoder = aedat.Decoder(str(p))
        streams = {int(k): dict(v) for k, v in decoder.id_to_stream().items()}
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:  # pyo3 PanicException derives from BaseException
        raise _decoder_error(p, err) from None
    return decoder, streams


def _choose_stream(p: os.PathLike[str], streams: dict[int, dict[str, Any]], stream: int | None) -> int:
    """The requested event stream id, or the lowest event stream id when ``stream`` is None."""
    event_ids = sorted(k for k, v in streams.items() if v.get("type") == "events")
    if stream is None:
        if not event_ids:
            kinds = ", ".join(f"{k}: {v.get('type')}" for k, v in sorted(streams.items())) or "none"
            raise FormatError(p, f"no event (EVTS) stream, expected one; streams are {kinds}")
        return event_ids[0]
    sid = int(stream)
    if sid not in event_ids:
        found = streams[sid].get("type") if sid in streams else "absent"
        raise FormatError(
            p, f"stream {sid} is {found}, expected an event (EVTS) stream; event streams: {event_ids}"
        )
    return sid


def _decode_events(p: os.PathLike[str], decoder: Any, sid: int) -> tuple[np.ndarray, ...]:
    """(t_abs int64, x, y, on) of stream ``sid``, all packets concatenated."""
    chunks = []
    try:
        for packet in decoder:
            if packet["stream_id"] == sid and "events" in packet:
                chunks.append(packet["events"])
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:  # a pyo3 PanicException, see _open_decoder
        raise _decoder_error(p, err) from None
    if not chunks:
        empty = np.zeros(0, np.uint16)
        return np.zeros(0, np.int64), empty, empty, np.zeros(0, bool)
    ev = np.concatenate(chunks)
    t_abs = ev["t"].astype(np.int64)  # uint64 -> int64 before anything else; never through float
    return t_abs, ev["x"], ev["y"], ev["on"]


def read(path: str | os.PathLike[str], *, stream: int | None = None) -> Recording:
    """Read the polarity events of one ``EVTS`` stream of an AEDAT 4.0 file.

    Args:
        path: the file.
        stream: stream id to read; ``None`` means the lowest id whose type is
            ``EVTS`` (chosen by type, never by a fixed id).

    Returns:
        A :class:`Recording` with ``sensor_size`` from the stream's ``sizeX`` /
        ``sizeY`` and ``t0_abs`` the first event's absolute time (us since the
        epoch). ``metadata``: ``stream``, ``streams`` (id -> type from aedat),
        ``compression``, ``file_data_position``, ``packets`` (of the chosen
        stream), ``source`` and ``ts_offset`` (from the XML, when present),
        ``sha256``.

    Raises:
        FormatError: wrong magic, malformed header or packet chain, no event
            stream, ``stream`` not an event stream, or any aedat failure.
    """
    p, fsize = check_file(path)
    header, packets, digest = _validate_file(p, fsize)
    xml_streams = _streams_from_xml(header["description"])
    decoder, streams = _open_decoder(p)
    sid = _choose_stream(p, streams, stream)
    width, height = int(streams[sid]["width"]), int(streams[sid]["height"])
    t_abs, x, y, on = _decode_events(p, decoder, sid)
    if x.size and (int(x.max()) >= width or int(y.max()) >= height):
        bad = (x >= width) | (y >= height)
        i = int(np.argmax(bad))
        raise FormatError(
            p,
            f"event {i} of stream {sid} at (x={int(x[i])}, y={int(y[i])}) is outside the declared "
            f"sensor of width {width} and height {height}",
        )
    facts = xml_streams.get(sid, {})
    meta: dict[str, Any] = {
        "stream": sid,
        "streams": {k: v.get("type") for k, v in sorted(streams.items())},
        "compression": COMPRESSION_NAMES[header["compression"]],
        "file_data_position": header["file_data_position"],
        "packets": sum(1 for _, s, _ in packets if s == sid),
        "source": facts.get("source"),
        "ts_offset": _int_or_none(facts.get("tsOffset")),
        "sha256": digest,
    }
    return recording_from_absolute(
        t_abs, x, y, on, sensor_size=(width, height), source_format=NAME, path=str(path), metadata=meta
    )


def _int_or_none(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- writing


def _xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 of a short byte string (for the LZ4 frame header checksum)."""
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    m = 0xFFFFFFFF

    def rotl(v: int, r: int) -> int:
        return ((v << r) | (v >> (32 - r))) & m

    n = len(data)
    i = 0
    if n >= 16:
        v = [(seed + p1 + p2) & m, (seed + p2) & m, seed & m, (seed - p1) & m]
        while i + 16 <= n:
            for k in range(4):
                (w,) = struct.unpack_from("<I", data, i + 4 * k)
                v[k] = (rotl((v[k] + w * p2) & m, 13) * p1) & m
            i += 16
        acc = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & m
    else:
        acc = (seed + p5) & m
    acc = (acc + n) & m
    while i + 4 <= n:
        (w,) = struct.unpack_from("<I", data, i)
        acc = (rotl((acc + w * p3) & m, 17) * p4) & m
        i += 4
    while i < n:
        acc = (rotl((acc + data[i] * p5) & m, 11) * p1) & m
        i += 1
    acc ^= acc >> 15
    acc = (acc * p2) & m
    acc ^= acc >> 13
    acc = (acc * p3) & m
    acc ^= acc >> 16
    return acc


_LZ4_BLOCK = 1 << 16  # BD 0x40: 64 KiB maximum block size, as DV writes
_LZ4_FLG, _LZ4_BD = 0x60, 0x40  # version 01, independent blocks, no checksums or content size
_LZ4_HEADER = _LZ4_MAGIC + bytes([_LZ4_FLG, _LZ4_BD, (_xxh32(bytes([_LZ4_FLG, _LZ4_BD])) >> 8) & 0xFF])


def lz4_frame_stored(data: bytes) -> bytes:
    """A valid LZ4 frame holding ``data`` in stored (uncompressed) blocks."""
    parts = [_LZ4_HEADER]
    for i in range(0, len(data), _LZ4_BLOCK):
        block = data[i : i + _LZ4_BLOCK]
        parts.append(struct.pack("<I", len(block) | 0x80000000))
        parts.append(block)
    parts.append(b"\x00\x00\x00\x00")
    return b"".join(parts)


def _description_xml(width: int, height: int, compression: int, ts_offset: int) -> str:
    p = "/mainloop/Recorder/outInfo/"
    return (
        '<dv version="2.0">\n'
        f'    <node name="outInfo" path="{p}">\n'
        f'        <node name="0" path="{p}0/">\n'
        f'            <attr key="compression" type="string">{_XML_COMPRESSION[compression]}</attr>\n'
        '            <attr key="originalModuleName" type="string">tmkt</attr>\n'
        '            <attr key="originalOutputName" type="string">events</attr>\n'
        '            <attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>\n'
        '            <attr key="typeIdentifier" type="string">EVTS</attr>\n'
        f'            <node name="info" path="{p}0/info/">\n'
        f'                <attr key="sizeX" type="int">{width}</attr>\n'
        f'                <attr key="sizeY" type="int">{height}</attr>\n'
        '                <attr key="source" type="string">tmkt_data</attr>\n'
        f'                <attr key="tsOffset" type="long">{ts_offset}</attr>\n'
        "            </node>\n"
        "        </node>\n"
        "    </node>\n"
        "</dv>\n"
    )


def ioheader_flatbuffer(compression: int, description: str, file_data_position: int = -1) -> bytes:
    """IOHeader flatbuffer (identifier ``IOHE``): compression, file_data_position, description."""
    text = description.encode("utf-8")
    out = bytearray()
    out += struct.pack("<I", 20)  # root table at 20
    out += b"IOHE"
    out += struct.pack("<HHHHH", 10, 20, 4, 12, 8)  # vtable at 8: 3 fields
    out += b"\x00\x00"  # pad to 20
    # table at 20: soffset to vtable, compression, description uoffset, pad, file_data_position (at 32)
    out += struct.pack("<iiI", 20 - 8, compression, 40 - 28)
    out += struct.pack("<q", file_data_position)
    out += struct.pack("<I", len(text)) + text + b"\x00"
    out += b"\x00" * (-len(out) % 4)
    return bytes(out)


def event_packet_flatbuffer(t: np.ndarray, x: np.ndarray, y: np.ndarray, on: np.ndarray) -> bytes:
    """Size-prefixed ``EVTS`` ``EventPacket`` flatbuffer holding the given events."""
    n = t.shape[0]
    head = struct.pack(
        "<II4sHHHxxiII",
        28 + n * _EVENT_SIZE,  # size prefix: bytes after it
        16,  # root table at 4 + 16 = 20
        b"EVTS",
        6,  # vtable (at 12): 6 bytes, table of 8 bytes, field 0 at +4
        8,
        4,
        20 - 12,  # table (at 20): soffset back to the vtable
        4,  # elements vector at 24 + 4 = 28
        n,
    )
    body = np.zeros(n, dtype=EVENT_STRUCT)
    body["t"] = t
    body["x"] = x
    body["y"] = y
    body["on"] = on
    return head + body.tobytes()


def encode(
    events: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    t0_abs: int = 0,
    compression: str = "lz4",
    packet_events: int = 4096,
) -> bytes:
    """The bytes of an AEDAT 4.0 file holding ``events`` in stream 0 (see :func:`write`)."""
    codes = {"none": 0, "lz4": 1}
    if compression not in codes:
        raise EventsError(
            f"compression {compression!r} is not supported for writing, expected 'lz4' or 'none'"
        )
    if packet_events < 1:
        raise EventsError(f"packet_events {packet_events} must be >= 1")
    code = codes[compression]
    w, h = int(sensor_size[0]), int(sensor_size[1])
    if not (1 <= w <= 32767 and 1 <= h <= 32767):
        raise EventsError(f"sensor_size {tuple(sensor_size)} cannot be stored, expected 1..32767 per side")
    ev = events_to_write(events, (w, h))
    t_abs = ev["t"].astype(np.int64) + int(t0_abs)
    if t_abs.size and (int(t_abs[0]) < 0 or int(ev["x"].min()) < 0 or int(ev["y"].min()) < 0):
        raise EventsError("events to write have a negative absolute time or coordinate, expected >= 0")
    ts_offset = int(t_abs[0]) if t_abs.size else int(t0_abs)
    desc = _description_xml(w, h, code, ts_offset)
    hdr = ioheader_flatbuffer(code, desc, -1)
    parts = [MAGIC, struct.pack("<I", len(hdr)), hdr]
    on = ev["p"] > 0
    for i in range(0, t_abs.shape[0], packet_events):
        s = slice(i, i + packet_events)
        body = event_packet_flatbuffer(t_abs[s], ev["x"][s], ev["y"][s], on[s])
        if code == 1:
            body = lz4_frame_stored(body)
        parts.append(struct.pack("<II", 0, len(body)))
        parts.append(body)
    return b"".join(parts)


def write(
    path: str | os.PathLike[str],
    events: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    t0_abs: int = 0,
    compression: str = "lz4",
    packet_events: int = 4096,
) -> None:
    """Write events as an AEDAT 4.0 file with one ``EVTS`` stream (id 0), atomically.

    Args:
        path: the file to create or replace.
        events: structured array with fields ``t``, ``x``, ``y``, ``p``.
        sensor_size: (width, height), stored as ``sizeX`` / ``sizeY``.
        t0_abs: added to ``events["t"]``; the file stores absolute times
            ``t + t0_abs`` (DV uses microseconds since the Unix epoch).
        compression: ``"lz4"`` (IOHeader compression 1; LZ4 frames of stored,
            uncompressed blocks, since no LZ4 library is a dependency) or
            ``"none"`` (compression 0).
        packet_events: events per packet.

    The IOHeader's ``file_data_position`` is -1 (no file data table), as in a
    DV recording that was not closed normally; readers then decode packets up
    to the end of file.

    Raises:
        EventsError: missing fields, events outside ``sensor_size``, negative
            absolute times, an unsupported compression.
    """
    data = encode(events, sensor_size, t0_abs=t0_abs, compression=compression, packet_events=packet_events)
    atomic_write_bytes(path, data)


FORMATS.register(NAME, sys.modules[__name__])
