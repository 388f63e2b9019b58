"""Event-to-frame binning compatible with tonic ``ToFrame`` and spikingjelly.

:func:`to_frames` turns a structured event array (fields ``t`` in microseconds,
``x``, ``y``, ``p`` in {0, 1}; any field order, extra fields ignored) into a
``(T, 2, H, W)`` array of per-pixel event counts. Channel 0 holds OFF events,
channel 1 ON events.

Slicing (exactly one of):

* ``time_window`` (us): windows ``[a + k*s, a + k*s + window)`` with stride
  ``s = window - overlap`` (``overlap`` in us); ``a`` is ``start_time`` or the
  first timestamp, the end ``e`` is ``end_time`` or the last timestamp.
* ``event_count``: index windows ``[k*s, k*s + count)``, ``s = count - overlap``
  (``overlap`` in events).
* ``n_time_bins``: ``T`` windows of ``w = (t[-1] - t[0]) // T`` us (integer
  floor) enlarged by ``overlap`` (a fraction of a bin, ``0 <= overlap < 1``).
* ``n_event_bins``: ``T`` windows of ``n // T`` events, enlarged the same way.

``remainder="drop"`` reproduces ``tonic.functional.to_frame_numpy`` (tonic
1.7.0) bit for bit, including its integer/float arithmetic and left
``searchsorted`` boundaries, so events after the last full window are dropped
(with ``n_time_bins`` the dropped ones always include the last event, since the
last window ends at ``t[0] + T*w <= t[-1]``). ``remainder="last"``
reproduces spikingjelly's ``integrate_events_by_fixed_frames_number``
(``split_by="number"`` for ``n_event_bins``, ``"time"`` for ``n_time_bins``):
the last frame runs to the last event so none is lost.

Deliberate differences from the reference libraries:

* Empty input gives zeros of the requested dtype and shape ``(T, 2, H, W)``
  (T = the number of bins, or 1 for ``time_window``/``event_count``; with both
  ``start_time`` and ``end_time`` the window count follows from them), where
  tonic's ``ToFrame`` returns float64 ``(T, P, W, H)`` and ``to_frame_numpy``
  raises ``IndexError`` for the time modes.
* Empty bins give empty frames (spikingjelly raises ``IndexError``); all events
  at one timestamp give ``w = 0``: every ``n_time_bins`` frame is empty with
  ``remainder="drop"`` (as tonic), the last one holds them all with ``"last"``.
* Unsorted input is stably sorted by ``t`` first (tonic's ``searchsorted`` would
  silently give wrong slices).
* Coordinates outside the sensor (negative ones included, which tonic's
  ``np.add.at`` wraps to the far edge) and polarities other than 0/1 (tonic maps
  p = -1 to the last channel) raise :class:`~tmkt_data.errors.EventsError`.
* Options tonic ignores or mishandles raise: ``start_time``/``end_time`` with a
  mode other than ``time_window``, negative overlaps, ``overlap >= 1`` with
  ``n_event_bins`` (tonic slices from negative indices) and a zero
  ``time_window``/``event_count`` (tonic's truthiness test leaves the slices
  undefined). ``include_incomplete`` is ignored by the bin modes, as in tonic.
* ``t`` must be integer (microseconds); it is read as int64.

Kernels are Numba functions compiled with ``nogil=True``: one call bins one
sample on one core, and :func:`to_frames_many` runs samples on threads.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np

from tmkt_data.errors import EventsError
from tmkt_data.events import check_in_sensor

__all__ = ["OUTPUT_DTYPES", "to_frames", "to_frames_many"]

#: Output dtypes accepted by :func:`to_frames`.
OUTPUT_DTYPES = (np.int16, np.uint8, np.uint16, np.float32, np.float64)


# --------------------------------------------------------------------------- kernels


@numba.njit(nogil=True, cache=True)
def _searchsorted_left(ev, values):  # pragma: no cover - compiled
    """Left insertion index of each value in the sorted ``ev.t`` (like ``np.searchsorted``).

    Reads the record array in place (numpy would copy the strided field); int/float
    comparisons promote to float64 exactly as numpy's common-type search does.
    """
    n = ev.shape[0]
    out = np.empty(values.shape[0], dtype=np.int64)
    for j in range(values.shape[0]):
        v = values[j]
        a = np.uint64(0)
        b = np.uint64(n)
        while a < b:
            mid = (a + b) >> np.uint64(1)
            if ev[mid].t < v:
                a = mid + np.uint64(1)
            else:
                b = mid
        out[j] = a
    return out


@numba.njit(nogil=True, cache=True)
def _time_bin_bounds(ev, n_bins):  # pragma: no cover - compiled
    """Bounds of ``n_bins`` windows of ``(t[-1] - t[0]) // n_bins`` us from ``t[0]``.

    tonic's ``SliceByTimeBins`` with an integer overlap of 0, in the same int64
    arithmetic (``np.arange(T) * w + t0`` then ``+ w``).
    """
    t0 = ev[0].t
    w = (ev[ev.shape[0] - 1].t - t0) // n_bins
    starts = np.empty(n_bins, dtype=np.int64)
    ends = np.empty(n_bins, dtype=np.int64)
    for k in range(n_bins):
        starts[k] = k * w + t0
        ends[k] = starts[k] + w
    return _searchsorted_left(ev, starts), _searchsorted_left(ev, ends)


@numba.njit(nogil=True, cache=True)
def _accumulate(ev, lo, hi, width, height, out, maxv, saturate):  # pragma: no cover - compiled
    """Validate every event and add events ``lo[k]:hi[k]`` of ``ev`` to frame ``k`` of ``out``.

    ``ev`` is a record array with fields t, x, y, p; ``out`` the flat C-order view of
    a ``(T, 2, height, width)`` array, zeroed here; ``lo`` and ``hi`` are non-decreasing. An
    increment of a cell already at ``maxv`` counts as an overflow; it is skipped when
    ``saturate``, else stored with the dtype's wrap-around (int16, like numpy's
    ``add.at``).

    Returns ``(status, index, overflows)``: status 0 when every event is valid, else
    1 and the index of the first event that is out of order, outside the sensor or
    of polarity not in {0, 1} (the frames are then incomplete).

    The event loop runs over segments of events that belong to the same frames
    (one frame in the common case), with unsigned indices (no wrap-around code)
    and one combined, non-short-circuit validity test.
    """
    out[:] = 0
    n = ev.shape[0]
    nf = lo.shape[0]
    plane = height * width
    fsize = 2 * plane
    prev = ev[0].t
    ka = 0
    kb = 0
    overflows = 0
    i = 0
    while i < n:
        # frames containing event i: ka <= k < kb (hi[k] > i and lo[k] <= i)
        while ka < nf and hi[ka] <= i:
            ka += 1
        while kb < nf and lo[kb] <= i:
            kb += 1
        end = n
        if ka < nf and hi[ka] < end:
            end = hi[ka]
        if kb < nf and lo[kb] < end:
            end = lo[kb]
        if kb - ka == 1:
            base = np.uint64(ka * fsize)
            for j in range(np.uint64(i), np.uint64(end)):
                e = ev[j]
                ti = e.t
                xi = np.int64(e.x)
                yi = np.int64(e.y)
                pi = np.int64(e.p)
                if (ti < prev) | (xi >= width) | (yi >= height) | (pi > 1) | (xi < 0) | (yi < 0) | (pi < 0):
                    return 1, np.int64(j), overflows
                prev = ti
                q = base + np.uint64(pi * plane + yi * width + xi)
                v = out[q]
                if v >= maxv:
                    overflows += 1
                    if saturate:
                        continue
                out[q] = v + 1
        else:
            for j in range(np.uint64(i), np.uint64(end)):
                e = ev[j]
                ti = e.t
                xi = np.int64(e.x)
                yi = np.int64(e.y)
                pi = np.int64(e.p)
                if (ti < prev) | (xi >= width) | (yi >= height) | (pi > 1) | (xi < 0) | (yi < 0) | (pi < 0):
                    return 1, np.int64(j), overflows
                prev = ti
                off = np.uint64(pi * plane + yi * width + xi)
                for k in range(ka, kb):
                    q = np.uint64(k * fsize) + off
                    v = out[q]
                    if v >= maxv:
                        overflows += 1
                        if saturate:
                            continue
                    out[q] = v + 1
        i = end
    return 0, np.int64(-1), overflows


@numba.njit(nogil=True, cache=True)
def _count_over(ev, lo, hi, width, height, maxv):  # pragma: no cover - compiled
    """Cells of the ``(T, 2, height, width)`` frames whose true count exceeds ``maxv`` (valid events)."""
    nf = lo.shape[0]
    plane = height * width
    fsize = 2 * plane
    acc = np.zeros(nf * fsize, dtype=np.int64)
    for k in range(nf):
        for i in range(np.uint64(lo[k]), np.uint64(hi[k])):
            e = ev[i]
            acc[k * fsize + np.int64(e.p) * plane + np.int64(e.y) * width + np.int64(e.x)] += 1
    count = 0
    for j in range(acc.shape[0]):
        if acc[j] > maxv:
            count += 1
    return count


# --------------------------------------------------------------------------- argument checks


def _is_int(v: Any) -> bool:
    if type(v) is int:
        return True
    return isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)


def _is_real(v: Any) -> bool:
    if type(v) is int:
        return True
    return isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) and bool(np.isfinite(v))


def _parse_sensor_size(sensor_size: Sequence[int]) -> tuple[int, int]:
    try:
        dims = tuple(sensor_size)
    except TypeError:
        raise EventsError(f"sensor_size must be (W, H) or (W, H, 2), got {sensor_size!r}") from None
    if len(dims) not in (2, 3) or not all(_is_int(d) for d in dims):
        raise EventsError(f"sensor_size must be (W, H) or (W, H, 2) integers, got {sensor_size!r}")
    if len(dims) == 3 and int(dims[2]) != 2:
        raise EventsError(f"sensor_size polarity count must be 2 (or omitted), got {int(dims[2])}")
    w, h = int(dims[0]), int(dims[1])
    if w < 1 or h < 1:
        raise EventsError(f"sensor_size width and height must be >= 1, got {(w, h)}")
    return w, h


#: output dtype -> (largest count it holds, whether larger counts saturate rather than wrap)
_DTYPE_LIMITS: dict[np.dtype, tuple[Any, bool]] = {
    np.dtype(d): (
        (np.dtype(d).type(np.inf), False)
        if np.dtype(d).kind == "f"
        else (np.dtype(d).type(np.iinfo(d).max), np.dtype(d).kind == "u")
    )
    for d in OUTPUT_DTYPES
}


def _parse_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise EventsError(f"dtype {dtype!r} is not a numpy dtype") from None
    if dt not in _DTYPE_LIMITS:
        names = ", ".join(np.dtype(d).name for d in OUTPUT_DTYPES)
        raise EventsError(f"dtype must be one of {names}, got {dt}")
    return dt


#: structured dtypes the kernels read in place (filled on first use)
_DIRECT_DTYPES: dict[np.dtype, bool] = {}


def _as_records(events: Any) -> np.ndarray:
    """The events as a record array the kernels can read, without copying when possible.

    The input is used in place when ``t`` is native int64, ``x``/``y`` native integers,
    ``p`` a native integer or bool and every other field a plain native number;
    otherwise the four fields are copied into a compact array (``t`` as int64).
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise EventsError(
            f"events must be a numpy structured array with fields t, x, y, p, got {type(events).__name__}"
        )
    if type(events) is np.ndarray and events.ndim == 1 and _DIRECT_DTYPES.get(events.dtype):
        return events
    names = events.dtype.names
    missing = [f for f in ("t", "x", "y", "p") if f not in names]
    if missing:
        raise EventsError(f"events lack field(s) {missing}; fields are {list(names)}")
    if events.ndim != 1:
        raise EventsError(f"events must be 1-D, got shape {events.shape}")
    fields = {f: events.dtype.fields[f][0] for f in names}
    for name, kinds, what in (
        ("t", "iu", "integer microseconds"),
        ("x", "iu", "an integer pixel index"),
        ("y", "iu", "an integer pixel index"),
        ("p", "iub", "an integer or bool polarity (0 = OFF, 1 = ON)"),
    ):
        if fields[name].kind not in kinds or fields[name].shape != ():
            raise EventsError(f"field {name!r} must hold {what}, got dtype {fields[name]}")
    simple = all(d.kind in "biuf" and d.shape == () and d.isnative for d in fields.values())
    if simple and fields["t"] == np.int64:
        _DIRECT_DTYPES[events.dtype] = True
        return events if type(events) is np.ndarray else events.view(np.ndarray)
    compact = np.dtype([("t", np.int64)] + [(f, fields[f].newbyteorder("=")) for f in ("x", "y", "p")])
    out = np.empty(events.shape[0], dtype=compact)
    for f in ("t", "x", "y", "p"):
        out[f] = events[f]
    return out


def _raise_bad_event(events: np.ndarray, w: int, h: int) -> None:
    """Raise :class:`EventsError` for the first event outside the sensor or with p not in {0, 1}."""
    x, y, p = events["x"], events["y"], events["p"]
    bad_xy = (x >= w) | (y >= h)
    for a in (x, y):
        if a.dtype.kind == "i":
            bad_xy |= a < 0
    bad_p = np.zeros(events.shape[0], dtype=bool) if p.dtype.kind == "b" else (p > 1) | (p < 0)
    i_xy = int(np.argmax(bad_xy)) if bad_xy.any() else events.shape[0]
    i_p = int(np.argmax(bad_p)) if bad_p.any() else events.shape[0]
    if i_xy < i_p:
        if not (x < 0).any() and not (y < 0).any():
            check_in_sensor(events, (w, h))  # raises, naming event i_xy
        raise EventsError(
            f"events: event {i_xy} at (x={int(x[i_xy])}, y={int(y[i_xy])}) "
            f"is outside the sensor of width {w} and height {h}"
        )
    if i_p < events.shape[0]:
        raise EventsError(f"events: event {i_p} has polarity p={int(p[i_p])}; expected 0 (OFF) or 1 (ON)")
    raise AssertionError("binning kernel flagged a valid event")  # pragma: no cover


# --------------------------------------------------------------------------- window bounds


def _clip_bounds(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum(lo, n).astype(np.int64), np.minimum(hi, n).astype(np.int64)


def _frame_bounds(
    ev: np.ndarray,
    mode: str,
    size: Any,
    overlap: Any,
    include_incomplete: bool,
    start_time: Any,
    end_time: Any,
    remainder: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Event index bounds ``[lo[k], hi[k])`` of each frame, with tonic 1.7.0's arithmetic.

    The expressions follow ``tonic/slicers.py`` literally (same operand types and
    order), so float overlaps round the same way.
    """
    n = ev.shape[0]
    t = ev["t"]  # a view; only scalars are read from it
    if mode == "time_window":
        # tonic SliceByTime.get_slice_metadata
        if n == 0 and (start_time is None or end_time is None):
            return np.zeros(1, np.int64), np.zeros(1, np.int64)
        stride = size - overlap
        start = t[0] if start_time is None else start_time
        end = t[-1] if end_time is None else end_time
        duration = end - start
        if include_incomplete:
            n_slices = int(np.ceil((duration - size) / stride) + 1)
        else:
            n_slices = int(np.floor((duration - size) / stride) + 1)
        n_slices = max(n_slices, 1)
        starts = np.arange(n_slices) * stride + start
        ends = starts + size
        return _searchsorted_left(ev, np.asarray(starts)), _searchsorted_left(ev, np.asarray(ends))
    if mode == "event_count":
        # tonic SliceByEventCount.get_slice_metadata
        count = min(size, n)
        stride = size - overlap
        if include_incomplete:
            n_slices = int(np.ceil((n - count) / stride) + 1)
        else:
            n_slices = int(np.floor((n - count) / stride) + 1)
        starts = (np.arange(n_slices) * stride).astype(int)
        return _clip_bounds(starts, starts + count, n)
    if mode == "n_time_bins":
        # tonic SliceByTimeBins.get_slice_metadata; spikingjelly split_by="time"
        if n == 0:
            return np.zeros(size, np.int64), np.zeros(size, np.int64)
        if type(overlap) is int and overlap == 0:
            lo, hi = _time_bin_bounds(ev, size)
            if remainder == "last":
                hi[-1] = n
            return lo, hi
        time_window = (t[-1] - t[0]) // size * (1 + overlap)
        stride = time_window * (1 - overlap)
        starts = np.arange(size) * stride + t[0]
        ends = starts + time_window
        lo, hi = _searchsorted_left(ev, np.asarray(starts)), _searchsorted_left(ev, np.asarray(ends))
    else:
        # tonic SliceByEventBins.get_slice_metadata; spikingjelly split_by="number"
        spike_count = int(n // size * (1 + overlap))
        stride = int(spike_count * (1 - overlap))
        starts = np.arange(size) * stride
        lo, hi = _clip_bounds(starts, starts + spike_count, n)
    if remainder == "last":
        hi[-1] = n
    return lo, hi


def _check_options(
    modes: dict[str, Any],
    overlap: Any,
    start_time: Any,
    end_time: Any,
    remainder: str,
) -> tuple[str, Any]:
    given = {k: v for k, v in modes.items() if v is not None}
    if len(given) != 1:
        names = ", ".join(modes)
        got = ", ".join(given) or "none"
        raise EventsError(f"give exactly one of {names}; got {got}")
    mode, size = next(iter(given.items()))
    if mode == "time_window":
        if not _is_real(size) or size <= 0:
            raise EventsError(f"time_window must be a positive number of microseconds, got {size!r}")
    elif not _is_int(size) or size < 1:
        raise EventsError(f"{mode} must be a positive integer, got {size!r}")
    else:
        size = int(size)
    if not _is_real(overlap) or overlap < 0:
        raise EventsError(f"overlap must be a non-negative number, got {overlap!r}")
    if mode in ("time_window", "event_count") and overlap >= size:
        unit = "us" if mode == "time_window" else "events"
        raise EventsError(f"overlap ({overlap} {unit}) must be smaller than {mode} ({size})")
    if mode in ("n_time_bins", "n_event_bins") and overlap >= 1:
        raise EventsError(f"overlap for {mode} is a fraction of a bin and must be < 1, got {overlap!r}")
    for name, v in (("start_time", start_time), ("end_time", end_time)):
        if v is None:
            continue
        if mode != "time_window":
            raise EventsError(f"{name} only applies to time_window, not {mode}")
        if not _is_real(v):
            raise EventsError(f"{name} must be a number of microseconds, got {v!r}")
    if remainder not in ("drop", "last"):
        raise EventsError(f"remainder must be 'drop' or 'last', got {remainder!r}")
    if remainder == "last":
        if mode not in ("n_time_bins", "n_event_bins"):
            raise EventsError(f"remainder='last' needs n_time_bins or n_event_bins, not {mode}")
        if overlap != 0:
            raise EventsError(f"remainder='last' needs overlap=0, got overlap={overlap!r}")
    return mode, size


# --------------------------------------------------------------------------- public API


def to_frames(
    events: np.ndarray,
    sensor_size: Sequence[int],
    *,
    n_time_bins: int | None = None,
    n_event_bins: int | None = None,
    time_window: float | None = None,
    event_count: int | None = None,
    overlap: float = 0,
    include_incomplete: bool = False,
    start_time: float | None = None,
    end_time: float | None = None,
    remainder: str = "drop",
    dtype: Any = np.int16,
    return_saturation: bool = False,
) -> np.ndarray | tuple[np.ndarray, int]:
    """Count events per pixel, polarity and frame.

    Args:
        events: structured array with fields ``t`` (integer us), ``x``, ``y``
            (integer pixels) and ``p`` (0 = OFF, 1 = ON, or bool); any field order.
            Unsorted input is stably sorted by ``t`` first.
        sensor_size: ``(W, H)`` or ``(W, H, 2)`` in pixels.
        n_time_bins: number of frames of equal duration ``(t[-1] - t[0]) // T`` us.
        n_event_bins: number of frames of ``n // T`` events each.
        time_window: frame duration in us.
        event_count: events per frame.
        overlap: us for ``time_window``, events for ``event_count``, a fraction of a
            bin in ``[0, 1)`` for the bin modes.
        include_incomplete: keep the last partial window (``time_window`` and
            ``event_count`` only; ignored by the bin modes, as in tonic).
        start_time, end_time: window range in us for ``time_window`` (default: first
            and last timestamps).
        remainder: ``"drop"`` (tonic) or ``"last"`` (spikingjelly: the last frame
            runs to the end; bin modes with ``overlap=0`` only).
        dtype: int16 (tonic; wraps above 32767), uint8 / uint16 (saturate at the
            dtype's maximum), float32 or float64.
        return_saturation: also return the number of output cells whose true count
            exceeded the dtype's maximum (saturated or, for int16, wrapped; 0 for floats).

    Returns:
        ``(T, 2, H, W)`` counts, or ``(frames, n_saturated_cells)``.

    Raises:
        EventsError: bad options, fields, coordinates outside the sensor, p not in {0, 1}.
    """
    w, h = _parse_sensor_size(sensor_size)
    modes = {
        "time_window": time_window,
        "event_count": event_count,
        "n_time_bins": n_time_bins,
        "n_event_bins": n_event_bins,
    }
    mode, size = _check_options(modes, overlap, start_time, end_time, remainder)
    out_dtype = _parse_dtype(dtype)
    maxv, saturate = _DTYPE_LIMITS[out_dtype]

    ev = _as_records(events)
    for _attempt in range(2):
        lo, hi = _frame_bounds(ev, mode, size, overlap, include_incomplete, start_time, end_time, remainder)
        if ev.shape[0] == 0:
            frames = np.zeros((lo.shape[0], 2, h, w), dtype=out_dtype)
            return (frames, 0) if return_saturation else frames
        # np.empty reuses freed heap memory; np.zeros would map fresh pages, each
        # faulting on the kernel's first scattered write. The kernel zeroes it.
        frames = np.empty((lo.shape[0], 2, h, w), dtype=out_dtype)
        status, j, overflows = _accumulate(ev, lo, hi, w, h, frames.reshape(-1), maxv, saturate)
        if status == 0:
            break
        t = ev["t"]
        if j == 0 or t[j] >= t[j - 1]:
            # invalid event: report the first one in the caller's order
            _raise_bad_event(events, w, h)
        ev = ev[np.argsort(t, kind="stable")]
    else:  # pragma: no cover - sorted events are never out of order
        raise AssertionError("events still out of order after sorting")
    if not return_saturation:
        return frames
    n_saturated = 0 if overflows == 0 else int(_count_over(ev, lo, hi, w, h, int(maxv)))
    return frames, n_saturated


def to_frames_many(
    events_list: Sequence[np.ndarray],
    sensor_size: Sequence[int],
    *,
    workers: int | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Apply :func:`to_frames` to each sample, ``workers`` threads at a time.

    The kernels release the GIL, so threads bin samples in parallel. ``workers``
    defaults to ``ThreadPoolExecutor``'s default; 1 runs in the calling thread.
    Returns a list in input order (shapes may differ with ``time_window``).
    """
    if workers is not None and (not _is_int(workers) or workers < 1):
        raise EventsError(f"workers must be a positive integer or None, got {workers!r}")
    items = list(events_list)
    if workers == 1 or len(items) <= 1:
        return [to_frames(ev, sensor_size, **kwargs) for ev in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda ev: to_frames(ev, sensor_size, **kwargs), items))
