"""cAER/libcaer AEDAT 3.1 files (DVS128 Gesture): ``#`` header, then little-endian event packets.

Layout (see ``docs/formats.md`` §2.2):

* header: ``#`` lines (CRLF), first ``#!AER-DAT3.1``, up to the exact line
  ``#!END-HEADER``; the body starts right after it.
* body: packets, each a 28-byte header ``int16 eventType, int16 eventSource,
  int32 eventSize, int32 eventTSOffset, int32 eventTSOverflow, int32
  eventCapacity, int32 eventNumber, int32 eventValid`` followed by
  ``eventCapacity * eventSize`` bytes.
* only polarity packets (type 1, ``eventSize`` 8) are decoded; the others are
  skipped. Of a polarity packet the first ``eventNumber`` events are decoded:
  ``uint32 data, int32 timestamp`` with valid mark bit 0 (0 = invalidated,
  dropped), polarity bit 1 (1 = ON), y bits 2-16, x bits 17-31, origin
  top-left; time (us) = ``(eventTSOverflow << 31) | timestamp``.

Every packet header is checked against the file size before anything is
allocated from it; a corrupt field is a :class:`FormatError` naming the byte
offset of the packet header.

Sensor size, first match wins: the ``sensor_size`` argument; ``sizeX``/``sizeY``
(or ``dvsSizeX``/``dvsSizeY``) attributes of header XML; the ``#Source N: <name>``
line (DVS128 -> 128 x 128, DAVIS240* -> 240 x 180, DAVIS346* -> 346 x 260);
else DVS128. Events outside it are a :class:`FormatError`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import struct
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import Recording, events_to_write, recording_from_absolute
from tmkt_data.formats import FORMATS
from tmkt_data.formats._io import atomic_write_bytes, read_file_bytes, read_hash_header

NAME = "aedat31"
EXTENSIONS = (".aedat",)

POLARITY_EVENT = 1
PACKET_HEADER = struct.Struct("<hhiiiiii")
#: Largest eventSize accepted (bytes); frame events of big sensors stay well below.
MAX_EVENT_SIZE = 1 << 26

_POL = np.dtype([("d", "<u4"), ("t", "<i4")])
_SOURCES = (("dvs128", (128, 128)), ("davis240", (240, 180)), ("davis346", (346, 260)))
_SOURCE_NAMES = {(128, 128): "DVS128", (240, 180): "DAVIS240C", (346, 260): "DAVIS346B"}
_SIZE_RE = re.compile(r'key\s*=\s*"(?:dvs)?size([XY])"[^>]*>\s*(\d+)\s*<', re.IGNORECASE)
_SOURCE_RE = re.compile(r"^#Source\s+(\d+)\s*:\s*(.*)$")


def sniff(head: bytes) -> bool:
    """True for files starting with ``#!AER-DAT3.1``."""
    return head.startswith(b"#!AER-DAT3.1")


def _sensor_from_header(lines: list[str]) -> tuple[tuple[int, int], str, str | None]:
    """(sensor size, where it came from, source name) from the header lines."""
    sizes: dict[str, int] = {}
    source = None
    for line in lines:
        for axis, val in _SIZE_RE.findall(line):
            sizes.setdefault(axis.upper(), int(val))
        m = _SOURCE_RE.match(line)
        if m and source is None:
            source = m.group(2).strip()
    if "X" in sizes and "Y" in sizes and sizes["X"] > 0 and sizes["Y"] > 0:
        return (sizes["X"], sizes["Y"]), "header sizeX/sizeY", source
    if source:
        low = source.lower()
        for key, size in _SOURCES:
            if key in low:
                return size, f"source {source!r}", source
    return (128, 128), "default DVS128", source


def _walk_packets(data: bytes, start: int, path: str | os.PathLike[str]):
    """Validate every packet header; return polarity body (offset, count, overflow) lists and stats."""
    n = len(data)
    pos = start
    offs: list[int] = []
    counts: list[int] = []
    overs: list[int] = []
    skipped: dict[int, int] = {}
    n_packets = 0
    while pos < n:
        left = n - pos
        if left < PACKET_HEADER.size:
            raise FormatError(
                path,
                f"truncated packet header: {left} bytes left, expected a 28-byte packet header",
                offset=pos,
            )
        etype, _src, esize, tsoff, tsover, cap, num, valid = PACKET_HEADER.unpack_from(data, pos)
        if etype < 0:
            raise FormatError(path, f"packet eventType {etype} is negative, expected 0-32767", offset=pos)
        if not 0 < esize <= MAX_EVENT_SIZE:
            raise FormatError(
                path,
                f"packet eventSize {esize} is out of range, expected 1-{MAX_EVENT_SIZE} bytes",
                offset=pos,
            )
        if cap < 0:
            raise FormatError(path, f"packet eventCapacity {cap} is negative, expected >= 0", offset=pos)
        if not 0 <= num <= cap:
            raise FormatError(
                path,
                f"packet eventNumber {num} is out of range, expected 0 <= eventNumber <= {cap}",
                offset=pos,
            )
        if not 0 <= valid <= num:
            raise FormatError(
                path,
                f"packet eventValid {valid} is out of range, expected 0 <= eventValid <= {num}",
                offset=pos,
            )
        if tsover < 0:
            raise FormatError(path, f"packet eventTSOverflow {tsover} is negative, expected >= 0", offset=pos)
        body = pos + PACKET_HEADER.size
        blen = cap * esize
        if blen > n - body:
            raise FormatError(
                path,
                f"packet of type {etype} declares {cap} events of {esize} bytes ({blen} bytes) "
                f"but only {n - body} bytes follow",
                offset=pos,
            )
        if etype == POLARITY_EVENT:
            if esize != 8 or tsoff != 4:
                raise FormatError(
                    path,
                    f"polarity packet has eventSize {esize} and eventTSOffset {tsoff}, expected 8 and 4",
                    offset=pos,
                )
            if num:
                offs.append(body)
                counts.append(num)
                overs.append(tsover)
        else:
            skipped[etype] = skipped.get(etype, 0) + 1
        n_packets += 1
        pos = body + blen
    return offs, counts, overs, skipped, n_packets


def _resolve_sensor(
    lines: list[str], sensor_size: tuple[int, int] | None
) -> tuple[tuple[int, int], str, str | None]:
    """(sensor size, where it came from, source name): the argument if given, else the header."""
    if sensor_size is None:
        return _sensor_from_header(lines)
    source = None
    for line in lines:
        m = _SOURCE_RE.match(line)
        if m:
            source = m.group(2).strip()
            break
    return (int(sensor_size[0]), int(sensor_size[1])), "argument", source


def _gather_polarity(
    data: bytes, offs: list[int], counts: list[int], overs: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(records, eventTSOverflow per record, byte offset per record) of all polarity packets."""
    total = sum(counts)
    if not total:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=_POL), empty, empty
    recs = np.concatenate(
        [np.frombuffer(data, dtype=_POL, count=c, offset=o) for o, c in zip(offs, counts, strict=True)]
    )
    cnt = np.asarray(counts, dtype=np.int64)
    over = np.repeat(np.asarray(overs, dtype=np.int64), cnt)
    first = np.cumsum(cnt) - cnt
    rec_off = np.repeat(np.asarray(offs, dtype=np.int64) - 8 * first, cnt) + 8 * np.arange(
        total, dtype=np.int64
    )
    return recs, over, rec_off


def _check_valid_events(
    path: str | os.PathLike[str],
    ts: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    valid: np.ndarray,
    rec_off: np.ndarray,
    sensor: tuple[int, int],
    sensor_from: str,
) -> None:
    """FormatError at the first valid event with a negative timestamp, then the first outside the sensor."""
    w, h = sensor
    bad_t = valid & (ts < 0)
    if bad_t.any():
        i = int(np.argmax(bad_t))
        raise FormatError(
            path, f"polarity event timestamp {int(ts[i])} is negative, expected >= 0", offset=int(rec_off[i])
        )
    bad_xy = valid & ((x >= w) | (y >= h))
    if bad_xy.any():
        i = int(np.argmax(bad_xy))
        raise FormatError(
            path,
            f"polarity event at x={int(x[i])}, y={int(y[i])} is outside the {w}x{h} sensor ({sensor_from})",
            offset=int(rec_off[i]),
        )


def _header_start_time(lines: list[str]) -> str | None:
    """The ``#Start-Time:`` value, or None."""
    for line in lines:
        if line.startswith("#Start-Time:"):
            return line.split(":", 1)[1].strip()
    return None


def read(path: str | os.PathLike[str], *, sensor_size: tuple[int, int] | None = None) -> Recording:
    """Read an AEDAT 3.1 file's polarity events.

    Args:
        path: the file.
        sensor_size: (width, height) overriding what the header says.

    Raises:
        FormatError: missing ``#!AER-DAT3`` or ``#!END-HEADER`` line, corrupt
            packet header, truncated packet, negative timestamp, event outside
            the sensor.
    """
    data = read_file_bytes(path)
    if not data.startswith(b"#!AER-DAT3."):
        raise FormatError(
            path, "file does not start with '#!AER-DAT3.1', expected an AEDAT 3.1 header", offset=0
        )
    lines, start = read_hash_header(data, path, end_line=b"#!END-HEADER")
    version = lines[0][len("#!AER-DAT") :].strip()
    sensor, sensor_from, source = _resolve_sensor(lines, sensor_size)

    offs, counts, overs, skipped, n_packets = _walk_packets(data, start, path)
    recs, over, rec_off = _gather_polarity(data, offs, counts, overs)
    d = recs["d"]
    ts = recs["t"].astype(np.int64)
    valid = (d & 1).astype(bool)
    x = (d >> 17) & 0x7FFF
    y = (d >> 2) & 0x7FFF
    p = (d >> 1) & 1
    _check_valid_events(path, ts, x, y, valid, rec_off, sensor, sensor_from)
    t_abs = (over[valid] << 31) | ts[valid]
    resorted = not (t_abs.size < 2 or bool(np.all(t_abs[1:] >= t_abs[:-1])))
    meta: dict[str, Any] = {
        "version": version,
        "source": source,
        "start_time": _header_start_time(lines),
        "sensor_size_from": sensor_from,
        "orientation": "image",
        "packets": n_packets,
        "skipped_packets": {int(k): int(v) for k, v in sorted(skipped.items())},
        "dropped_invalid": int(sum(counts) - np.count_nonzero(valid)),
        "resorted": resorted,
        "header": lines,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return recording_from_absolute(
        t_abs,
        x[valid],
        y[valid],
        p[valid],
        sensor_size=sensor,
        source_format=NAME,
        path=str(path),
        metadata=meta,
    )


def _start_time(t0_abs: int) -> str:
    try:
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(t0_abs))
    except OverflowError:
        when = datetime(1970, 1, 1, tzinfo=UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S") + " (TZ+0000)"


def write(
    path: str | os.PathLike[str],
    events: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    packet_size: int = 4096,
    t0_abs: int = 0,
) -> None:
    """Write events as an AEDAT 3.1 file of polarity packets (atomically: temporary file, then rename).

    Args:
        path: the file to create or replace.
        events: structured array with fields ``t``, ``x``, ``y``, ``p`` (origin top-left).
        sensor_size: (width, height), each at most 32768.
        packet_size: most events per packet; a packet also ends where
            ``(t + t0_abs) >> 31`` (its ``eventTSOverflow``) changes.
        t0_abs: added to ``events["t"]``; also gives ``#Start-Time`` (read as
            microseconds since the Unix epoch).

    The ``#Source 1:`` line names DVS128, DAVIS240C or DAVIS346B for their
    sizes; any other size gets ``Unknown`` plus a ``#-Source 1:`` line with
    ``dvsSizeX``/``dvsSizeY`` attributes, which :func:`read` understands.
    """
    w, h = int(sensor_size[0]), int(sensor_size[1])
    if not (0 < w <= 32768 and 0 < h <= 32768):
        raise EventsError(f"sensor_size {tuple(sensor_size)} out of range, expected 1-32768 pixels per side")
    if int(packet_size) < 1:
        raise EventsError(f"packet_size {packet_size} must be >= 1")
    ev = events_to_write(events, (w, h))
    t_abs = ev["t"].astype(np.int64) + int(t0_abs)
    x = ev["x"].astype(np.int64)
    y = ev["y"].astype(np.int64)
    if t_abs.size:
        if int(t_abs[0]) < 0:
            raise EventsError(f"first timestamp t + t0_abs = {int(t_abs[0])} is negative, expected >= 0")
        if int(t_abs[-1]) >> 31 >= 1 << 31:
            raise EventsError(
                f"timestamp {int(t_abs[-1])} too large for AEDAT 3.1 (eventTSOverflow is int32)"
            )
        if int(x.min()) < 0 or int(y.min()) < 0:
            raise EventsError("events to write have negative x or y, expected pixel coordinates >= 0")
    recs = np.empty(t_abs.size, dtype=_POL)
    on = (ev["p"] > 0).astype(np.int64)
    recs["d"] = ((x << 17) | (y << 2) | (on << 1) | 1).astype(np.uint32)
    recs["t"] = (t_abs & 0x7FFFFFFF).astype(np.int32)
    over = t_abs >> 31

    name = _SOURCE_NAMES.get((w, h))
    lines = [
        "#!AER-DAT3.1",
        "#Format: RAW",
        f"#Source 1: {name or 'Unknown'}",
        f"#Start-Time: {_start_time(t0_abs)}",
    ]
    if name is None:
        lines.append(
            f'#-Source 1: <node name="sourceInfo"><attr key="dvsSizeX" type="short">{w}</attr>'
            f'<attr key="dvsSizeY" type="short">{h}</attr></node>'
        )
    lines.append("#!END-HEADER")
    chunks = ["".join(line + "\r\n" for line in lines).encode("ascii")]

    bounds = [0, *(np.flatnonzero(np.diff(over)) + 1).tolist(), t_abs.size]
    step = int(packet_size)
    for a, b in itertools.pairwise(bounds):
        for s in range(a, b, step):
            e = min(s + step, b)
            k = e - s
            chunks.append(PACKET_HEADER.pack(POLARITY_EVENT, 1, 8, 4, int(over[s]), k, k, k))
            chunks.append(recs[s:e].tobytes())
    atomic_write_bytes(path, b"".join(chunks))


FORMATS.register(NAME, sys.modules[__name__])
