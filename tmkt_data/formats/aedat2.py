"""jAER AEDAT 2.0 (and 1.0) files: ``#`` header lines, then big-endian address/timestamp records.

Layout (see ``docs/formats.md`` §2.1):

* header: ASCII lines starting with ``#`` (jAER writes CRLF); the first line is
  ``#!AER-DAT2.0`` for version 2.0, ``#!AER-DAT1.0`` (or no ``#!AER-DAT`` line at
  all) for version 1.0. The body starts right after the last ``#`` line.
* 2.0 records: ``uint32 address, uint32 timestamp`` (8 bytes, big-endian);
  1.0 records: ``uint16 address, uint32 timestamp`` (6 bytes, big-endian; DVS128 only).
* timestamps are microseconds and wrap at 2**32: each drop of more than 2**31
  between consecutive records adds 2**32 (all records, special ones included,
  count for the unwrapping). If the unwrapped times still go backwards the
  events are stably re-sorted and ``metadata["resorted"]`` is True.

Address decoding (``chip``):

=========  =========  =====================  =====================  ===============
chip       W x H      raw_x                  raw_y                  ON flag
=========  =========  =====================  =====================  ===============
dvs128     128 x 128  ``(a >> 1) & 0x7F``    ``(a >> 8) & 0x7F``    ``1 - (a & 1)``
davis240   240 x 180  ``(a >> 12) & 0x3FF``  ``(a >> 22) & 0x1FF``  ``(a >> 11) & 1``
davis346   346 x 260  ``(a >> 12) & 0x3FF``  ``(a >> 22) & 0x1FF``  ``(a >> 11) & 1``
=========  =========  =====================  =====================  ===============

Dropped records: DVS128 with bit 15 or bit 31 set (external/special events);
DAVIS with bit 31 (APS/ADC samples) or bit 10 (IMU/special) set.

``chip="auto"`` takes the chip from the ``# AEChip:`` header line (class names
containing ``DVS128``/``Tmpdiff128``, ``DAVIS240``, ``DAVIS346``, case-insensitive)
and falls back to DVS128 when there is no such line; an ``AEChip`` naming any
other chip is a :class:`FormatError` (pass ``chip=`` explicitly). A DAVIS raw
coordinate outside the chip (e.g. ``raw_x >= 240`` on a DAVIS240) is a
:class:`FormatError` naming the byte offset of the record.

Orientation (``orientation``), W x H the chip size:

============  ===================  ===================  ============  ==============================
name          x                    y                    sensor_size   meaning
============  ===================  ===================  ============  ==============================
raw           ``raw_x``            ``raw_y``            (W, H)        address bits as stored; jAER
                                                                      origin bottom-left, x mirrored
jaer          ``W - 1 - raw_x``    ``raw_y``            (W, H)        as jAER displays it, origin
                                                                      bottom-left
image         ``W - 1 - raw_x``    ``H - 1 - raw_y``    (W, H)        top-left image origin; equals
                                                                      tonic ``read_davis_346``
spikingjelly  ``H - 1 - raw_y``    ``W - 1 - raw_x``    (H, W)        transpose of ``image``; for
                                                                      DVS128 exactly spikingjelly's
                                                                      CIFAR10-DVS convention
                                                                      (x = 127 - raw_y,
                                                                      y = 127 - raw_x)
============  ===================  ===================  ============  ==============================

``orientation="auto"`` (the default) means ``spikingjelly`` for DVS128 (the
convention most CIFAR10-DVS papers use) and ``image`` for DAVIS chips. The chip,
the orientation used, the version, the header lines and the number of dropped
special records are stored in ``Recording.metadata``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import EVENT_DTYPE, Recording, events_to_write
from tmkt_data.formats import FORMATS
from tmkt_data.formats._io import atomic_write_bytes, read_file_bytes, read_hash_header

NAME = "aedat2"
EXTENSIONS = (".aedat", ".dat")

#: chip name -> (width, height) of the pixel array.
CHIPS: dict[str, tuple[int, int]] = {"dvs128": (128, 128), "davis240": (240, 180), "davis346": (346, 260)}
#: jAER class names written by :func:`write` in the ``# AEChip:`` line.
CHIP_CLASSES = {
    "dvs128": "ch.unizh.ini.jaer.chip.retina.DVS128",
    "davis240": "eu.seebetter.ini.chips.davis.DAVIS240C",
    "davis346": "eu.seebetter.ini.chips.davis.Davis346B",
}
ORIENTATIONS = ("spikingjelly", "jaer", "image", "raw")

_WRAP = 1 << 32
_HALF = 1 << 31
_REC2 = np.dtype([("a", ">u4"), ("t", ">u4")])
_REC1 = np.dtype([("a", ">u2"), ("t", ">u4")])


def sniff(head: bytes) -> bool:
    """True for files starting with ``#!AER-DAT2.0`` or ``#!AER-DAT1.0`` (plain ``#`` headers: no)."""
    return head.startswith((b"#!AER-DAT2.0", b"#!AER-DAT1.0"))


def _chip_from_header(lines: list[str], path: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(chip, AEChip class name or None) from the ``# AEChip:`` line; DVS128 without one."""
    for line in lines:
        body = line.lstrip("#").strip()
        if body.lower().startswith("aechip:"):
            cls = body.split(":", 1)[1].strip()
            name = cls.rsplit(".", 1)[-1].lower()
            if "davis346" in name:
                return "davis346", cls
            if "davis240" in name:
                return "davis240", cls
            if "dvs128" in name or "tmpdiff128" in name:
                return "dvs128", cls
            raise FormatError(
                path,
                f"AEChip {cls!r} is not a supported chip (expected DVS128, DAVIS240 or DAVIS346); "
                "pass chip='dvs128'|'davis240'|'davis346' to force a decoding",
            )
    return "dvs128", None


def _version_from_header(lines: list[str], path: str | os.PathLike[str]) -> str:
    """``"2.0"`` or ``"1.0"`` from the ``#!AER-DAT`` line (1.0 without one)."""
    for line in lines:
        if line.startswith("#!AER-DAT"):
            ver = line[len("#!AER-DAT") :].strip()
            if ver.startswith("2."):
                return "2.0"
            if ver.startswith("1."):
                return "1.0"
            raise FormatError(
                path, f"header says AEDAT {ver!r}, expected 1.x or 2.x (AEDAT 3.1/4 have their own readers)"
            )
    return "1.0"


def _resolve_orientation(orientation: str, chip: str) -> str:
    if orientation == "auto":
        return "spikingjelly" if chip == "dvs128" else "image"
    if orientation not in ORIENTATIONS:
        raise EventsError(
            f"unknown orientation {orientation!r}, expected 'auto' or one of {', '.join(ORIENTATIONS)}"
        )
    return orientation


def _resolve_chip(chip: str) -> str:
    if chip not in CHIPS:
        raise EventsError(f"unknown chip {chip!r}, expected 'auto' or one of {', '.join(CHIPS)}")
    return chip


def _unorient(x: np.ndarray, y: np.ndarray, w: int, h: int, orientation: str):
    """(raw_x, raw_y) from oriented coordinates (inverse of the mapping in :func:`_decode_records`)."""
    if orientation == "raw":
        return x, y
    if orientation == "jaer":
        return (w - 1) - x, y
    if orientation == "image":
        return (w - 1) - x, (h - 1) - y
    return (w - 1) - y, (h - 1) - x  # spikingjelly


#: orientation name -> code used by :func:`_decode_body`.
_ORIENT_CODE = {"raw": 0, "jaer": 1, "image": 2, "spikingjelly": 3}


@numba.njit(nogil=True, cache=True, inline="always")
def _be32(b, o):  # pragma: no cover - compiled
    """Big-endian uint32 at byte ``o`` (uint64) of the uint8 array ``b``, as int64."""
    return (
        (np.int64(b[o]) << 24)
        | (np.int64(b[o + np.uint64(1)]) << 16)
        | (np.int64(b[o + np.uint64(2)]) << 8)
        | np.int64(b[o + np.uint64(3)])
    )


@numba.njit(nogil=True, cache=True, inline="always")
def _record(body, o, rec_size, davis):  # pragma: no cover - compiled
    """(address, timestamp, raw_x, raw_y, ON flag) of the record at byte ``o`` (uint64)."""
    if rec_size == 8:
        a = _be32(body, o)
    else:
        a = (np.int64(body[o]) << 8) | np.int64(body[o + np.uint64(1)])
    t = _be32(body, o + np.uint64(rec_size - 4))
    if davis:
        return a, t, (a >> 12) & 0x3FF, (a >> 22) & 0x1FF, (a >> 11) & 1
    return a, t, (a >> 1) & 0x7F, (a >> 8) & 0x7F, 1 - (a & 1)


@numba.njit(nogil=True, cache=True, inline="always")
def _orient(rx, ry, w, h, orient):  # pragma: no cover - compiled
    """(x, y) of raw chip coordinates under the orientation code ``orient`` (module docstring)."""
    if orient == 0:  # raw
        return rx, ry
    if orient == 1:  # jaer
        return (w - 1) - rx, ry
    if orient == 2:  # image
        return (w - 1) - rx, (h - 1) - ry
    return (h - 1) - ry, (w - 1) - rx  # spikingjelly


@numba.njit(nogil=True, cache=True, inline="always")
def _drop_mask(davis):  # pragma: no cover - compiled
    """Address bits that mark a record as not a DVS event (special/external, APS, IMU)."""
    return np.int64(0x80000400) if davis else np.int64(0x80008000)


@numba.njit(nogil=True, cache=True, inline="always")
def _decode_records(body, rec_size, davis, w, h, orient, out):  # pragma: no cover - compiled
    """The general loop of :func:`_decode_body`; inlined with a constant ``rec_size`` so the
    loads specialise."""
    n = body.shape[0] // rec_size
    half = np.int64(1) << 31
    wrap = np.int64(1) << 32
    drop = _drop_mask(davis)
    k = 0
    wraps = 0
    shift = np.int64(0)
    prev = np.int64(0)
    t_first = np.int64(0)
    last = np.int64(0)
    monotonic = True
    for i in range(np.uint64(n)):
        a, t, rx, ry, p = _record(body, i * np.uint64(rec_size), rec_size, davis)
        if i > np.uint64(0) and t - prev < -half:  # a 2**32 wrap, counted over all records
            shift += wrap
            wraps += 1
        prev = t
        if a & drop:
            continue
        if davis and (rx >= w or ry >= h):
            return k, wraps, np.int64(i), monotonic, t_first
        x, y = _orient(rx, ry, w, h, orient)
        ta = t + shift
        if k == 0:
            t_first = ta
        elif ta < last:
            monotonic = False
        last = ta
        e = out[k]
        e.t = ta - t_first
        e.x = x
        e.y = y
        e.p = p
        k += 1
    return k, wraps, -1, monotonic, t_first


@numba.njit(nogil=True, cache=True, inline="always")
def _plain_break(a, t, prev, rx, ry, davis, w, h):  # pragma: no cover - compiled
    """True when a record ends the straight loops: special, backward in time, or outside the chip."""
    bad_xy = (rx >= w) | (ry >= h) if davis else False
    return (a & _drop_mask(davis) != 0) | (t < prev) | bad_xy


@numba.njit(nogil=True, cache=True, inline="always")
def _decode_plain(body, rec_size, davis, w, h, orient, out):  # pragma: no cover - compiled
    """The common case of :func:`_decode_records` in one straight loop: every record is an
    event (no special ones), inside the chip, and no timestamp is smaller than the one
    before (no wrap, no re-sort). Stops at the first record that breaks this and returns
    its index (``n`` when none did) and the first record's timestamp; unsigned offsets
    avoid negative-index code so the byte loads combine (timed against the general loop in
    docs/benchmarks.md, "Parts of a conversion")."""
    n = body.shape[0] // rec_size
    t_first = _be32(body, np.uint64(rec_size - 4))
    prev = t_first
    for i in range(np.uint64(n)):
        a, t, rx, ry, p = _record(body, i * np.uint64(rec_size), rec_size, davis)
        if _plain_break(a, t, prev, rx, ry, davis, w, h):
            return np.int64(i), t_first
        prev = t
        x, y = _orient(rx, ry, w, h, orient)
        e = out[i]
        e.t = t - t_first
        e.x = x
        e.y = y
        e.p = p
    return np.int64(n), t_first


@numba.njit(nogil=True, cache=True)
def _decode_body(body, rec_size, davis, w, h, orient, out):  # pragma: no cover - compiled
    """Decode the big-endian records of ``body`` (uint8 view of the file) into the event array ``out``.

    ``rec_size`` is 8 (AEDAT 2.0: uint32 address, uint32 timestamp) or 6 (1.0: uint16
    address); ``davis`` selects the DAVIS address layout (else DVS128); ``orient`` is an
    :data:`_ORIENT_CODE`. Timestamps are unwrapped over all records (special ones
    included); special/external (DVS128 bits 15, 31) and APS/IMU (DAVIS bits 31, 10)
    records are dropped; kept events go to ``out[:k]`` in file order with
    ``t = t_abs - t_first`` (``t_first`` the first kept event's absolute time).

    Returns ``(k, wraps, bad, monotonic, t_first)``: ``bad`` is the index of the first
    DAVIS record whose raw coordinates lie outside ``w`` x ``h`` (decoding stops
    there), else -1; ``monotonic`` is True when the kept times never decrease.

    The straight loop of :func:`_decode_plain` runs first; a file it cannot finish
    (special records, a wrap, a backward step, a bad coordinate) is decoded again
    from the start by the general loop of :func:`_decode_records`.
    """
    n = body.shape[0] // rec_size
    if rec_size == 8:
        if n > 0:
            stop, t_first = _decode_plain(body, 8, davis, w, h, orient, out)
            if stop == n:
                return n, 0, -1, True, t_first
        return _decode_records(body, 8, davis, w, h, orient, out)
    if n > 0:
        stop, t_first = _decode_plain(body, 6, davis, w, h, orient, out)
        if stop == n:
            return n, 0, -1, True, t_first
    return _decode_records(body, 6, davis, w, h, orient, out)


@dataclass(frozen=True)
class _Body:
    """A read file: its bytes, parsed header and the record body (a uint8 view)."""

    data: bytes
    lines: list[str]
    start: int
    version: str
    chip: str
    aechip: str | None
    orientation: str
    rec_size: int
    body: np.ndarray

    @property
    def n_records(self) -> int:
        return self.body.shape[0] // self.rec_size

    @property
    def sensor_size(self) -> tuple[int, int]:
        w, h = CHIPS[self.chip]
        return (h, w) if self.orientation == "spikingjelly" else (w, h)

    def metadata(self, dropped: int, wraps: int, resorted: bool) -> dict[str, Any]:
        return {
            "version": self.version,
            "chip": self.chip,
            "aechip": self.aechip,
            "orientation": self.orientation,
            "dropped_special": int(dropped),
            "timestamp_wraps": int(wraps),
            "resorted": bool(resorted),
            "header": self.lines,
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


def _open(path: str | os.PathLike[str], chip: str, orientation: str) -> _Body:
    """Read the file, parse its header, resolve chip and orientation, check the body length."""
    data = read_file_bytes(path)
    lines, start = read_hash_header(data, path)
    version = _version_from_header(lines, path)
    aechip = None
    if chip == "auto":
        chip, aechip = _chip_from_header(lines, path)
    else:
        chip = _resolve_chip(chip)
    orientation = _resolve_orientation(orientation, chip)
    size = (_REC2 if version == "2.0" else _REC1).itemsize
    if version == "1.0" and chip != "dvs128":
        raise FormatError(
            path, f"AEDAT 1.0 has 16-bit addresses and cannot hold {chip} events; expected DVS128"
        )
    body_len = len(data) - start
    n = body_len // size
    if body_len % size:
        raise FormatError(
            path,
            f"body of {body_len} bytes ends with a partial record of {body_len % size} bytes, "
            f"expected whole {size}-byte records (AEDAT {version})",
            offset=start + n * size,
        )
    body = np.frombuffer(data, dtype=np.uint8, count=n * size, offset=start)  # a view, no copy
    return _Body(data, lines, start, version, chip, aechip, orientation, size, body)


def read(path: str | os.PathLike[str], *, chip: str = "auto", orientation: str = "auto") -> Recording:
    """Read a jAER AEDAT 2.0 (or 1.0) file.

    Args:
        path: the file.
        chip: ``"auto"`` (from the ``# AEChip:`` header line, else DVS128),
            ``"dvs128"``, ``"davis240"`` or ``"davis346"``.
        orientation: ``"auto"`` (``spikingjelly`` for DVS128, ``image`` for
            DAVIS), ``"spikingjelly"``, ``"jaer"``, ``"image"`` or ``"raw"``;
            see the module docstring for the formulas.

    Raises:
        FormatError: bad header, partial trailing record, coordinates outside the chip.
    """
    f = _open(path, chip, orientation)
    w, h = CHIPS[f.chip]
    size, n = f.rec_size, f.n_records
    out = np.empty(n, dtype=EVENT_DTYPE)
    k, n_wraps, bad, monotonic, t0 = _decode_body(
        f.body, size, f.chip != "dvs128", w, h, _ORIENT_CODE[f.orientation], out
    )
    if bad >= 0:
        o = f.start + bad * size
        a = int.from_bytes(f.data[o : o + size - 4], "big")
        raise FormatError(
            path,
            f"{f.chip} event (address 0x{a:08X}) has raw x={(a >> 12) & 0x3FF}, y={(a >> 22) & 0x1FF}, "
            f"expected x < {w} and y < {h}",
            offset=o,
        )
    if k < n:  # special records dropped: a view of the buffer, a copy when most of it would be unused
        out = out[:k] if 2 * k >= n else out[:k].copy()
    ev = out
    if not monotonic:  # stable re-sort; t stays relative to the earliest event
        ev = ev[np.argsort(ev["t"], kind="stable")]
        d = int(ev["t"][0])
        if d:
            ev["t"] -= d
        t0 += d
    meta = f.metadata(n - k, n_wraps, not monotonic)
    return Recording(ev, f.sensor_size, NAME, str(path), int(t0) if k else 0, meta)


def _header_bytes(chip: str) -> bytes:
    lines = [
        "#!AER-DAT2.0",
        "# This is a raw AE data file - do not edit",
        "# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
        "# Timestamps tick is 1 us",
        f"# AEChip: {CHIP_CLASSES[chip]}",
        "# End of ASCII Header",
    ]
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def write(
    path: str | os.PathLike[str],
    events: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    chip: str = "dvs128",
    orientation: str = "auto",
    t0_abs: int = 0,
) -> None:
    """Write events as a jAER AEDAT 2.0 file (atomically: temporary file, then rename).

    Args:
        path: the file to create or replace.
        events: structured array with fields ``t``, ``x``, ``y``, ``p`` (canonical events).
        sensor_size: (width, height) of ``events``; must equal the chip size under
            ``orientation`` ((H, W) for ``spikingjelly``, (W, H) otherwise).
        chip: ``"dvs128"``, ``"davis240"`` or ``"davis346"``.
        orientation: how ``events`` are oriented (as for :func:`read`); inverted here.
        t0_abs: added to ``events["t"]``; the file stores ``(t + t0_abs) mod 2**32``.

    Events are written stably sorted by time. A DAVIS file whose first record
    would start with byte ``0x23`` (``#``, mistaken for a header line) gets one
    leading IMU/special record (address ``0x400``, dropped by readers that
    follow jAER) with the first event's timestamp.

    Raises:
        EventsError: bad chip/orientation/sensor size, coordinates outside the
            sensor, negative times, or a gap of 2**31 us or more between
            consecutive events (it would read back as a timestamp wrap).
    """
    chip = _resolve_chip(chip)
    orientation = _resolve_orientation(orientation, chip)
    w, h = CHIPS[chip]
    expected = (h, w) if orientation == "spikingjelly" else (w, h)
    if (int(sensor_size[0]), int(sensor_size[1])) != expected:
        raise EventsError(
            f"sensor_size {tuple(sensor_size)} does not match chip {chip} in orientation {orientation!r}, "
            f"expected {expected}"
        )
    ev = events_to_write(events, expected)
    t_abs = ev["t"].astype(np.int64) + int(t0_abs)
    if t_abs.size:
        if int(t_abs[0]) < 0:
            raise EventsError(f"first timestamp t + t0_abs = {int(t_abs[0])} is negative, expected >= 0")
        gaps = np.diff(t_abs)
        if gaps.size and int(gaps.max()) >= _HALF:
            raise EventsError(
                "a gap of 2**31 us or more between consecutive events cannot be stored in AEDAT 2.0"
            )
    x = ev["x"].astype(np.int64)
    y = ev["y"].astype(np.int64)
    if x.size and (int(x.min()) < 0 or int(y.min()) < 0):
        raise EventsError("events to write have negative x or y, expected pixel coordinates >= 0")
    on = (ev["p"] > 0).astype(np.int64)
    raw_x, raw_y = _unorient(x, y, w, h, orientation)
    if chip == "dvs128":
        addr = (raw_y << 8) | (raw_x << 1) | (1 - on)
    else:
        addr = (raw_y << 22) | (raw_x << 12) | (on << 11)
    recs = np.empty(addr.size, dtype=_REC2)
    recs["a"] = addr.astype(np.uint32)
    recs["t"] = (t_abs & (_WRAP - 1)).astype(np.uint32)
    chunks = [_header_bytes(chip)]
    if recs.size and (int(recs["a"][0]) >> 24) == 0x23:
        lead = np.zeros(1, dtype=_REC2)
        lead["a"] = 0x400
        lead["t"] = recs["t"][0]
        chunks.append(lead.tobytes())
    chunks.append(recs.tobytes())
    atomic_write_bytes(path, b"".join(chunks))


def __getattr__(name: str) -> Any:
    """:func:`read_frames` and :class:`FileFrames` live in :mod:`tmkt_data.binning_aedat2` (which
    imports this module); they are re-exported here on first use, as ``convert`` and the README
    call ``aedat2.read_frames``."""
    if name in ("read_frames", "FileFrames"):
        from tmkt_data import binning_aedat2

        value = getattr(binning_aedat2, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


FORMATS.register(NAME, sys.modules[__name__])
