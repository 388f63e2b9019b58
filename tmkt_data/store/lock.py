"""One writer per store: a lock file next to the store while ``convert`` or ``pair`` writes it.

The lock is ``<store>.lock`` beside the store folder (``c10.zarr.lock``), so it
survives ``convert --overwrite`` replacing the folder. It holds JSON naming the
process (pid, host), the action and its start time, and is created with
``O_EXCL``: a second writer gets a :class:`StoreLockedError` naming the holder.
A lock left by a crashed run is taken over when its process is gone (same
host, pid no longer running); a lock from another host is never guessed
stale: the message says which file to delete once that run is known to be over.

A store on object storage gets the object ``<store>.lock`` beside its prefix
(``s3://bucket/c10.zarr.lock``), created with a conditional write (S3 ``If-None-Match: *``),
which holds as ``O_EXCL`` does; the same JSON, the same take-over rule. Taking it, tmkt checks
that the server refuses a second conditional write of it: a server that ignores the condition
cannot give one writer, and the writer stops with a :class:`~tmkt_data.store.core.StoreError`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

from tmkt_data.errors import TmktError
from tmkt_data.store.core import StoreError
from tmkt_data.store.location import RemotePath, resolve_store, store_location

#: An unreadable lock file (e.g. caught while being written) older than this is stale (s).
_UNREADABLE_STALE_S = 10.0


class StoreLockedError(TmktError, RuntimeError):
    """Another process is writing the store."""


def lock_path(store: str | os.PathLike[str] | RemotePath) -> Path | RemotePath:
    """``<store>.lock``, next to the store folder (or the store's prefix on object storage)."""
    loc = store_location(store)
    if isinstance(loc, RemotePath):
        return loc.with_name(loc.name + ".lock")
    p = Path(store)
    return p.with_name(p.name + ".lock")


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(lock: Path) -> dict[str, Any] | None:
    """The lock's contents, or None when it is stale (its process is gone on this host)."""
    try:
        info = json.loads(lock.read_text())
        pid, host = int(info["pid"]), str(info["host"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        try:
            age = time.time() - lock.stat().st_mtime
        except OSError:
            return None
        return None if age > _UNREADABLE_STALE_S else {"pid": "?", "host": "?", "action": "?", "started": "?"}
    if host == socket.gethostname() and not _pid_running(pid):
        return None
    return info


@contextmanager
def store_lock(store: str | os.PathLike[str], action: str) -> Iterator[Path]:
    """Hold ``<store>.lock`` for the duration of the block; yields the lock's path.

    Raises:
        StoreLockedError: another live process holds the lock.
    """
    with hold_lock(lock_path(store), str(store), action) as lock:
        yield lock


@contextmanager
def hold_lock(
    lock: Path, what: str, action: str, error: type[Exception] = StoreLockedError
) -> Iterator[Path]:
    """Hold the lock file ``lock`` (guarding ``what``, named in messages) for the duration of the block.

    The same protocol as :func:`store_lock` (which is this for ``<store>.lock``); other
    folders that need one writer (a training run's ``run.lock``) use it with their own
    ``error`` type.

    Raises:
        error: another live process holds the lock.
    """
    if isinstance(lock, RemotePath):
        with _hold_remote_lock(lock, what, action, error) as held:
            yield held
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = _me(action)

    def create() -> None:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(me))

    _take(lock, what, error, create, _holder)
    try:
        yield lock
    finally:
        _release(lock, me)


def _me(action: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "action": action,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _locked(error: type[Exception], what: str, holder: dict[str, Any], lock: Any) -> Exception:
    return error(
        f"{what}: in use by '{holder.get('action')}' (pid {holder.get('pid')} on "
        f"{holder.get('host')}, since {holder.get('started')}); wait for it to finish, "
        f"or delete {lock} if that run is gone"
    )


def _take(
    lock: Path | RemotePath,
    what: str,
    error: type[Exception],
    create: Callable[[], None],
    holder: Callable[[Any], dict[str, Any] | None],
) -> None:
    """Create the lock with ``create`` (``FileExistsError`` when it exists), for a local file and an
    object alike: a live holder is refused with ``error``, a stale lock (``holder`` None) is removed
    and the lock tried again, three times at most."""
    for _attempt in range(3):
        try:
            create()
        except FileExistsError:
            found = holder(lock)
            if found is not None:
                raise _locked(error, what, found, lock) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        break
    else:  # pragma: no cover - three stale locks in a row means another writer keeps racing us
        raise error(f"{what}: could not take {lock}; another process keeps creating it")


def _release(lock: Path | RemotePath, me: dict[str, Any]) -> None:
    """Remove the lock when it still names this process (one taken over meanwhile is left)."""
    try:
        info = json.loads(lock.read_bytes())
        if info.get("pid") == me["pid"] and info.get("host") == me["host"]:
            lock.unlink(missing_ok=True)
    except (OSError, ValueError, StoreError):
        pass


def _remote_holder(lock: RemotePath) -> dict[str, Any] | None:
    """The remote lock's contents, or None when it is gone or stale (its process is gone on this
    host, or it is unreadable: an object is written whole, so it never was a lock)."""
    try:
        info = json.loads(lock.read_bytes())
        pid, host = int(info["pid"]), str(info["host"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None
    if host == socket.gethostname() and not _pid_running(pid):
        return None
    return info


@contextmanager
def _hold_remote_lock(
    lock: RemotePath, what: str, action: str, error: type[Exception]
) -> Iterator[RemotePath]:
    """:func:`hold_lock` on object storage: a conditional create instead of ``O_EXCL``."""
    me = _me(action)
    blob = json.dumps(me).encode()
    _take(lock, what, error, lambda: lock.create(blob), _remote_holder)
    try:
        lock.create(blob)  # must be refused now, or the server ignores conditional writes
    except FileExistsError:
        pass
    else:
        lock.unlink(missing_ok=True)
        raise StoreError(
            f"{what}: the object store does not honour conditional writes (If-None-Match), so tmkt "
            "cannot keep a second writer out; write the store locally and copy it up"
        )
    try:
        yield lock
    finally:
        _release(lock, me)


def holds_store_lock(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: run ``fn(store, ...)`` holding :func:`store_lock` of its first argument."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(store: Any, *args: Any, **kwargs: Any) -> Any:
            with store_lock(resolve_store(store), action):
                return fn(store, *args, **kwargs)

        return wrapper

    return deco
