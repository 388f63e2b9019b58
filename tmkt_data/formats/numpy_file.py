"""NumPy ``.npy`` / ``.npz`` event files, and the column helpers shared by the HDF5 and MAT readers.

Accepted layouts:

* ``.npy``: one 1-D structured array (tonic style) with fields for time,
  x, y and polarity, in any order (e.g. tonic's N-MNIST ``[x, y, t, p]``,
  CIFAR10-DVS ``[t, x, y, p]``, DVS Gesture ``[x, y, p, t]``).
* ``.npz``: either exactly one structured member as above, or separate 1-D
  members for time, x, y and polarity; plus an optional ``sensor_size`` member
  (``(W, H)`` or tonic's ``(W, H, 2)``).

Field names (case-sensitive): time ``t``, ``ts``, ``timestamp``,
``timestamps``; ``x``/``xs``; ``y``/``ys``; polarity ``p``, ``polarity``,
``pol``, ``ps``. Two aliases of one field in one table is an error.

Values: ``x`` and ``y`` integral, 0..65535; polarity boolean, {0, 1} or
{-1, +1} (-1 and 0 mean OFF). Time is converted to integer microseconds with
``time_unit`` (``"us"`` default, ``"ms"``, ``"s"``): with ``"us"`` the values
must be integral (float storage of whole numbers, as MATLAB writes, is
accepted; fractional microseconds are rejected, naming ``time_unit``); with
``"ms"``/``"s"`` values are scaled and rounded to the nearest microsecond.

Files are always loaded with pickling disabled (object arrays are a
:class:`FormatError`). Before any array is read, its header's shape is checked
against the bytes the file (or zip member) really holds, so a corrupt shape
cannot trigger a giant allocation; a zip member may not declare more than
1100 times its compressed size (deflate cannot exceed ~1032).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.lib.format as npformat

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import Recording, check_in_sensor, events_to_write, is_sorted, recording_from_absolute
from tmkt_data.formats import FORMATS
from tmkt_data.formats._io import atomic_path, finish_atomic
from tmkt_data.formats._io import check_file as _check_file

NAME = "npy"
EXTENSIONS = (".npy", ".npz")

NPY_MAGIC = b"\x93NUMPY"
#: canonical field -> accepted names, in preference order.
ALIASES: dict[str, tuple[str, ...]] = {
    "t": ("t", "ts", "timestamp", "timestamps"),
    "x": ("x", "xs"),
    "y": ("y", "ys"),
    "p": ("p", "polarity", "pol", "ps"),
}
TIME_UNITS = {"us": 1, "ms": 1_000, "s": 1_000_000}
#: Largest plausible inflation of a zip member (deflate tops out near 1032:1).
MAX_ZIP_RATIO = 1100


def sniff(head: bytes) -> bool:
    """True for the ``.npy`` magic; ``.npz`` (a zip) is claimed by extension only."""
    return head.startswith(NPY_MAGIC)


# --------------------------------------------------------------------------- shared column helpers


def resolve_names(
    names: list[str] | tuple[str, ...], path: str | os.PathLike[str], where: str
) -> dict[str, str]:
    """Map canonical fields ``t``, ``x``, ``y``, ``p`` to the names present; FormatError if any is missing."""
    found: dict[str, str] = {}
    present = set(names)
    for canon, aliases in ALIASES.items():
        hits = [a for a in aliases if a in present]
        if len(hits) > 1:
            raise FormatError(
                path, f"{where} has both {hits[0]!r} and {hits[1]!r}; expected one {canon!r} field"
            )
        if hits:
            found[canon] = hits[0]
    missing = [c for c in ALIASES if c not in found]
    if missing:
        want = "; ".join(f"{c}: {'/'.join(ALIASES[c])}" for c in missing)
        raise FormatError(
            path, f"{where} lacks {', '.join(missing)} (names found: {sorted(present)}); expected {want}"
        )
    return found


def has_event_names(names) -> bool:
    """True when ``names`` hold one alias of each of t, x, y, p."""
    present = set(names)
    return all(any(a in present for a in aliases) for aliases in ALIASES.values())


def _as_1d(arr: Any, name: str, path: str | os.PathLike[str], where: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.hasobject or a.dtype.names is not None or a.dtype.kind not in "biuf":
        raise FormatError(path, f"{where}: {name!r} has dtype {a.dtype}, expected numbers or booleans")
    if a.ndim != 1:
        if a.ndim == 0 or sum(d != 1 for d in a.shape) > 1:
            raise FormatError(path, f"{where}: {name!r} has shape {a.shape}, expected a 1-D array")
        a = a.reshape(-1)
    return a


def _integral(a: np.ndarray, name: str, path, where: str, lo: int, hi: int) -> np.ndarray:
    """``a`` as int64, checking integrality and the range [lo, hi]."""
    if a.dtype.kind == "f":
        if a.size and not bool(np.all(np.isfinite(a))):
            raise FormatError(path, f"{where}: {name!r} holds NaN or infinite values, expected integers")
        if a.size and not bool(np.all(a == np.floor(a))):
            raise FormatError(path, f"{where}: {name!r} holds fractional values, expected integers")
    if a.size:
        amin, amax = a.min(), a.max()
        if amin < lo or amax > hi:
            raise FormatError(
                path, f"{where}: {name!r} ranges {amin}..{amax}, expected integers in {lo}..{hi}"
            )
    return a.astype(np.int64)


def time_to_us(t: np.ndarray, time_unit: str, path, where: str, name: str = "t") -> np.ndarray:
    """Timestamps in ``time_unit`` -> int64 microseconds (see the module docstring)."""
    if time_unit not in TIME_UNITS:
        raise EventsError(f"time_unit {time_unit!r} is not one of {', '.join(TIME_UNITS)}")
    scale = TIME_UNITS[time_unit]
    limit = 2**62
    if t.dtype.kind == "f":
        if t.size and not bool(np.all(np.isfinite(t))):
            raise FormatError(path, f"{where}: {name!r} holds NaN or infinite values, expected timestamps")
        if scale == 1:
            if t.size and not bool(np.all(t == np.floor(t))):
                raise FormatError(
                    path,
                    f"{where}: {name!r} holds fractional microseconds; pass time_unit='s' or 'ms' "
                    "if the file stores seconds or milliseconds",
                )
            us = t
        else:
            us = np.rint(t.astype(np.float64) * scale)
        if us.size and float(np.abs(us).max()) >= limit:
            raise FormatError(path, f"{where}: {name!r} exceeds 2**62 us, expected plausible timestamps")
        return us.astype(np.int64)
    if t.dtype.kind == "u" and t.size and int(t.max()) >= limit:
        raise FormatError(path, f"{where}: {name!r} exceeds 2**62 us, expected plausible timestamps")
    ti = t.astype(np.int64)
    if scale != 1:
        if ti.size and int(np.abs(ti).max()) >= limit // scale:
            raise FormatError(path, f"{where}: {name!r} in {time_unit} exceeds 2**62 us")
        ti = ti * scale
    return ti


def polarity_to_on(p: np.ndarray, path, where: str, name: str = "p") -> np.ndarray:
    """Boolean, {0, 1} or {-1, +1} polarity -> uint8 0/1."""
    if p.dtype.kind == "b":
        return p.astype(np.uint8)
    if p.size == 0:
        return np.zeros(0, np.uint8)
    vals = np.unique(p)
    if vals.size > 3 or not (set(vals.tolist()) <= {0, 1} or set(vals.tolist()) <= {-1, 1}):
        shown = ", ".join(str(v) for v in vals[:5].tolist())
        raise FormatError(
            path,
            f"{where}: {name!r} takes values {{{shown}{', ...' if vals.size > 5 else ''}}}, "
            "expected {0, 1}, {-1, +1} or booleans",
        )
    return (p > 0).astype(np.uint8)


def parse_sensor_size(value: Any, path, where: str) -> tuple[int, int]:
    """(W, H) from a stored ``sensor_size`` of 2 (or tonic's 3) positive integers."""
    a = np.asarray(value)
    if a.dtype.hasobject or a.dtype.kind not in "iuf" or a.size not in (2, 3):
        raise FormatError(path, f"{where}: sensor_size {a.tolist()!r} is not 2 or 3 numbers, expected (W, H)")
    a = a.reshape(-1)
    if not bool(np.all(np.isfinite(a))) or not bool(np.all(a == np.floor(a))):
        raise FormatError(path, f"{where}: sensor_size {a.tolist()!r} is not integral, expected (W, H)")
    w, h = int(a[0]), int(a[1])
    if not (1 <= w <= 65536 and 1 <= h <= 65536):
        raise FormatError(path, f"{where}: sensor_size ({w}, {h}) is outside 1..65536, expected (W, H)")
    return w, h


def recording_from_columns(
    path: str | os.PathLike[str],
    columns: Mapping[str, Any],
    *,
    names: Mapping[str, str],
    sensor_size: tuple[int, int] | None,
    stored_sensor_size: tuple[int, int] | None,
    time_unit: str,
    source_format: str,
    where: str,
    metadata: dict[str, Any],
) -> Recording:
    """Validate columns (canonical field -> array, under file ``names``) and build a :class:`Recording`.

    Sensor size: ``sensor_size`` if given, else ``stored_sensor_size``, else
    ``(max x + 1, max y + 1)``; events outside it are a :class:`FormatError`.
    """
    arrs = {c: _as_1d(columns[c], names[c], path, where) for c in ("t", "x", "y", "p")}
    n = arrs["t"].shape[0]
    for c in ("x", "y", "p"):
        if arrs[c].shape[0] != n:
            raise FormatError(
                path,
                f"{where}: {names[c]!r} has {arrs[c].shape[0]} values but {names['t']!r} has {n}; "
                "expected equal lengths",
            )
    t = time_to_us(arrs["t"], time_unit, path, where, names["t"])
    x = _integral(arrs["x"], names["x"], path, where, 0, 65535)
    y = _integral(arrs["y"], names["y"], path, where, 0, 65535)
    on = polarity_to_on(arrs["p"], path, where, names["p"])
    if sensor_size is not None:
        w, h = int(sensor_size[0]), int(sensor_size[1])
        if w <= 0 or h <= 0:
            raise EventsError(f"sensor_size {tuple(sensor_size)} is not positive, expected (width, height)")
        size_from = "option"
    elif stored_sensor_size is not None:
        (w, h), size_from = stored_sensor_size, "file"
    elif n:
        w, h, size_from = int(x.max()) + 1, int(y.max()) + 1, "extent"
    else:
        raise FormatError(path, f"{where}: no events and no stored sensor size; pass sensor_size")
    if n:
        bad = (x >= w) | (y >= h)
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(
                path,
                f"{where}: event {i} at (x={int(x[i])}, y={int(y[i])}) is outside the sensor of width {w} "
                f"and height {h} ({size_from})",
            )
    meta = dict(metadata)
    meta.update({"fields": dict(names), "sensor_size_from": size_from, "resorted": not is_sorted(t)})
    return recording_from_absolute(
        t, x, y, on, sensor_size=(w, h), source_format=source_format, path=str(path), metadata=meta
    )


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def check_file(path: str | os.PathLike[str]) -> Path:
    """Existence, folder, emptiness and size checks (:func:`tmkt_data.formats._io.check_file`)."""
    return _check_file(path)[0]


def canonical_columns(events: np.ndarray, t0_abs: int = 0) -> dict[str, np.ndarray]:
    """t (absolute, int64), x, y (uint16), p (uint8) of sorted canonical events, checked."""
    ev = events_to_write(events)
    return {
        "t": ev["t"].astype(np.int64) + int(t0_abs),
        "x": ev["x"].astype(np.uint16),
        "y": ev["y"].astype(np.uint16),
        "p": (ev["p"] > 0).astype(np.uint8),
    }


# --------------------------------------------------------------------------- .npy / .npz reading


def _read_npy_stream(fh: IO[bytes], available: int, path, where: str, base: int = 0) -> np.ndarray:
    """Read one ``.npy`` stream of at most ``available`` bytes, checking its header first."""
    start = fh.tell()
    try:
        version = npformat.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fh, max_header_size=10000)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(fh, max_header_size=10000)
        elif version == (3, 0) and hasattr(npformat, "_read_array_header"):
            shape, fortran, dtype = npformat._read_array_header(fh, version, max_header_size=10000)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as err:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError, ...
        raise FormatError(
            path, f"{where}: bad .npy header ({err}), expected a NumPy array file", offset=base
        ) from None
    if dtype.hasobject:
        raise FormatError(path, f"{where}: array of dtype {dtype} holds Python objects, which are not loaded")
    hdr_len = fh.tell() - start
    count = math.prod(shape)
    need = count * dtype.itemsize
    if need > available - hdr_len:
        raise FormatError(
            path,
            f"{where}: header declares shape {shape} of {dtype} ({need} bytes) but only "
            f"{max(available - hdr_len, 0)} bytes follow",
            offset=base + hdr_len,
        )
    try:
        data = fh.read(need)
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise FormatError(path, f"{where}: cannot read array data ({err})", offset=base + hdr_len) from None
    if len(data) != need:
        raise FormatError(
            path,
            f"{where}: array data ends after {len(data)} of {need} bytes",
            offset=base + hdr_len + len(data),
        )
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C")


def _read_npy_file(p: Path) -> np.ndarray:
    size = p.stat().st_size
    with open(p, "rb") as fh:
        return _read_npy_stream(fh, size, p, "npy")


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise FormatError(p, f"not a readable .npz zip archive ({err})") from None
    with zf:
        infos = zf.infolist()
        if not infos:
            raise FormatError(p, "the .npz archive is empty, expected event arrays")
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            where = f"npz member {info.filename!r}"
            if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1) + 1024 or (
                info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size
            ):
                raise FormatError(
                    p,
                    f"{where} declares {info.file_size} bytes from {info.compress_size} compressed; "
                    "expected a consistent zip entry",
                    offset=info.header_offset,
                )
            try:
                with zf.open(info) as fh:
                    out[name] = _read_npy_stream(fh, info.file_size, p, where)
            except FormatError:
                raise
            except Exception as err:  # zipfile/zlib/bz2/lzma raise many types on corrupt input
                raise FormatError(
                    p, f"{where}: cannot read ({type(err).__name__}: {err})", offset=info.header_offset
                ) from None
    return out


def read(
    path: str | os.PathLike[str], *, sensor_size: tuple[int, int] | None = None, time_unit: str = "us"
) -> Recording:
    """Read events from a ``.npy`` structured array or an ``.npz`` archive.

    Args:
        path: the file; an ``.npz`` is recognised by its zip magic ``PK\\x03\\x04``
            or ``PK\\x05\\x06`` (empty archive), anything else is read as ``.npy``.
        sensor_size: (W, H) to use; default the stored ``sensor_size`` member
            (``.npz``), else ``(max x + 1, max y + 1)``.
        time_unit: unit of the stored timestamps: ``"us"`` (default), ``"ms"`` or ``"s"``.

    Returns:
        A :class:`Recording` whose ``metadata`` has ``layout`` (``"structured"`` or
        ``"columns"``), ``fields`` (canonical -> stored name), ``member`` (npz),
        ``sensor_size_from``, ``resorted``, ``sha256``.

    Raises:
        FormatError: unreadable file, object arrays, missing/duplicate fields,
            bad values, inconsistent lengths, events outside the sensor.
    """
    p = check_file(path)
    if time_unit not in TIME_UNITS:
        raise EventsError(f"time_unit {time_unit!r} is not one of {', '.join(TIME_UNITS)}")
    with open(p, "rb") as fh:
        head = fh.read(6)
    meta: dict[str, Any] = {"sha256": file_sha256(p)}
    stored_size = None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        members = _read_npz(p)
        if "sensor_size" in members:
            stored_size = parse_sensor_size(members.pop("sensor_size"), p, "npz")
        structured = [k for k, v in members.items() if v.dtype.names is not None]
        if len(structured) == 1 and not has_event_names(members):
            key = structured[0]
            arr = members[key]
            where = f"npz member {key!r}"
            meta.update(layout="structured", member=key)
        elif has_event_names(members):
            arr = None
            where = "npz"
            meta.update(layout="columns", member=None)
        else:
            raise FormatError(
                p,
                f"npz members {sorted(members)} hold neither one structured event array nor separate "
                "t/x/y/p arrays (aliases ts, timestamp, polarity)",
            )
        if arr is None:
            names = resolve_names(list(members), p, where)
            cols = {c: members[n] for c, n in names.items()}
        else:
            names, cols = _structured_columns(arr, p, where)
    else:
        if head != NPY_MAGIC:
            raise FormatError(
                p, f"expected the .npy magic {NPY_MAGIC!r} or a zip (.npz), found {head!r}", offset=0
            )
        arr = _read_npy_file(p)
        where = "npy"
        if arr.dtype.names is None:
            raise FormatError(
                p,
                f"npy array of dtype {arr.dtype} and shape {arr.shape} is not structured; "
                "expected fields t, x, y, p (aliases ts, timestamp, polarity)",
            )
        names, cols = _structured_columns(arr, p, where)
        meta.update(layout="structured", member=None)
    return recording_from_columns(
        p,
        cols,
        names=names,
        sensor_size=sensor_size,
        stored_sensor_size=stored_size,
        time_unit=time_unit,
        source_format=NAME,
        where=where,
        metadata=meta,
    )


def _structured_columns(arr: np.ndarray, path, where: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    if arr.ndim != 1:
        if arr.ndim == 0 or sum(d != 1 for d in arr.shape) > 1:
            raise FormatError(path, f"{where}: structured array has shape {arr.shape}, expected 1-D")
        arr = arr.reshape(-1)
    names = resolve_names(list(arr.dtype.names), path, where)
    return names, {c: arr[n] for c, n in names.items()}


# --------------------------------------------------------------------------- writing


def write(
    path: str | os.PathLike[str],
    events: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    t0_abs: int = 0,
    compressed: bool = False,
) -> None:
    """Write events atomically: ``.npy`` as one structured array, anything else as ``.npz``.

    Args:
        path: the file; a ``.npy`` suffix writes a structured array with the
            canonical fields ``t`` (int64 us), ``x``, ``y`` (uint16), ``p`` (uint8)
            (the sensor size is then not stored); otherwise an ``.npz`` with
            members ``t``, ``x``, ``y``, ``p`` and ``sensor_size`` (int64 ``[W, H]``).
        events: structured array with fields ``t``, ``x``, ``y``, ``p``.
        sensor_size: (W, H); every event must lie inside it.
        t0_abs: added to ``events["t"]`` before writing.
        compressed: deflate the ``.npz`` members.

    Raises:
        EventsError: missing fields or events outside ``sensor_size``.
    """
    cols = canonical_columns(events, t0_abs)
    w, h = int(sensor_size[0]), int(sensor_size[1])
    ev = np.asarray(events)
    check_in_sensor(ev, (w, h), what="events to write")
    final, tmp = atomic_path(path)
    ok = False
    try:
        with open(tmp, "wb") as fh:
            if final.suffix.lower() == ".npy":
                arr = np.empty(
                    cols["t"].shape[0], dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")]
                )
                for k, v in cols.items():
                    arr[k] = v
                np.save(fh, arr, allow_pickle=False)
            else:
                saver = np.savez_compressed if compressed else np.savez
                saver(fh, sensor_size=np.array([w, h], dtype=np.int64), **cols)
        ok = True
    finally:
        finish_atomic(tmp, final, ok)


FORMATS.register(NAME, sys.modules[__name__])
