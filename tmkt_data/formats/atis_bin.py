"""ATIS 40-bit ``.bin`` / ``.bs2`` files (N-MNIST, N-Caltech101, slayerPytorch samples).

Layout (see ``docs/formats.md`` §2.4): no header, 5 bytes per record, most
significant byte first:

=======  ======================  =========================
bits     bytes                   meaning
=======  ======================  =========================
39-32    byte 0                  x (column)
31-24    byte 1                  y (row)
23       byte 2 bit 7            polarity, 1 = ON
22-0     byte 2 bits 6-0, 3, 4   timestamp, microseconds
=======  ======================  =========================

A record with ``y == 240`` is a timestamp-overflow marker, not an event: it is
removed, and every later record gets ``2**23`` us added per preceding marker.
The published readers (Orchard's ``eventvision.py``, tonic's
``read_mnist_file``) add ``2**13``, surely a typo for ``2**23`` (the width of
the timestamp field); this reader adds ``2**23``. The real N-MNIST samples
contain no markers (recordings last ~0.3 s, far below 2**23 us), so both agree
on them. The number of markers is ``metadata["overflow_markers"]``.

Because of the marker convention, row 240 cannot be stored: a file holds
``y`` in 0..239 and 241..255 and ``x`` in 0..255.

Sensor size: the file does not record it. ``read(path)`` uses
``(max x + 1, max y + 1)`` of the events (``metadata["sensor_size_from"] ==
"extent"``); N-Caltech101 samples have a varying extent, so dataset layouts
pass the dataset's sensor size explicitly (``sensor_size=(34, 34)`` for
N-MNIST), and then an event outside it is a :class:`FormatError` naming the
byte offset of its record.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import numpy as np

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import Recording, check_in_sensor, events_to_write, recording_from_absolute
from tmkt_data.formats import FORMATS
from tmkt_data.formats._io import atomic_write_bytes, read_file_bytes

NAME = "atis_bin"
EXTENSIONS = (".bin", ".bs2")

RECORD_BYTES = 5
#: ``y`` value of a timestamp-overflow marker record.
OVERFLOW_Y = 240
#: Timestamp increment per overflow marker (the 23-bit field wraps).
OVERFLOW_US = 1 << 23
_TS_MASK = OVERFLOW_US - 1


def sniff(head: bytes) -> bool:
    """Always False: the format has no magic bytes (claimed by extension only)."""
    return False


def decode_records(data: bytes) -> dict[str, np.ndarray]:
    """Split whole 5-byte records into raw ``x``, ``y``, ``p``, ``ts`` (23-bit) arrays (int64)."""
    raw = np.frombuffer(data, dtype=np.uint8, count=(len(data) // RECORD_BYTES) * RECORD_BYTES)
    raw = raw.reshape(-1, RECORD_BYTES).astype(np.int64)
    return {
        "x": raw[:, 0],
        "y": raw[:, 1],
        "p": raw[:, 2] >> 7,
        "ts": ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4],
    }


def read(path: str | os.PathLike[str], *, sensor_size: tuple[int, int] | None = None) -> Recording:
    """Read an ATIS 40-bit event file.

    Args:
        path: the file.
        sensor_size: (width, height) to use; every event must lie inside it.
            ``None`` means ``(max x + 1, max y + 1)`` of the events.

    Returns:
        A :class:`Recording`; ``t0_abs`` is the first event's (overflow-corrected)
        file timestamp. ``metadata``: ``records`` (records in the file, markers
        included), ``overflow_markers``, ``sensor_size_from`` (``"option"`` or
        ``"extent"``), ``sha256``.

    Raises:
        FormatError: empty file, length not a multiple of 5 (offset of the
            partial record), an event outside ``sensor_size``, or no events at
            all when ``sensor_size`` is not given.
    """
    data = read_file_bytes(path)
    n, rem = divmod(len(data), RECORD_BYTES)
    if rem:
        raise FormatError(
            path,
            f"file of {len(data)} bytes ends with a partial record of {rem} bytes, "
            f"expected whole {RECORD_BYTES}-byte ATIS records",
            offset=n * RECORD_BYTES,
        )
    rec = decode_records(data)
    marker = rec["y"] == OVERFLOW_Y
    n_markers = int(np.count_nonzero(marker))
    t_abs = rec["ts"]
    if n_markers:
        t_abs = t_abs + np.cumsum(marker, dtype=np.int64) * OVERFLOW_US
    keep = ~marker
    x, y = rec["x"][keep], rec["y"][keep]

    if sensor_size is not None:
        w, h = int(sensor_size[0]), int(sensor_size[1])
        if w <= 0 or h <= 0:
            raise EventsError(
                f"sensor_size {tuple(sensor_size)} is not positive, expected (width, height) >= 1"
            )
        bad = keep & ((rec["x"] >= w) | (rec["y"] >= h))
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(
                path,
                f"event at (x={int(rec['x'][i])}, y={int(rec['y'][i])}) is outside the given sensor of "
                f"width {w} and height {h}",
                offset=i * RECORD_BYTES,
            )
        size_from = "option"
    else:
        if x.size == 0:
            raise FormatError(
                path,
                f"no events ({n} records, all overflow markers), so no sensor size can be inferred; "
                "pass sensor_size",
            )
        w, h = int(x.max()) + 1, int(y.max()) + 1
        size_from = "extent"

    meta: dict[str, Any] = {
        "records": n,
        "overflow_markers": n_markers,
        "sensor_size_from": size_from,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return recording_from_absolute(
        t_abs[keep],
        x,
        y,
        rec["p"][keep],
        sensor_size=(w, h),
        source_format=NAME,
        path=str(path),
        metadata=meta,
    )


def encode(events: np.ndarray, *, t0_abs: int = 0, max_markers: int | None = None) -> bytes:
    """Encode events (fields ``t``, ``x``, ``y``, ``p``) as ATIS records, overflow markers included.

    Events are stably sorted by time; the absolute time ``t + t0_abs`` must be
    >= 0. Before each event, one marker (``x=0, y=240, p=0, ts=0``) is written
    for each ``2**23`` us boundary crossed since the previous event (or since 0).
    ``max_markers`` (default ``max(len(events), 2**20)``) bounds the markers, so an
    absurd ``t0_abs`` cannot produce a giant file.
    """
    ev = events_to_write(events)
    n = ev.shape[0]
    t_abs = ev["t"].astype(np.int64) + int(t0_abs)
    x = ev["x"].astype(np.int64)
    y = ev["y"].astype(np.int64)
    if n:
        if int(t_abs[0]) < 0:
            raise EventsError(f"first timestamp t + t0_abs = {int(t_abs[0])} is negative, expected >= 0")
        if int(x.min()) < 0 or int(y.min()) < 0 or int(x.max()) > 255 or int(y.max()) > 255:
            raise EventsError("ATIS records hold x and y in 0..255; events to write are outside that range")
        rows240 = y == OVERFLOW_Y
        if rows240.any():
            i = int(np.argmax(rows240))
            raise EventsError(
                f"event {i} has y=240, which ATIS files reserve for timestamp-overflow markers; "
                "expected y in 0..239 or 241..255"
            )
    epoch = t_abs >> 23
    n_markers = int(epoch[-1]) if n else 0
    limit = max(n, 1 << 20) if max_markers is None else int(max_markers)
    if n_markers > limit:
        raise EventsError(
            f"timestamps up to {int(t_abs[-1])} us would need {n_markers} overflow markers "
            f"(more than {limit}); pass a smaller t0_abs"
        )
    out = np.zeros((n + n_markers, RECORD_BYTES), dtype=np.uint8)
    out[:, 1] = OVERFLOW_Y  # every row is a marker until an event fills it
    pos = np.arange(n, dtype=np.int64) + epoch
    ts = t_abs & _TS_MASK
    out[pos, 0] = x
    out[pos, 1] = y
    out[pos, 2] = (((ev["p"] > 0).astype(np.int64) << 7) | (ts >> 16)).astype(np.uint8)
    out[pos, 3] = ((ts >> 8) & 0xFF).astype(np.uint8)
    out[pos, 4] = (ts & 0xFF).astype(np.uint8)
    return out.tobytes()


def write(
    path: str | os.PathLike[str], events: np.ndarray, sensor_size: tuple[int, int], *, t0_abs: int = 0
) -> None:
    """Write events as an ATIS 40-bit file (atomically: temporary file, then rename).

    Args:
        path: the file to create or replace.
        events: structured array with fields ``t``, ``x``, ``y``, ``p``.
        sensor_size: (width, height); every event must lie inside it (it is not
            stored in the file).
        t0_abs: added to ``events["t"]`` to give the stored timestamps.

    Raises:
        EventsError: missing fields, events outside ``sensor_size``, x or y
            above 255, ``y == 240`` (reserved for overflow markers), negative
            absolute time, or a time span needing an absurd number of markers.
    """
    events = np.asarray(events)
    if events.dtype.names is not None and {"x", "y"} <= set(events.dtype.names):
        check_in_sensor(events, sensor_size, what="events to write")
    atomic_write_bytes(path, encode(events, t0_abs=t0_abs))


FORMATS.register(NAME, sys.modules[__name__])
