"""Event file readers, one module per container format, and format detection.

Each format module exposes ``NAME``, ``EXTENSIONS`` (lower-case, with dot),
``sniff(head: bytes) -> bool`` (True when the first bytes identify the format;
always False for formats without magic bytes), ``read(path, **options) ->
Recording`` and ``write(path, events, sensor_size, **options)``, and registers
itself in :data:`FORMATS` (``FORMATS.register(NAME, sys.modules[__name__])``).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

from tmkt_data.errors import FormatError
from tmkt_data.events import Recording
from tmkt_data.formats._io import read_head
from tmkt_data.registry import Registry

#: Format name -> module, in detection order; each module registers itself (``FORMATS.register``).
FORMATS: Registry[ModuleType] = Registry(
    "format",
    lambda message: FormatError("tmkt_data.formats", message),
    modules=[
        f"tmkt_data.formats.{m}"
        for m in ("aedat4", "aedat2", "aedat31", "atis_bin", "numpy_file", "hdf5_file", "mat_file")
    ],
)


def detect_format(path: str | os.PathLike[str]) -> str:
    """Name of the format of ``path``, from its magic bytes, else its extension."""
    p = Path(path)
    head = read_head(p, 256)
    if not head:
        raise FormatError(p, "file is empty, expected event data", offset=0)
    for name, mod in FORMATS.items():
        if mod.sniff(head):
            return name
    ext = p.suffix.lower()
    for name, mod in FORMATS.items():
        if ext in mod.EXTENSIONS:
            return name
    known = ", ".join(sorted({e for m in FORMATS.values() for e in m.EXTENSIONS}))
    raise FormatError(
        p, f"unrecognised event file (no known magic bytes, extension {ext!r} not one of {known})"
    )


def read_events(path: str | os.PathLike[str], format: str | None = None, **options: Any) -> Recording:
    """Read an event file into a :class:`Recording`.

    Args:
        path: the file.
        format: one of :data:`FORMATS` (``aedat2``, ``aedat31``, ``aedat4``,
            ``atis_bin``, ``npy``, ``hdf5``, ``mat``); detected when None.
        **options: reader options (e.g. ``orientation="jaer"`` for AEDAT 2.0).
    """
    name = format if format is not None else detect_format(path)
    return FORMATS.get(name, error=lambda message: FormatError(path, message)).read(path, **options)


FORMATS.load()  # the readers are imported with the package, as tmkt_data's API has them

__all__ = ["FORMATS", "detect_format", "read_events"]
