"""Every event writer starts with :func:`tmkt_data.events.events_to_write`: the same one-line errors
for a missing field and an event outside the sensor (indexed in the order given), and no file left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tmkt_data import EventsError, make_events
from tmkt_data.events import events_to_write
from tmkt_data.formats import aedat2, aedat4, aedat31, atis_bin, hdf5_file, mat_file, numpy_file

WRITERS = {
    "aedat2": (aedat2.write, ".aedat"),
    "aedat31": (aedat31.write, ".aedat"),
    "aedat4": (aedat4.write, ".aedat4"),
    "atis_bin": (atis_bin.write, ".bin"),
    "npy": (numpy_file.write, ".npz"),
    "hdf5": (hdf5_file.write, ".h5"),
    "mat": (mat_file.write, ".mat"),
}


def test_events_to_write_checks_then_sorts() -> None:
    ev = make_events([5, 1, 3], [1, 2, 3], [0, 0, 0], [1, 0, 1], sort=False)
    assert events_to_write(ev, (8, 8))["t"].tolist() == [1, 3, 5]
    with pytest.raises(EventsError, match=r"^events to write: event 2 at \(x=9, y=0\)"):
        events_to_write(make_events([5, 1, 3], [1, 2, 9], [0, 0, 0], [1, 0, 1], sort=False), (8, 8))
    assert events_to_write(make_events([0], [9], [0], [1])).size == 1  # no sensor size: not checked


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_writers_share_the_missing_field_and_outside_errors(tmp_path: Path, fmt: str) -> None:
    write, suffix = WRITERS[fmt]
    path = tmp_path / f"x{suffix}"
    no_p = np.zeros(3, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2")])
    with pytest.raises(EventsError, match=r"^events lack field 'p', expected fields t, x, y, p$"):
        write(path, no_p, (128, 128))
    outside = make_events([5, 1, 3], [1, 2, 200], [0, 0, 0], [1, 0, 1], sort=False)
    with pytest.raises(EventsError, match=r"^events to write: event 2 at \(x=200, y=0\) is outside"):
        write(path, outside, (128, 128))
    assert list(tmp_path.iterdir()) == []
