"""Output paths a person names: checked before any work, and write failures as one line.

:func:`check_writable` refuses, before anything is written, a path that cannot be created
(below a regular file, under ``/proc`` or ``/sys``, on a read-only file system, without
permission); :func:`cannot_write` turns an ``OSError`` met while writing (a full disk) into the
same one-line :class:`OutputError`, ``cannot write PATH: reason``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from tmkt_data.errors import TmktError

#: Kernel file systems: they hold no user files, and creating one fails with a misleading reason.
PSEUDO_FILE_SYSTEMS = (Path("/proc"), Path("/sys"))


class OutputError(TmktError):
    """An output path cannot be written (``cannot write PATH: reason``)."""


def cannot_write(path: str | os.PathLike[str], err: OSError, *, resumable: bool = False) -> OutputError:
    """The one-line error for ``err`` met while writing ``path``; a full disk says how to go on."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno == errno.ENOSPC:
        reason += " (disk full)"
        if resumable:
            reason += "; free some space, then run the same command again to resume"
    return OutputError(f"cannot write {path}: {reason}")


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`OutputError` when ``path`` (a file or folder to create or update) cannot be
    written; returns it absolute. Probes the folder that will hold it with a nameless temporary
    file, so nothing is left behind."""
    p = Path(os.path.abspath(path))
    folder = p if p.is_dir() else p.parent
    while not folder.exists():
        folder = folder.parent
    for pseudo in PSEUDO_FILE_SYSTEMS:
        if folder == pseudo or pseudo in folder.parents:
            raise OutputError(f"cannot write {p}: {pseudo} is a kernel file system, not storage")
    if not folder.is_dir():
        raise OutputError(f"cannot write {p}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise cannot_write(p, err) from None
    return p


__all__ = ["OutputError", "cannot_write", "check_writable"]
