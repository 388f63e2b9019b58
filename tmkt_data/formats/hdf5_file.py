"""HDF5 event files (``.h5``, ``.hdf5``), read with h5py.

Accepted event tables:

* a compound dataset with fields for time, x, y and polarity (any order), or
* a group holding 1-D datasets for them (e.g. DSEC/Prophesee-style
  ``events/{t,x,y,p}``, event_utils-style ``events/{ts,xs,ys,ps}``).

Field names are those of :mod:`tmkt_data.formats.numpy_file` (``t``, ``ts``,
``timestamp``, ``timestamps``; ``x``/``xs``; ``y``/``ys``; ``p``, ``ps``,
``polarity``, ``pol``), and values are validated the same way (integral
coordinates, polarity {0, 1}, {-1, +1} or boolean, ``time_unit``).

Table lookup: ``key`` (a dataset or group path) when given; otherwise the
object named ``events`` at the root, then the root group itself if it holds the
columns, then the first compound dataset (in sorted name order, depth first)
with event fields, then the first group with event columns.

Sensor size: the ``sensor_size`` option; else attributes ``sensor_size``
(``(W, H)`` or ``(W, H, 2)``) or ``width`` + ``height`` on the table, then on
the file root; else ``(max x + 1, max y + 1)``.

Every h5py failure (not HDF5, corrupt metadata, unreadable data) becomes a
:class:`FormatError`. A dataset declaring more than 1100 times the file size
in data (and over 64 MiB) is refused before reading, so a corrupt dataspace
cannot trigger a giant allocation.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import Recording, check_in_sensor
from tmkt_data.formats import FORMATS
from tmkt_data.formats._io import atomic_path, finish_atomic
from tmkt_data.formats.numpy_file import (
    ALIASES,
    TIME_UNITS,
    canonical_columns,
    check_file,
    file_sha256,
    has_event_names,
    parse_sensor_size,
    recording_from_columns,
    resolve_names,
)

NAME = "hdf5"
EXTENSIONS = (".h5", ".hdf5")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_MAX_RATIO = 1100
_SMALL = 64 * 1024**2


def sniff(head: bytes) -> bool:
    """True when ``head`` starts with the HDF5 signature (no user block)."""
    return head.startswith(HDF5_MAGIC)


class _H5Fail(Exception):
    """Internal: an h5py call failed; carries a description."""


def _h5(call, what: str):
    """Run an h5py call, turning any library failure into :class:`_H5Fail`."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except FormatError:
        raise
    except Exception as err:  # h5py raises OSError, KeyError, ValueError, RuntimeError, TypeError, ...
        raise _H5Fail(f"{what}: {type(err).__name__}: {err}") from None


def _is_compound_table(obj) -> bool:
    import h5py

    return isinstance(obj, h5py.Dataset) and obj.dtype.names is not None and has_event_names(obj.dtype.names)


def _is_column_group(obj) -> bool:
    import h5py

    if not isinstance(obj, h5py.Group):
        return False
    names = [k for k in obj.keys() if isinstance(obj.get(k, getlink=False), h5py.Dataset)]
    return has_event_names(names)


def _find_table(f, key: str | None, path: Path):
    import h5py

    if key is not None:
        obj = _h5(lambda: f.get(key), f"cannot open {key!r}")
        if obj is None:
            raise FormatError(path, f"no object {key!r} in the file, expected an event dataset or group")
        if isinstance(obj, h5py.Dataset) and obj.dtype.names is not None:
            return obj
        if isinstance(obj, h5py.Group):
            return obj
        raise FormatError(
            path,
            f"{key!r} is a {type(obj).__name__} of dtype {getattr(obj, 'dtype', None)}, "
            "expected a compound dataset or a group of t/x/y/p datasets",
        )
    ev = _h5(lambda: f.get("events"), "cannot open 'events'")
    if ev is not None and (_is_compound_table(ev) or _is_column_group(ev)):
        return ev
    if _is_column_group(f):
        return f
    found: list = []

    def visit(name, obj):
        if not found and _is_compound_table(obj):
            found.append(obj)

    _h5(lambda: f.visititems(visit), "cannot walk the file")
    if not found:

        def visit_groups(name, obj):
            if not found and _is_column_group(obj):
                found.append(obj)

        _h5(lambda: f.visititems(visit_groups), "cannot walk the file")
    if found:
        return found[0]
    raise FormatError(
        path,
        "no event table: expected a compound dataset or a group with datasets for "
        + "; ".join(f"{c}: {'/'.join(a)}" for c, a in ALIASES.items()),
    )


def _check_size(dset, path: Path, fsize: int) -> None:
    nbytes = int(dset.size or 0) * dset.dtype.itemsize
    if nbytes > _SMALL and nbytes > _MAX_RATIO * fsize:
        raise FormatError(
            path,
            f"dataset {dset.name!r} declares shape {dset.shape} ({nbytes} bytes), implausible for a "
            f"{fsize}-byte file",
        )


def _check_numeric(dtype: np.dtype, name: str, path: Path, where: str) -> None:
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise FormatError(path, f"{where}: {name!r} has dtype {dtype}, expected numbers or booleans")


def _sensor_from_attrs(obj, path: Path, where: str) -> tuple[int, int] | None:
    attrs = _h5(lambda: dict(obj.attrs), f"cannot read the attributes of {where}")
    if "sensor_size" in attrs:
        return parse_sensor_size(attrs["sensor_size"], path, f"{where} attribute")
    if "width" in attrs and "height" in attrs:
        wv, hv = np.asarray(attrs["width"]), np.asarray(attrs["height"])
        if wv.size != 1 or hv.size != 1:
            raise FormatError(
                path, f"{where} attributes width/height are not single numbers, expected W and H"
            )
        return parse_sensor_size(
            np.array([wv.reshape(-1)[0], hv.reshape(-1)[0]]), path, f"{where} attributes width/height"
        )
    return None


def read(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    sensor_size: tuple[int, int] | None = None,
    time_unit: str = "us",
) -> Recording:
    """Read an event table from an HDF5 file.

    Args:
        path: the file.
        key: path of the event dataset or group inside the file; found
            automatically when None (see the module docstring).
        sensor_size: (W, H) to use instead of the stored attributes.
        time_unit: unit of the stored timestamps: ``"us"`` (default), ``"ms"`` or ``"s"``.

    Returns:
        A :class:`Recording`; ``metadata`` has ``key`` (the table used),
        ``layout`` (``"compound"`` or ``"columns"``), ``fields``,
        ``sensor_size_from``, ``resorted``, ``sha256``.

    Raises:
        FormatError: not HDF5, corrupt, no event table, bad values.
    """
    import h5py

    p = check_file(path)
    if time_unit not in TIME_UNITS:
        raise EventsError(f"time_unit {time_unit!r} is not one of {', '.join(TIME_UNITS)}")
    fsize = p.stat().st_size
    try:
        f = h5py.File(p, "r")
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as err:
        raise FormatError(
            p, f"cannot open as HDF5 ({type(err).__name__}: {err}); expected an HDF5 file"
        ) from None
    try:
        with f:
            table = _find_table(f, key, p)
            tname = _h5(lambda: table.name, "cannot name the table")
            where = f"HDF5 {tname!r}"
            if isinstance(table, h5py.Dataset):
                names = resolve_names(list(table.dtype.names), p, where)
                for n in names.values():
                    _check_numeric(table.dtype.fields[n][0], n, p, where)
                _check_size(table, p, fsize)
                data = _h5(lambda: table[()], f"cannot read {where}")
                cols = {c: data[n] for c, n in names.items()}
                layout = "compound"
            else:
                dsets = [k for k in table.keys() if isinstance(table.get(k, getlink=False), h5py.Dataset)]
                names = resolve_names(dsets, p, where)
                cols = {}
                for c, n in names.items():
                    d = _h5(lambda n=n: table[n], f"cannot open {where}/{n}")
                    _check_numeric(d.dtype, n, p, where)
                    _check_size(d, p, fsize)
                    cols[c] = _h5(lambda d=d: d[()], f"cannot read {where}/{n}")
                layout = "columns"
            stored = None
            if sensor_size is None:
                stored = _sensor_from_attrs(table, p, where)
                if stored is None and table.name != "/":
                    stored = _sensor_from_attrs(f, p, "HDF5 root")
    except _H5Fail as err:
        raise FormatError(p, f"corrupt or unreadable HDF5 ({err})") from None
    except (KeyboardInterrupt, SystemExit, MemoryError, FormatError, EventsError):
        raise
    except Exception as err:  # closing a corrupt file can fail too
        raise FormatError(p, f"corrupt or unreadable HDF5 ({type(err).__name__}: {err})") from None
    meta: dict[str, Any] = {"key": tname, "layout": layout, "sha256": file_sha256(p)}
    return recording_from_columns(
        p,
        cols,
        names=names,
        sensor_size=sensor_size,
        stored_sensor_size=stored,
        time_unit=time_unit,
        source_format=NAME,
        where=where,
        metadata=meta,
    )


def write(
    path: str | os.PathLike[str],
    events: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    t0_abs: int = 0,
    compression: str | None = None,
) -> None:
    """Write events atomically as group ``events`` with datasets ``t``, ``x``, ``y``, ``p``.

    Args:
        path: the file to create or replace.
        events: structured array with fields ``t``, ``x``, ``y``, ``p``.
        sensor_size: (W, H), stored as attributes ``width`` and ``height`` of ``events``.
        t0_abs: added to ``events["t"]`` (int64 us) before writing.
        compression: h5py dataset compression (``None`` or ``"gzip"``).

    Raises:
        EventsError: missing fields or events outside ``sensor_size``.
    """
    import h5py

    cols = canonical_columns(events, t0_abs)
    w, h = int(sensor_size[0]), int(sensor_size[1])
    check_in_sensor(np.asarray(events), (w, h), what="events to write")
    final, tmp = atomic_path(path)
    ok = False
    try:
        with h5py.File(tmp, "w") as f:
            g = f.create_group("events")
            for k, v in cols.items():
                g.create_dataset(k, data=v, compression=compression if v.size else None)
            g.attrs["width"] = np.int64(w)
            g.attrs["height"] = np.int64(h)
        ok = True
    finally:
        finish_atomic(tmp, final, ok)


FORMATS.register(NAME, sys.modules[__name__])
