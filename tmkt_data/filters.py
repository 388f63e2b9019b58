"""Event-level filters applied to a sample's events before binning (``tmkt-data convert --filter``).

A filter is written ``NAME=VALUE``; several run in the order given, each on
the output of the one before, and crop/downsample change the sensor size the
next filter (and binning) sees. ``convert`` runs them on each sample's events,
as tonic runs a dataset's transform on each sample: ``t`` counts from the
recording's first event, or from the start of a time slice (DVS Gesture,
N-Omniglot), so the start-up rules below apply per sample.

* ``denoise=FILTER_TIME_US`` equals ``tonic.functional.denoise_numpy`` (tonic
  1.7): events are visited in array order; each first stamps its own pixel
  with ``t + filter_time``, then survives when one of its four neighbours
  (left, right, up, down; not the pixel itself, not diagonals) holds a stamp
  ``> t``, i.e. that neighbour fired less than ``filter_time`` us earlier (or at
  the same time, if earlier in the array). tonic starts every stamp at
  ``filter_time`` rather than "never", so **every event with t < filter_time
  survives** when it has a neighbour inside the grid, and the grid is the
  events' own extent (``max(x) + 1`` by ``max(y) + 1``), not the sensor: a
  neighbour beyond the largest x (or y) present never counts. Of two
  neighbours firing at the same timestamp, only the later one in the array is
  supported by the other.
* ``refractory=PERIOD_US`` equals ``tonic.functional.refractory_period_numpy``:
  an event survives when ``t - t_last > period``, where ``t_last`` is the time of
  the previous event at the same pixel (either polarity) **whether or not that
  one survived**, so a pixel firing faster than the period stays silent. The
  first event of a pixel counts from ``t_last = -period``: it survives only
  when ``t > 0``, so events at t = 0 (the first microsecond of a recording)
  are dropped.
* ``crop=X0,Y0,W,H`` keeps ``X0 <= x < X0+W``, ``Y0 <= y < Y0+H`` and shifts the
  origin to (X0, Y0); the sensor becomes (W, H). Equals
  ``tonic.functional.crop_numpy`` (tonic's random crop) with its offset fixed
  at (X0, Y0). The box must lie inside the sensor.
* ``downsample=F`` maps ``x -> x // F``, ``y -> y // F`` and keeps every event
  (duplicates at one output pixel and time stay separate events, so frames
  count them all); the sensor becomes ``(ceil(W/F), ceil(H/F))``; time and
  polarity are unchanged. tonic's ``transforms.Downsample(spatial_factor=1/F)``
  computes ``trunc(x * (1/F))`` in float64 and leaves the sensor size to the
  user: equal for every F up to 48, but for some larger factors (49, 98, 103,
  107, ...) the rounded ``1/F`` sends ``x = k*F`` to ``k - 1``; this module
  uses the exact integer floor.

Timestamps are integer microseconds; denoise and refractory equal tonic's
float64 bookkeeping exactly for ``|t|`` below 2**53 us. Every kernel is one
Numba pass (``nogil``) that writes the surviving records straight into the
output array, keeping the input's dtype and order (denoise and refractory
first find the events' extent, downsample reads x // F from a table).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from tmkt_data.errors import EventsError, TmktError
from tmkt_data.events import check_in_sensor

__all__ = [
    "FILTER_NAMES",
    "EventFilter",
    "FilterError",
    "apply_filters",
    "crop",
    "denoise",
    "downsample",
    "filtered_sensor_size",
    "parse_filter",
    "parse_filters",
    "refractory",
]

#: filter name -> the value it expects (for messages and help)
FILTER_NAMES = {
    "denoise": "FILTER_TIME_US, a positive integer number of microseconds",
    "refractory": "PERIOD_US, a non-negative integer number of microseconds",
    "crop": "X0,Y0,W,H, integers with X0, Y0 >= 0 and W, H >= 1",
    "downsample": "F, a positive integer factor",
}


class FilterError(TmktError, ValueError):
    """A filter spec is malformed or does not fit the sensor."""


# --------------------------------------------------------------------------- kernels


@numba.njit(nogil=True, cache=True)
def _extent(ev):  # pragma: no cover - compiled
    """(max x + 1, max y + 1) of a non-empty record array."""
    mx = np.int64(0)
    my = np.int64(0)
    for i in range(ev.shape[0]):
        e = ev[i]
        mx = max(mx, np.int64(e.x))
        my = max(my, np.int64(e.y))
    return mx + 1, my + 1


@numba.njit(nogil=True, cache=True)
def _denoise_kernel(ev, filter_time, out):  # pragma: no cover - compiled
    """tonic's denoise into ``out``; returns the number of surviving events.

    Stamps live in a grid padded by one cell on each side; the padding holds the
    smallest int64, so neighbours outside the events' extent never support.
    """
    n = ev.shape[0]
    w, h = _extent(ev)
    pw = w + 2
    stamp = np.full((h + 2) * pw, np.iinfo(np.int64).min, dtype=np.int64)
    for yy in range(1, h + 1):
        stamp[yy * pw + 1 : yy * pw + 1 + w] = filter_time
    k = 0
    for i in range(n):
        e = ev[i]
        t = e.t
        q = (np.int64(e.y) + 1) * pw + np.int64(e.x) + 1
        stamp[q] = t + filter_time
        keep = (stamp[q - 1] > t) | (stamp[q + 1] > t) | (stamp[q - pw] > t) | (stamp[q + pw] > t)
        out[k] = e  # written always, kept by advancing k: no branch to mispredict
        k += np.int64(keep)
    return k


@numba.njit(nogil=True, cache=True)
def _refractory_kernel(ev, period, out):  # pragma: no cover - compiled
    """tonic's refractory period into ``out``; returns the number of surviving events."""
    n = ev.shape[0]
    w, h = _extent(ev)
    last = np.full(w * h, -period, dtype=np.int64)
    k = 0
    for i in range(n):
        e = ev[i]
        t = e.t
        q = np.int64(e.y) * w + np.int64(e.x)
        keep = t - last[q] > period
        last[q] = t
        out[k] = e
        k += np.int64(keep)
    return k


@numba.njit(nogil=True, cache=True)
def _crop_kernel(ev, x0, y0, w, h, out):  # pragma: no cover - compiled
    """Events inside ``[x0, x0+w) x [y0, y0+h)``, shifted to the box origin; returns their number."""
    k = 0
    uw = np.uint64(w)
    uh = np.uint64(h)
    for i in range(ev.shape[0]):
        e = ev[i]
        dx = np.int64(e.x) - x0
        dy = np.int64(e.y) - y0
        inside = (np.uint64(dx) < uw) & (np.uint64(dy) < uh)  # negative differences wrap to huge
        out[k] = e  # written always (wrapped outside the box), kept by advancing k
        out[k].x = dx
        out[k].y = dy
        k += np.int64(inside)
    return k


@numba.njit(nogil=True, cache=True)
def _downsample_kernel(ev, table, out):  # pragma: no cover - compiled
    """Every event with x, y replaced by ``table[x]``, ``table[y]`` (``table[v] = v // factor``)."""
    for i in range(ev.shape[0]):
        e = ev[i]
        out[i] = e
        out[i].x = table[np.int64(e.x)]
        out[i].y = table[np.int64(e.y)]


@numba.njit(nogil=True, cache=True)
def _downsample_txyp_kernel(ev, table, out):  # pragma: no cover - compiled
    """:func:`_downsample_kernel` for records with exactly the fields t, x, y, p: four field
    stores beat a whole-record copy plus two (downsample touches every event)."""
    for i in range(ev.shape[0]):
        e = ev[i]
        o = out[i]
        o.t = e.t
        o.x = table[np.int64(e.x)]
        o.y = table[np.int64(e.y)]
        o.p = e.p


# --------------------------------------------------------------------------- public functions


def _records(events: np.ndarray) -> np.ndarray:
    """Check ``events`` (fields t, x, y with integer types, non-negative coordinates); returns a
    C-contiguous 1-D array (a copy only when the input is not)."""
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise EventsError(
            f"events must be a numpy structured array with fields t, x, y, p, got {type(events).__name__}"
        )
    names = events.dtype.names
    missing = [f for f in ("t", "x", "y") if f not in names]
    if missing:
        raise EventsError(f"events lack field(s) {missing}; fields are {list(names)}")
    if events.ndim != 1:
        raise EventsError(f"events must be 1-D, got shape {events.shape}")
    for name in ("t", "x", "y"):
        kind = events.dtype.fields[name][0].kind
        if kind not in "iu":
            raise EventsError(f"field {name!r} must hold integers, got dtype {events.dtype.fields[name][0]}")
    ev = np.ascontiguousarray(events)
    if ev.size:
        for name in ("x", "y"):
            if ev.dtype.fields[name][0].kind == "i" and int(ev[name].min()) < 0:
                i = int(np.argmin(ev[name]))
                raise EventsError(f"events: event {i} has {name}={int(ev[name][i])}; expected >= 0")
    return ev


def _finish(out: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` records of ``out``: a view (numpy's copy of packed records would cost more
    than the filter; the buffer lives as long as the events do, as in any transient use)."""
    return out[:k]


@functools.lru_cache(maxsize=16)
def _division_table(factor: int, size: int) -> np.ndarray:
    """``v // factor`` for every ``0 <= v < size`` (read-only, shared)."""
    table = np.arange(size, dtype=np.int64) // factor
    table.flags.writeable = False
    return table


def denoise(events: np.ndarray, filter_time_us: int) -> np.ndarray:
    """Events supported by a 4-neighbour that fired less than ``filter_time_us`` before (tonic's
    ``denoise_numpy``, with its start-up and border rules: see the module docstring)."""
    ev = _records(events)
    if ev.size == 0:
        return ev.copy()
    out = np.empty_like(ev)
    return _finish(out, int(_denoise_kernel(ev, np.int64(filter_time_us), out)))


def refractory(events: np.ndarray, period_us: int) -> np.ndarray:
    """Events more than ``period_us`` after the previous event at their pixel (tonic's
    ``refractory_period_numpy``: the previous event counts even when it was dropped)."""
    ev = _records(events)
    if ev.size == 0:
        return ev.copy()
    out = np.empty_like(ev)
    return _finish(out, int(_refractory_kernel(ev, np.int64(period_us), out)))


def crop(events: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """Events inside ``box = (x0, y0, w, h)`` (pixels), with x, y counted from (x0, y0)."""
    x0, y0, w, h = (int(v) for v in box)
    ev = _records(events)
    out = np.empty_like(ev)
    if ev.size == 0:
        return out
    return _finish(out, int(_crop_kernel(ev, np.int64(x0), np.int64(y0), np.int64(w), np.int64(h), out)))


def downsample(events: np.ndarray, factor: int) -> np.ndarray:
    """Every event with ``x // factor``, ``y // factor`` (no event dropped or merged)."""
    if int(factor) < 1:
        raise FilterError(f"downsample factor {factor}: expected a positive integer")
    ev = _records(events)
    out = np.empty_like(ev)
    if ev.size == 0:
        return out
    fx, fy = ev.dtype.fields["x"][0], ev.dtype.fields["y"][0]
    if max(fx.itemsize, fy.itemsize) <= 2:  # every value of a 16-bit field has an entry
        size = 1 << (8 * max(fx.itemsize, fy.itemsize))
    else:
        size = max(_extent(ev))
    kernel = _downsample_txyp_kernel if set(ev.dtype.names) == {"t", "x", "y", "p"} else _downsample_kernel
    kernel(ev, _division_table(int(factor), int(size)), out)
    return out


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class EventFilter:
    """One parsed filter: ``name`` (a key of :data:`FILTER_NAMES`) and its integer ``args``."""

    name: str
    args: tuple[int, ...]

    @property
    def spec(self) -> str:
        """The canonical ``name=value`` text (what a store records)."""
        return f"{self.name}={','.join(str(a) for a in self.args)}"

    def sensor_size(self, sensor_size: tuple[int, int]) -> tuple[int, int]:
        """The (W, H) sensor after this filter; raises :class:`FilterError` for a crop outside it."""
        w, h = int(sensor_size[0]), int(sensor_size[1])
        if self.name == "crop":
            x0, y0, cw, ch = self.args
            if x0 + cw > w or y0 + ch > h:
                raise FilterError(
                    f"filter {self.spec!r}: the box x {x0}..{x0 + cw - 1}, y {y0}..{y0 + ch - 1} "
                    f"reaches outside the {w}x{h} sensor; expected X0+W <= {w} and Y0+H <= {h}"
                )
            return cw, ch
        if self.name == "downsample":
            f = self.args[0]
            return -(-w // f), -(-h // f)
        return w, h

    def apply(self, events: np.ndarray) -> np.ndarray:
        """This filter on ``events`` (a new array)."""
        if self.name == "denoise":
            return denoise(events, self.args[0])
        if self.name == "refractory":
            return refractory(events, self.args[0])
        if self.name == "crop":
            return crop(events, self.args)
        return downsample(events, self.args[0])


_INT = re.compile(r"\d+")


def parse_filter(spec: str) -> EventFilter:
    """Parse ``"denoise=5000"``, ``"refractory=1000"``, ``"crop=X0,Y0,W,H"`` or ``"downsample=2"``.

    Raises :class:`FilterError` (one line naming the spec and what was expected).
    """
    if not isinstance(spec, str) or "=" not in spec:
        raise FilterError(f"filter {spec!r}: expected NAME=VALUE with NAME one of {', '.join(FILTER_NAMES)}")
    name, value = (s.strip() for s in spec.split("=", 1))
    name = name.lower()
    if name not in FILTER_NAMES:
        raise FilterError(
            f"filter {spec!r}: unknown filter {name!r}; expected one of {', '.join(FILTER_NAMES)}"
        )
    parts = [p.strip() for p in value.split(",")]
    want = 4 if name == "crop" else 1
    if len(parts) != want or not all(_INT.fullmatch(p) for p in parts):
        raise FilterError(f"filter {spec!r}: expected {name}={FILTER_NAMES[name]}")
    args = tuple(int(p) for p in parts)
    low = {"denoise": (1,), "refractory": (0,), "crop": (0, 0, 1, 1), "downsample": (1,)}[name]
    if any(a < m for a, m in zip(args, low, strict=True)):
        raise FilterError(f"filter {spec!r}: expected {name}={FILTER_NAMES[name]}")
    return EventFilter(name, args)


def parse_filters(specs: Iterable[str] | None) -> tuple[EventFilter, ...]:
    """Parse several specs, keeping their order (the order they are applied in)."""
    if specs is None:
        return ()
    if isinstance(specs, str):
        specs = [specs]
    return tuple(parse_filter(s) for s in specs)


def filtered_sensor_size(filters: Sequence[EventFilter], sensor_size: tuple[int, int]) -> tuple[int, int]:
    """The (W, H) sensor after every filter in turn; checks each crop against the sensor it sees."""
    size = (int(sensor_size[0]), int(sensor_size[1]))
    for f in filters:
        size = f.sensor_size(size)
    return size


def apply_filters(
    events: np.ndarray, sensor_size: tuple[int, int], filters: Sequence[EventFilter]
) -> tuple[np.ndarray, tuple[int, int]]:
    """Run ``filters`` in order on ``events`` recorded on ``sensor_size`` (W, H).

    Returns the surviving events and the sensor they now lie on. Raises
    :class:`EventsError` when an input event lies outside ``sensor_size`` (a crop
    or downsample would otherwise hide it) and :class:`FilterError` for a crop
    outside the sensor.
    """
    size = (int(sensor_size[0]), int(sensor_size[1]))
    if not filters:
        return events, size
    ev = _records(events)
    if ev.size:
        w, h = _extent(ev)
        if w > size[0] or h > size[1]:
            check_in_sensor(ev, size)  # raises, naming the first such event
    events = ev
    for f in filters:
        size = f.sensor_size(size)
        events = f.apply(events)
    return events, size
