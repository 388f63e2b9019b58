"""A writable place for numba's on-disk cache, chosen before any ``cache=True`` kernel is defined.

numba caches a compiled kernel next to its source (``__pycache__``) or, when that
is read-only, under the user's cache folder (``~/.cache/numba``). When neither is
writable (a package installed by root, a user without a writable home) every
``@njit(cache=True)`` raises "no locator available" at import, so nothing in
tmkt_data would load. :func:`ensure_numba_cache` then points numba at a private
per-user folder in the temporary directory. It leaves ``NUMBA_CACHE_DIR`` alone
when the user set it.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# every folder holding a module with @njit(cache=True) kernels
_KERNEL_DIRS = (_PACKAGE, _PACKAGE / "formats", _PACKAGE / "synth")


def _writable(folder: str | os.PathLike[str]) -> bool:
    """What numba's locators check: the folder can be created and a file written in it."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def _user_cache_dir() -> str:
    from numba.misc.appdirs import AppDirs

    return AppDirs(appname="numba", appauthor=False).user_cache_dir


def _private_temp_dir() -> str | None:
    """``<tmp>/tmkt-numba-<uid>``, made owner-only; a fresh ``mkdtemp`` when that name is unsafe.

    The cache holds pickles numba loads back, so a folder another user could write into is never used.
    """
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        if uid is None:  # no owner to check (Windows): a new folder each time
            return tempfile.mkdtemp(prefix="tmkt-numba-")
        path = os.path.join(tempfile.gettempdir(), f"tmkt-numba-{uid}")
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
        private = (
            stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        )
        if private and _writable(path):
            return path
        return tempfile.mkdtemp(prefix="tmkt-numba-")
    except OSError:
        return None


def ensure_numba_cache() -> str | None:
    """Set numba's cache folder when neither the package nor the user cache is writable.

    Returns the folder it set, or None when numba's own choice works (or the user set
    ``NUMBA_CACHE_DIR``, or no writable folder exists at all).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if all(_writable(d / "__pycache__") for d in _KERNEL_DIRS):
        return None
    if _writable(_user_cache_dir()):
        return None
    path = _private_temp_dir()
    if path is None:
        return None
    os.environ["NUMBA_CACHE_DIR"] = path
    config = sys.modules.get("numba.core.config")  # numba reads the variable once, when imported
    if config is not None:
        config.CACHE_DIR = path
    return path
