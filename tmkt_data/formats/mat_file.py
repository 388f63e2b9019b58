"""MATLAB ``.mat`` event files (CEP-DVS style): v4/v5/v7 parsed here, v7.3 via h5py, written with scipy.

Layout (see ``docs/formats.md`` §2.5): variables ``x``, ``y``, ``ts`` and ``p``
(CEP-DVS stores **p in {-1, +1}**; -1 becomes OFF), usually double column
vectors. Accepted:

* the four variables at the top level, or
* one struct variable (``key``, or the only struct holding them, searched up
  to three struct levels deep) whose fields are those variables.

Names and value rules are those of :mod:`tmkt_data.formats.numpy_file`
(time ``ts``/``t``/``timestamp``/``timestamps``, polarity ``p``/``pol``/
``polarity``; polarity {-1, +1}, {0, 1} or logical; ``time_unit`` "us"
(default; whole numbers stored as doubles are fine), "ms" or "s"). An optional
``sensor_size`` variable ``[W H]`` gives the sensor size; otherwise the
``sensor_size`` option, else ``(max x + 1, max y + 1)``.

MAT v7.3 files (HDF5 with a 512-byte user block) are read with the HDF5
reader's table search (root-level datasets or a group).

MAT v5 (also v6/v7) files are parsed here in Python with bounds checks on
every element, not with ``scipy.io.loadmat``: scipy's Cython reader indexes
its type tables with unchecked codes and crashed the interpreter (SIGSEGV /
SIGBUS) on fuzzed files. Numeric/logical arrays, structs and cells are
decoded; char, sparse, function and opaque (object) values are skipped.
``miCOMPRESSED`` elements are inflated with a cap of 1100 times their packed
size (deflate cannot exceed ~1032), so a corrupt length cannot cause a giant
allocation. Old MAT v4 files (a zero in the first 4 bytes) are parsed here
too (scipy's v4 reader allocates whatever size a corrupt header declares).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import sys
import zlib
from typing import Any

import numpy as np

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import Recording, check_in_sensor
from tmkt_data.formats import FORMATS, hdf5_file
from tmkt_data.formats._io import atomic_path, finish_atomic, read_file_bytes
from tmkt_data.formats.numpy_file import (
    ALIASES,
    TIME_UNITS,
    canonical_columns,
    check_file,
    has_event_names,
    parse_sensor_size,
    recording_from_columns,
    resolve_names,
)

NAME = "mat"
EXTENSIONS = (".mat",)

MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
MAT73_MAGIC = b"MATLAB 7.3 MAT-file"
_MAX_RATIO = 1100
_MAX_DEPTH = 3


def sniff(head: bytes) -> bool:
    """True for the MAT v5 (also v6/v7) or v7.3 text header."""
    return head.startswith(MAT5_MAGIC) or head.startswith(MAT73_MAGIC)


def _find_struct(value: Any, depth: int = 0) -> dict | None:
    """The first dict (struct) holding the event fields, searched depth first."""
    if not isinstance(value, dict) or depth > _MAX_DEPTH:
        return None
    if has_event_names(value.keys()):
        return value
    for v in value.values():
        hit = _find_struct(v, depth + 1)
        if hit is not None:
            return hit
    return None


def _event_table(
    top: dict[str, Any], key: str | None, p
) -> tuple[dict[str, Any], dict[str, str], str, str | None]:
    """(variables holding the events, column -> variable name, where, struct name or None)."""
    if key is None and has_event_names(top):
        return top, resolve_names(list(top), p, "MAT top level"), "MAT top level", None
    if key is not None:
        if key not in top:
            raise FormatError(p, f"no variable {key!r}; variables are {sorted(top)}")
        candidates = [key]
    else:
        candidates = [k for k, v in top.items() if isinstance(v, dict)]
    for cand in candidates:
        table = _find_struct(top[cand])
        if table is not None:
            where = f"MAT struct {cand!r}"
            return table, resolve_names([str(k) for k in table], p, where), where, cand
    want = "; ".join(f"{c}: {'/'.join(a)}" for c, a in ALIASES.items())
    raise FormatError(
        p,
        f"no event variables: variables are {sorted(top)} "
        f"({'struct ' + repr(key) if key else 'no struct'} holds them); expected {want}",
    )


def read(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    sensor_size: tuple[int, int] | None = None,
    time_unit: str = "us",
) -> Recording:
    """Read events from a MATLAB file.

    Args:
        path: the file.
        key: name of the struct variable holding the event fields; default:
            top-level variables, else the only struct variable holding them.
        sensor_size: (W, H) to use; default the ``sensor_size`` variable, else
            ``(max x + 1, max y + 1)``.
        time_unit: unit of ``ts``: ``"us"`` (default), ``"ms"`` or ``"s"``.

    Returns:
        A :class:`Recording`; ``metadata`` has ``mat_version`` (``"5"`` for
        v4-v7, ``"7.3"``), ``struct`` (the struct used, or None), ``fields``,
        ``sensor_size_from``, ``resorted``, ``sha256``.

    Raises:
        FormatError: not a readable MAT file, missing variables, bad values.
    """

    p = check_file(path)
    if time_unit not in TIME_UNITS:
        raise EventsError(f"time_unit {time_unit!r} is not one of {', '.join(TIME_UNITS)}")
    with open(p, "rb") as fh:
        head = fh.read(128)
    if head.startswith(MAT73_MAGIC):
        rec = hdf5_file.read(p, key=key, sensor_size=sensor_size, time_unit=time_unit)
        rec.source_format = NAME
        rec.metadata.update(mat_version="7.3", struct=None)
        return rec

    data = read_file_bytes(p)
    if data.count(0, 0, 4) or len(data) < 128:
        version = "4"
        top = _read_v4(p, data)
    else:
        version = "5"
        top = _Mat5(p, data).variables()
    table, names, where, struct_name = _event_table(top, key, p)
    cols = {c: _numeric(table[n], n, p, where) for c, n in names.items()}
    stored = None
    if sensor_size is None and "sensor_size" in table:
        stored = parse_sensor_size(_numeric(table["sensor_size"], "sensor_size", p, where), p, where)
    meta: dict[str, Any] = {
        "mat_version": version,
        "struct": struct_name,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
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


def _numeric(value: Any, name: str, path, where: str) -> np.ndarray:
    a = np.asarray(value) if not isinstance(value, (dict, list, str)) else None
    if a is None or a.dtype.hasobject or a.dtype.kind not in "biuf":
        kind = type(value).__name__ if a is None else str(a.dtype)
        raise FormatError(path, f"{where}: {name!r} is {kind}, expected a numeric or logical array")
    if a.ndim == 0:
        a = a.reshape(1)
    return a


# --------------------------------------------------------------------------- MAT v5 parser

_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_MATRIX, _MI_COMPRESSED, _MI_INT8, _MI_INT32, _MI_UINT32, _MI_UTF8 = 14, 15, 1, 5, 6, 16
_NUMERIC_CLASSES = set(range(6, 16))
_CLASS_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function", 17: "opaque"}
_MAX_NEST = 16


class Skipped:
    """Placeholder for a MAT value this reader does not decode (char, sparse, ...)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __repr__(self) -> str:
        return f"<skipped MAT {self.kind}>"


class _Mat5:
    """Bounds-checked reader of the MAT v5 subset needed here (see the module docstring)."""

    def __init__(self, path, data: bytes):
        self.path = path
        self.data = data
        endian = data[126:128]
        if endian == b"IM":
            self.e = "<"
        elif endian == b"MI":
            self.e = ">"
        else:
            raise FormatError(
                path, f"MAT v5 endian indicator is {endian!r}, expected b'IM' or b'MI'", offset=126
            )
        (ver,) = struct.unpack_from(self.e + "H", data, 124)
        if ver != 0x0100:
            raise FormatError(path, f"MAT header version 0x{ver:04X}, expected 0x0100 (v5)", offset=124)

    def fail(self, msg: str, where: str, pos: int) -> FormatError:
        return FormatError(self.path, f"MAT v5 {where}: {msg}", offset=pos if where == "file" else None)

    def tag(self, buf, pos: int, end: int, where: str, *, pad: bool = True) -> tuple[int, int, int, int]:
        """(mdtype, nbytes, data position, next element position) of the element at ``pos``."""
        if pos + 8 > end:
            raise self.fail(f"element tag at {pos} is truncated ({end - pos} bytes left)", where, pos)
        (u0,) = struct.unpack_from(self.e + "I", buf, pos)
        if u0 >> 16:
            n, mdtype = u0 >> 16, u0 & 0xFFFF
            if n > 4:
                raise self.fail(
                    f"small data element at {pos} claims {n} bytes, expected at most 4", where, pos
                )
            return mdtype, n, pos + 4, pos + 8
        (n,) = struct.unpack_from(self.e + "I", buf, pos + 4)
        if n > end - pos - 8:
            raise self.fail(f"element at {pos} declares {n} bytes, only {end - pos - 8} remain", where, pos)
        nxt = pos + 8 + n
        if pad:
            nxt = min(end, nxt + (-n % 8))
        return u0, n, pos + 8, nxt

    def variables(self) -> dict[str, Any]:
        data = self.data
        out: dict[str, Any] = {}
        pos, end = 128, len(data)
        while pos < end:
            mdtype, n, dpos, nxt = self.tag(data, pos, end, "file", pad=False)
            if mdtype == _MI_COMPRESSED:
                raw = self._inflate(data[dpos : dpos + n], pos)
                name, value = self.matrix(raw, 0, len(raw), "compressed variable", 0)
            elif mdtype == _MI_MATRIX:
                name, value = self.matrix(data, pos, end, "file", 0)
            else:
                raise self.fail(
                    f"top-level element type {mdtype} at {pos}, expected a matrix (14 or 15)", "file", pos
                )
            out[name] = value
            pos = nxt
        return out

    def _inflate(self, packed: bytes, pos: int) -> bytes:
        cap = _MAX_RATIO * len(packed) + 1024
        d = zlib.decompressobj()
        try:
            raw = d.decompress(packed, cap)
        except zlib.error as err:
            raise self.fail(f"compressed element at {pos} does not inflate ({err})", "file", pos) from None
        if d.unconsumed_tail:
            raise self.fail(f"compressed element at {pos} inflates past {cap} bytes", "file", pos)
        return raw

    def _sub(
        self, buf, pos: int, end: int, where: str, types: tuple[int, ...], what: str
    ) -> tuple[bytes, int, int]:
        mdtype, n, dpos, nxt = self.tag(buf, pos, end, where)
        if mdtype not in types:
            raise self.fail(f"{what} element has type {mdtype}, expected one of {types}", where, pos)
        return bytes(buf[dpos : dpos + n]), mdtype, nxt

    def _array_flags(self, buf, q: int, mend: int, where: str, pos: int) -> tuple[int, int]:
        """(flags word, next position) of a matrix's array flags subelement."""
        flags_raw, _, q = self._sub(buf, q, mend, where, (_MI_UINT32,), "array flags")
        if len(flags_raw) != 8:
            raise self.fail(f"array flags of {len(flags_raw)} bytes, expected 8", where, pos)
        (flags,) = struct.unpack_from(self.e + "I", flags_raw, 0)
        return flags, q

    def _dimensions(self, buf, q: int, mend: int, where: str, pos: int) -> tuple[list[int], int]:
        """(dimensions, next position) of a matrix's dimensions subelement."""
        dims_raw, _, q = self._sub(buf, q, mend, where, (_MI_INT32, _MI_UINT32), "dimensions")
        if len(dims_raw) % 4 or not (1 <= len(dims_raw) // 4 <= 32):
            raise self.fail(
                f"dimensions element of {len(dims_raw)} bytes, expected 1 to 32 int32", where, pos
            )
        dims = [int(v) for v in np.frombuffer(dims_raw, self.e + "i4")]
        if any(d < 0 for d in dims):
            raise self.fail(f"negative dimension in {dims}", where, pos)
        return dims, q

    def _numeric_value(
        self, buf, q: int, mend: int, where: str, pos: int, name: str, dims: list[int], flags: int
    ) -> Any:
        """A numeric or logical array (Fortran order), or Skipped for complex values."""
        count = math.prod(dims)
        real_raw, rt, q = self._sub(buf, q, mend, where, tuple(_MI_DTYPES), "real part")
        dtype = np.dtype(self.e + _MI_DTYPES[rt])
        if len(real_raw) != count * dtype.itemsize:
            raise self.fail(
                f"{name!r} has {len(real_raw)} data bytes for shape {dims} of {dtype}, expected "
                f"{count * dtype.itemsize}",
                where,
                pos,
            )
        if flags & 0x800:
            return Skipped("complex")
        arr = np.frombuffer(real_raw, dtype=dtype, count=count).reshape(dims, order="F")
        return arr.astype(bool) if flags & 0x200 else arr

    def _struct_value(
        self, buf, q: int, mend: int, where: str, pos: int, name: str, count: int, mclass: int, depth: int
    ) -> Any:
        """A struct (or object) value: one field dict, or a list of them when ``count`` != 1."""
        if mclass == 3:
            _, _, q = self._sub(buf, q, mend, where, (_MI_INT8, _MI_UTF8), "class name")
        flen_raw, _, q = self._sub(buf, q, mend, where, (_MI_INT32, _MI_UINT32), "field name length")
        if len(flen_raw) != 4:
            raise self.fail("field name length element is not one int32", where, pos)
        (flen,) = struct.unpack_from(self.e + "i", flen_raw, 0)
        names_raw, _, q = self._sub(buf, q, mend, where, (_MI_INT8, _MI_UTF8), "field names")
        if flen <= 0 or len(names_raw) % flen:
            raise self.fail(
                f"field names of {len(names_raw)} bytes do not split in {flen}-byte names", where, pos
            )
        fields = [
            names_raw[i : i + flen].split(b"\x00", 1)[0].decode("latin-1")
            for i in range(0, len(names_raw), flen)
        ]
        total = count * len(fields)
        if total * 8 > mend - q:
            raise self.fail(f"{name!r} declares {total} struct values in {mend - q} bytes", where, pos)
        items = []
        for _ in range(count):
            rec = {}
            for fname in fields:
                _, value = self.matrix(buf, q, mend, where, depth + 1)
                q = self.tag(buf, q, mend, where)[3]
                rec[fname] = value
            items.append(rec)
        return items[0] if count == 1 else items

    def _cell_value(
        self, buf, q: int, mend: int, where: str, pos: int, name: str, count: int, depth: int
    ) -> list:
        """The values of a cell array, in storage order."""
        if count * 8 > mend - q:
            raise self.fail(f"{name!r} declares {count} cells in {mend - q} bytes", where, pos)
        cells = []
        for _ in range(count):
            _, value = self.matrix(buf, q, mend, where, depth + 1)
            q = self.tag(buf, q, mend, where)[3]
            cells.append(value)
        return cells

    def matrix(self, buf, pos: int, end: int, where: str, depth: int) -> tuple[str, Any]:
        """(name, value) of the miMATRIX element at ``pos``."""
        if depth > _MAX_NEST:
            raise self.fail(f"values nested deeper than {_MAX_NEST} levels", where, pos)
        mdtype, n, dpos, _ = self.tag(buf, pos, end, where, pad=False)
        if mdtype != _MI_MATRIX:
            raise self.fail(f"element type {mdtype} at {pos}, expected a matrix (14)", where, pos)
        if n == 0:
            return "", np.zeros((0, 0))
        q, mend = dpos, dpos + n
        flags, q = self._array_flags(buf, q, mend, where, pos)
        mclass = flags & 0xFF
        if mclass == 17:  # opaque (MCOS objects): only a name
            name_raw, _, q = self._sub(buf, q, mend, where, (_MI_INT8, _MI_UTF8), "name")
            return name_raw.decode("latin-1").rstrip("\x00"), Skipped("opaque")
        dims, q = self._dimensions(buf, q, mend, where, pos)
        count = math.prod(dims)
        name_raw, _, q = self._sub(buf, q, mend, where, (_MI_INT8, _MI_UTF8), "name")
        name = name_raw.decode("latin-1").rstrip("\x00")
        if mclass in _NUMERIC_CLASSES:
            return name, self._numeric_value(buf, q, mend, where, pos, name, dims, flags)
        if mclass in (2, 3):
            return name, self._struct_value(buf, q, mend, where, pos, name, count, mclass, depth)
        if mclass == 1:
            return name, self._cell_value(buf, q, mend, where, pos, name, count, depth)
        if mclass in _CLASS_NAMES:
            return name, Skipped(_CLASS_NAMES[mclass])
        raise self.fail(f"{name!r} has unknown array class {mclass}, expected 1 to 17", where, pos)


# --------------------------------------------------------------------------- MAT v4 parser

_V4_DTYPES = {0: "f8", 1: "f4", 2: "i4", 3: "i2", 4: "u2", 5: "u1"}


def _read_v4(path, data: bytes) -> dict[str, Any]:
    """Variables of a MAT v4 file (numeric full matrices; text and sparse are skipped)."""
    out: dict[str, Any] = {}
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 20:
            raise FormatError(path, f"MAT v4 header truncated ({end - pos} of 20 bytes)", offset=pos)
        for e in ("<", ">"):
            mopt, mrows, ncols, imagf, namlen = struct.unpack_from(e + "5i", data, pos)
            m, o, prec, kind = mopt // 1000, (mopt // 100) % 10, (mopt // 10) % 10, mopt % 10
            if (
                0 <= mopt < 2000
                and m == (0 if e == "<" else 1)
                and o == 0
                and prec in _V4_DTYPES
                and kind <= 2
            ):
                break
        else:
            raise FormatError(
                path, "MAT v4 type code is not little- or big-endian IEEE (MOPT 0xxx or 1xxx)", offset=pos
            )
        if mrows < 0 or ncols < 0 or imagf not in (0, 1) or not (1 <= namlen <= 4096):
            raise FormatError(
                path,
                f"MAT v4 header has rows {mrows}, cols {ncols}, imagf {imagf}, name length {namlen}",
                offset=pos,
            )
        q = pos + 20
        if namlen > end - q:
            raise FormatError(path, f"MAT v4 name of {namlen} bytes runs past the file", offset=q)
        name = data[q : q + namlen].split(b"\x00", 1)[0].decode("latin-1")
        q += namlen
        dtype = np.dtype(e + _V4_DTYPES[prec])
        count = mrows * ncols
        nbytes = count * dtype.itemsize * (2 if imagf else 1)
        if nbytes > end - q:
            raise FormatError(
                path,
                f"MAT v4 {name!r} of {mrows}x{ncols} needs {nbytes} bytes, only {end - q} remain",
                offset=q,
            )
        if kind == 0 and not imagf:
            out[name] = np.frombuffer(data, dtype=dtype, count=count, offset=q).reshape(
                (mrows, ncols), order="F"
            )
        else:
            out[name] = Skipped({0: "complex", 1: "char", 2: "sparse"}[kind if kind else 0])
        pos = q + nbytes
    return out


def write(
    path: str | os.PathLike[str],
    events: np.ndarray,
    sensor_size: tuple[int, int],
    *,
    t0_abs: int = 0,
    signed_polarity: bool = True,
) -> None:
    """Write events atomically as a MAT v5 file in the CEP-DVS style.

    Variables ``x``, ``y``, ``ts`` (absolute us, ``t + t0_abs``) and ``p`` are
    double column vectors; ``p`` is in {-1, +1} with ``signed_polarity``
    (CEP-DVS), else {0, 1}. ``sensor_size`` is stored as a ``[W H]`` double
    row so the file reads back with the same sensor.

    Raises:
        EventsError: missing fields, events outside ``sensor_size``, or a
            timestamp beyond 2**53 us (not exact as a double).
    """
    import scipy.io

    cols = canonical_columns(events, t0_abs)
    w, h = int(sensor_size[0]), int(sensor_size[1])
    check_in_sensor(np.asarray(events), (w, h), what="events to write")
    t = cols["t"]
    if t.size and int(np.abs(t).max()) > 2**53:
        raise EventsError("timestamps beyond 2**53 us cannot be stored exactly as MATLAB doubles")
    on = cols["p"].astype(np.float64)
    p = 2.0 * on - 1.0 if signed_polarity else on
    mdict = {
        "x": cols["x"].astype(np.float64).reshape(-1, 1),
        "y": cols["y"].astype(np.float64).reshape(-1, 1),
        "ts": t.astype(np.float64).reshape(-1, 1),
        "p": p.reshape(-1, 1),
        "sensor_size": np.array([[w, h]], dtype=np.float64),
    }
    final, tmp = atomic_path(path)
    ok = False
    try:
        with open(tmp, "wb") as fh:
            scipy.io.savemat(fh, mdict, format="5", do_compression=False)
        ok = True
    finally:
        finish_atomic(tmp, final, ok)


FORMATS.register(NAME, sys.modules[__name__])
