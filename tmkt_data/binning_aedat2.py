"""Frames counted straight from the bytes of an AEDAT 2.0 / 1.0 file, without an event array.

:func:`read_frames` gives exactly what :func:`tmkt_data.formats.aedat2.read` followed by
:func:`tmkt_data.binning.to_frames` (``n_event_bins`` / ``n_time_bins``, ``overlap=0``) gives, for
the common file (every record a DVS event inside the chip, timestamps never going back); any
other file gives None. The record layout is ``docs/formats.md`` §2.1, the binning rules §5.3.
``convert`` calls it as ``tmkt_data.formats.aedat2.read_frames`` (re-exported there).

The record decoding kernels (``_record``, ``_orient``, ``_plain_break``) and the file opening
(``_open``) are the reader's, in :mod:`tmkt_data.formats.aedat2`. numba's on-disk cache keys
:func:`_bin_plain` on this file only: after editing those kernels, touch this file (or clear
``__pycache__``) so the cached frames kernel is rebuilt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from tmkt_data.errors import EventsError
from tmkt_data.formats.aedat2 import _ORIENT_CODE, CHIPS, _be32, _open, _orient, _plain_break, _record

__all__ = ["FileFrames", "read_frames"]

#: records decoded per block by :func:`_bin_plain` before their cells are incremented
_BIN_BLOCK = 4096


@numba.njit(nogil=True, cache=True, inline="always")
def _bin_records(body, rec_size, davis, w, h, orient, by_time, n_frames, clamp, out):  # pragma: no cover
    """The loop of :func:`_bin_plain` with a constant ``rec_size``."""
    n = body.shape[0] // rec_size
    t_off = np.uint64(rec_size - 4)
    t_first = _be32(body, t_off)
    t_last = _be32(body, np.uint64(n - 1) * np.uint64(rec_size) + t_off)
    width = h if orient == 3 else w  # the oriented sensor
    plane = np.int64(width) * (w if orient == 3 else h)
    fsize = 2 * plane
    # frame k holds q in [k * d, (k + 1) * d), q = t - t_first (time) or the event index
    d = (t_last - t_first) // n_frames if by_time else np.int64(n // n_frames)
    k = 0 if d > 0 else n_frames  # d = 0: every frame is empty, the last one holds all with clamp
    bound = d
    base = np.int64(0) if d > 0 else (n_frames - 1) * fsize
    cells = np.empty(_BIN_BLOCK, dtype=np.int64)
    prev = t_first
    binned = 0
    for b0 in range(0, n, _BIN_BLOCK):
        m = 0
        for i in range(np.uint64(b0), np.uint64(min(b0 + _BIN_BLOCK, n))):
            a, t, rx, ry, p = _record(body, i * np.uint64(rec_size), rec_size, davis)
            if _plain_break(a, t, prev, rx, ry, davis, w, h):
                return np.int64(i), t_first, t_last, binned
            prev = t
            q = t - t_first if by_time else np.int64(i)
            if q >= bound and k < n_frames:  # next frame(s)
                while q >= bound and k < n_frames:
                    k += 1
                    bound += d
                    base += fsize
                if k == n_frames:  # past the last frame: the remainder
                    base = (n_frames - 1) * fsize
            if k == n_frames and not clamp:
                continue
            x, y = _orient(rx, ry, w, h, orient)
            cells[m] = base + p * plane + y * width + x
            m += 1
        for j in range(m):  # scattered increments from a small, cache-resident list
            out[cells[j]] += 1
        binned += m
    return np.int64(n), t_first, t_last, binned


@numba.njit(nogil=True, cache=True)
def _bin_plain(body, rec_size, davis, w, h, orient, by_time, n_frames, clamp, out):  # pragma: no cover
    """Count the events of a plain file (see :func:`_decode_plain`) straight into frames.

    ``out`` is the flat C-order view of ``(n_frames, 2, H, W)`` counts (H, W the
    oriented sensor), zeroed here. Frames split the events by count (``by_time``
    False: ``n // n_frames`` events each) or by time (``(t_last - t_first) //
    n_frames`` us each) exactly as :func:`tmkt_data.binning.to_frames` with
    ``n_event_bins`` / ``n_time_bins`` and ``overlap=0``; ``clamp`` puts the
    remainder in the last frame (``remainder="last"``), else it is dropped.

    Returns ``(stop, t_first, t_last, n_binned)``; ``stop < n`` means the file is not
    plain (its record ``stop`` is special, goes back in time or lies outside the chip)
    and ``out`` is incomplete. Decoding and counting run in blocks: the cell indices
    of a block are computed first, then incremented, which is faster than decoding to
    events and binning them in two passes over memory.
    """
    out[:] = 0
    if body.shape[0] < rec_size:  # no record: nothing to count (read_frames returns None first)
        return np.int64(0), np.int64(0), np.int64(0), 0
    if rec_size == 8:
        return _bin_records(body, 8, davis, w, h, orient, by_time, n_frames, clamp, out)
    return _bin_records(body, 6, davis, w, h, orient, by_time, n_frames, clamp, out)


@dataclass(frozen=True)
class FileFrames:
    """Frames counted straight from a file by :func:`read_frames`.

    Attributes:
        frames: ``(T, 2, H, W)`` event counts (channel 0 OFF, 1 ON).
        sensor_size: (W, H) of the events, as :func:`~tmkt_data.formats.aedat2.read` gives it.
        n_events: events in the file.
        n_binned: events the frames hold (fewer than ``n_events`` when the
            remainder is dropped).
        t0_abs: the first event's timestamp in the file's clock (us).
        duration_us: last event time minus first event time.
        metadata: as :attr:`Recording.metadata` from ``aedat2.read`` (sha256 included).
    """

    frames: np.ndarray
    sensor_size: tuple[int, int]
    n_events: int
    n_binned: int
    t0_abs: int
    duration_us: int
    metadata: dict[str, Any]


def read_frames(
    path: str | os.PathLike[str],
    *,
    n_frames: int,
    split_by: str,
    remainder: str,
    chip: str = "auto",
    orientation: str = "auto",
    dtype: Any = np.float32,
) -> FileFrames | None:
    """Count a file's events into frames without decoding them to an event array first.

    Equal to ``to_frames(read(path, ...).events, sensor_size, n_event_bins=n_frames)``
    (``split_by="number"``) or ``n_time_bins=n_frames`` (``"time"``) with
    ``remainder`` and ``overlap=0``, for the common file: every record is a DVS
    event inside the chip and timestamps never go back (no wrap). Any other file
    (special records, a wrap, a backward step, a bad coordinate) or an empty one
    gives None: use :func:`~tmkt_data.formats.aedat2.read` and :func:`~tmkt_data.binning.to_frames`.

    Args:
        path, chip, orientation: as for ``aedat2.read``.
        n_frames: number of frames T.
        split_by: ``"number"`` (equal event counts) or ``"time"`` (equal durations).
        remainder: ``"last"`` (the last frame runs to the last event) or ``"drop"``.
        dtype: count dtype, ``float32`` or ``int32``.

    Raises:
        FormatError: as ``aedat2.read`` for a bad header or a partial trailing record.
        EventsError: bad ``n_frames``, ``split_by``, ``remainder`` or ``dtype``.
    """
    if not isinstance(n_frames, int | np.integer) or n_frames < 1:
        raise EventsError(f"n_frames must be a positive integer, got {n_frames!r}")
    if split_by not in ("number", "time"):
        raise EventsError(f"split_by must be 'number' or 'time', got {split_by!r}")
    if remainder not in ("last", "drop"):
        raise EventsError(f"remainder must be 'last' or 'drop', got {remainder!r}")
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.int32)):
        raise EventsError(f"dtype must be float32 or int32, got {dt}")
    f = _open(path, chip, orientation)
    n = f.n_records
    if n == 0:
        return None
    w, h = CHIPS[f.chip]
    sw, sh = f.sensor_size
    frames = np.empty((int(n_frames), 2, sh, sw), dtype=dt)
    stop, t_first, t_last, binned = _bin_plain(
        f.body,
        f.rec_size,
        f.chip != "dvs128",
        w,
        h,
        _ORIENT_CODE[f.orientation],
        split_by == "time",
        int(n_frames),
        remainder == "last",
        frames.reshape(-1),
    )
    if stop < n:
        return None
    meta = f.metadata(0, 0, False)
    return FileFrames(frames, f.sensor_size, n, int(binned), int(t_first), int(t_last - t_first), meta)
