"""The canonical event type and the :class:`Recording` container.

Events are a numpy structured array with fields ``t`` (int64, microseconds,
relative to the first event of the recording), ``x``, ``y`` (uint16, pixel
column and row, origin top-left unless the reader says otherwise) and ``p``
(uint8, 0 = OFF, 1 = ON), sorted by ``t`` (stable, so equal timestamps keep
file order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tmkt_data.errors import EventsError

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])


def make_events(t, x, y, p, *, sort: bool = True) -> np.ndarray:
    """Build a canonical event array from four equally long 1-D sequences.

    ``p`` may be boolean, {0, 1} or {-1, +1}; anything > 0 becomes ON (1).
    With ``sort`` the result is stably sorted by ``t``.
    """
    t = np.asarray(t)
    n = t.shape[0]
    for name, arr in (("x", x), ("y", y), ("p", p)):
        if np.shape(arr) != (n,):
            raise EventsError(f"field {name!r} has shape {np.shape(arr)}, expected ({n},) like 't'")
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["t"] = t
    ev["x"] = x
    ev["y"] = y
    ev["p"] = np.asarray(p) > 0
    if sort:
        ev = sort_events(ev)
    return ev


def sort_events(events: np.ndarray) -> np.ndarray:
    """Return ``events`` stably sorted by ``t`` (the same array when already sorted)."""
    t = events["t"]
    if t.size < 2 or bool(np.all(t[1:] >= t[:-1])):
        return events
    return events[np.argsort(t, kind="stable")]


def is_sorted(t: np.ndarray) -> bool:
    """True when timestamps never decrease."""
    return t.size < 2 or bool(np.all(t[1:] >= t[:-1]))


def check_in_sensor(events: np.ndarray, sensor_size: tuple[int, int], what: str = "events") -> None:
    """Raise :class:`EventsError` naming the first event outside ``sensor_size`` (W, H)."""
    w, h = int(sensor_size[0]), int(sensor_size[1])
    if events.size == 0:
        return
    bad = (events["x"] >= w) | (events["y"] >= h)
    if bad.any():
        i = int(np.argmax(bad))
        raise EventsError(
            f"{what}: event {i} at (x={int(events['x'][i])}, y={int(events['y'][i])}) "
            f"is outside the sensor of width {w} and height {h}"
        )


def events_to_write(events: Any, sensor_size: tuple[int, int] | None = None) -> np.ndarray:
    """What every writer starts with: ``events`` (fields ``t``, ``x``, ``y``, ``p``), checked to lie
    inside ``sensor_size`` when it is given, stably sorted by ``t``.

    Raises:
        EventsError: a missing field (the first one named), or an event outside ``sensor_size``
            (:func:`check_in_sensor`, indexed in the order given).
    """
    events = np.asarray(events)
    for f in ("t", "x", "y", "p"):
        if events.dtype.names is None or f not in events.dtype.names:
            raise EventsError(f"events lack field {f!r}, expected fields t, x, y, p")
    if sensor_size is not None:
        check_in_sensor(events, sensor_size, what="events to write")
    return sort_events(events)


@dataclass
class Recording:
    """Events of one file with what is needed to interpret them.

    Attributes:
        events: canonical structured array (see :data:`EVENT_DTYPE`).
        sensor_size: (width, height) in pixels.
        source_format: name of the reader that produced it (``"atis_bin"``, ...).
        path: the file read, if any.
        t0_abs: absolute timestamp (us) of the first event in the file's own clock;
            ``events["t"] + t0_abs`` gives the file's timestamps back.
        metadata: reader-specific facts (orientation, stream, header fields, ...).
    """

    events: np.ndarray
    sensor_size: tuple[int, int]
    source_format: str
    path: str | None = None
    t0_abs: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.events.shape[0])

    @property
    def duration_us(self) -> int:
        """Time from the first to the last event, in microseconds (0 when < 2 events)."""
        t = self.events["t"]
        return int(t[-1] - t[0]) if t.size else 0

    def summary(self) -> dict[str, Any]:
        """Plain-JSON facts: format, sensor, count, duration (s), ON fraction, events/s."""
        n = len(self)
        on = int(np.count_nonzero(self.events["p"])) if n else 0
        dur = self.duration_us / 1e6
        return {
            "path": self.path,
            "format": self.source_format,
            "sensor_size": [int(self.sensor_size[0]), int(self.sensor_size[1])],
            "events": n,
            "duration_s": dur,
            "on": on,
            "off": n - on,
            "on_fraction": (on / n) if n else None,
            "events_per_s": (n / dur) if dur > 0 else None,
            "t0_abs_us": int(self.t0_abs),
        }


def recording_from_absolute(
    t_abs: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    *,
    sensor_size: tuple[int, int],
    source_format: str,
    path: str | None,
    metadata: dict[str, Any] | None = None,
) -> Recording:
    """Make a :class:`Recording` from absolute timestamps: sort, shift to the first event."""
    t_abs = np.asarray(t_abs, dtype=np.int64)
    ev = make_events(t_abs, x, y, p)
    t0 = int(ev["t"][0]) if ev.size else 0
    if t0:
        ev["t"] -= t0
    return Recording(
        ev, (int(sensor_size[0]), int(sensor_size[1])), source_format, path, t0, dict(metadata or {})
    )
