"""Where a store lives: a local folder (``pathlib.Path``) or a URL on object storage (:class:`RemotePath`).

:func:`store_location` is the one place that tells them apart: a string holding ``://`` is a URL
(``s3://bucket/c10.zarr``; ``file://`` URLs are local paths), anything else is a local path and
stays a :class:`~pathlib.Path`, so every store function runs on it exactly as before. A
:class:`RemotePath` offers the few ``Path`` operations the store package uses (``/``, ``name``,
``parent``, ``relative_to``, ``exists``, ``is_file``, ``read_bytes``, ``write_bytes``, ``glob``,
``stat``...) on an fsspec file system, plus what has no ``Path`` form here (:func:`walk_files`,
:func:`remove_tree`, :func:`copy_tree`, :func:`tree_bytes`); zarr reads and writes it through
``zarr.storage.FsspecStore`` (:func:`zarr_target`).

Connection settings (:func:`storage_options`) come from the environment when the URL is parsed:
for ``s3://`` the variables s3fs users set (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION`` or
``AWS_REGION``; a profile or instance role is left to botocore when no key is set), for every
protocol a JSON object in ``TMKT_STORAGE_OPTIONS`` merged on top. A :class:`RemotePath` carries
them when pickled (to dask workers, DataLoader workers); the file system itself is made lazily in
each process (fsspec's instances and their event loops do not survive a fork).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePath, PurePosixPath
from types import SimpleNamespace
from typing import Any

from tmkt_data.store.core import StoreError

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://(.*)", re.DOTALL)
#: ``Path("s3://b/k")`` reads ``s3:/b/k``: a URL a caller wrapped in a Path, recognised for known protocols
_FOLDED = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):/([^/].*)", re.DOTALL)
_LOCAL = ("file", "local")
#: the package each common protocol needs (fsspec names it too, less plainly)
_PACKAGES = {"s3": "s3fs (pip install 'tmkt[s3]')", "s3a": "s3fs (pip install 'tmkt[s3]')", "gs": "gcsfs",
             "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}  # fmt: skip


def is_url(location: Any) -> bool:
    """True for a store given as a URL on object storage (a :class:`RemotePath`, or a string
    holding ``://`` other than ``file://``)."""
    if isinstance(location, RemotePath):
        return True
    if not isinstance(location, str):
        return False
    m = _URL.fullmatch(location)
    return m is not None and m[1].lower() not in _LOCAL


def store_location(location: str | os.PathLike[str] | RemotePath) -> Path | RemotePath:
    """The store at ``location``: a :class:`RemotePath` for a URL, else ``Path(location)``.

    Raises:
        StoreError: a malformed URL, an unknown protocol, or one whose package is not installed.
    """
    if isinstance(location, RemotePath):
        return location
    if isinstance(location, PurePath):
        m = _FOLDED.fullmatch(str(location))
        if m is not None and m[1].lower() not in _LOCAL and _known(m[1].lower()):
            return RemotePath(f"{m[1]}://{m[2]}")
        return Path(location)
    if isinstance(location, str):
        m = _URL.fullmatch(location)
        if m is not None:
            if m[1].lower() in _LOCAL:
                return Path(m[2])
            return RemotePath(location)
    return Path(location)


def resolve_store(location: str | os.PathLike[str] | RemotePath) -> Path | RemotePath:
    """:func:`store_location` made absolute: ``Path(location).expanduser().resolve()`` for a local path."""
    loc = store_location(location)
    return loc if isinstance(loc, RemotePath) else loc.expanduser().resolve()


def _known(protocol: str) -> bool:
    from fsspec.registry import known_implementations, registry

    return protocol in known_implementations or protocol in registry


def storage_options(protocol: str) -> dict[str, Any]:
    """fsspec options for ``protocol`` from the environment (module docstring); listings are never
    cached (other processes, e.g. dask workers, write the same store)."""
    env = os.environ
    opts: dict[str, Any] = {"use_listings_cache": False}
    if protocol in ("s3", "s3a"):
        # one GET per object: with more, s3fs asks for the size (a HEAD) before every whole read
        opts["max_concurrency"] = 1
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts["endpoint_url"] = endpoint
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            opts["key"], opts["secret"] = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
            if env.get("AWS_SESSION_TOKEN"):
                opts["token"] = env["AWS_SESSION_TOKEN"]
        region = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
        if region:
            opts["client_kwargs"] = {"region_name": region}
    extra = env.get("TMKT_STORAGE_OPTIONS")
    if extra:
        try:
            more = json.loads(extra)
        except ValueError:
            more = None
        if not isinstance(more, dict):
            raise StoreError(f"TMKT_STORAGE_OPTIONS {extra!r}: expected a JSON object of fsspec options")
        opts.update(more)
    return opts


def remote_error(where: Any, err: BaseException) -> StoreError | None:
    """The one-line error for a failure to reach object storage at all (no credentials, access
    denied, endpoint unreachable), or None for any other exception."""
    names = {c.__name__ for c in type(err).__mro__}
    if names & {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        return StoreError(
            f"{where}: no credentials for object storage ({err}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    if isinstance(err, PermissionError) or "InvalidAccessKeyId" in str(err):
        return StoreError(f"{where}: access denied ({err}); check the credentials (AWS_ACCESS_KEY_ID ...)")
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionError"}:
        return StoreError(
            f"{where}: cannot reach the object store ({err}); check AWS_ENDPOINT_URL and the network"
        )
    return None


class RemotePath:
    """A file or folder on object storage, with the ``pathlib.Path`` operations the store package uses.

    ``str()`` is the URL; equality and hashing use the URL only. The fsspec file system is looked
    up in the process that uses it (:attr:`fs`); the connection settings travel with the object.
    """

    __slots__ = ("key", "options", "protocol")

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        m = _URL.fullmatch(url)
        if m is None:
            raise StoreError(f"{url}: not a URL (expected PROTOCOL://BUCKET/PATH, e.g. s3://bucket/c10.zarr)")
        protocol, key = m[1].lower(), m[2].strip("/")
        parts = key.split("/")
        if len(parts) < 2 or not all(parts):
            raise StoreError(
                f"{url}: expected {protocol}://BUCKET/PATH (a store is a folder inside a bucket, "
                f"e.g. {protocol}://bucket/c10.zarr)"
            )
        try:
            from fsspec import get_filesystem_class

            get_filesystem_class(protocol)
        except ValueError:
            raise StoreError(f"{url}: unknown storage protocol {protocol!r}") from None
        except ImportError:
            need = _PACKAGES.get(protocol, f"the fsspec implementation of {protocol}://")
            raise StoreError(f"{url}: reading {protocol}:// needs {need}") from None
        self.protocol, self.key = protocol, key
        self.options = storage_options(protocol) if options is None else dict(options)

    @classmethod
    def _make(cls, protocol: str, key: str, options: dict[str, Any]) -> RemotePath:
        obj = cls.__new__(cls)
        obj.protocol, obj.key, obj.options = protocol, key, options
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemotePath._make, (self.protocol, self.key, self.options))

    # ------------------------------------------------------------------ names

    def __str__(self) -> str:
        return f"{self.protocol}://{self.key}"

    def __repr__(self) -> str:  # never the options: they may hold credentials
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and (self.protocol, self.key) == (other.protocol, other.key)

    def __hash__(self) -> int:
        return hash((self.protocol, self.key))

    def __truediv__(self, name: str | os.PathLike[str]) -> RemotePath:
        rel = str(name).strip("/")
        return RemotePath._make(self.protocol, f"{self.key}/{rel}" if rel else self.key, self.options)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> RemotePath:
        return RemotePath._make(self.protocol, self.key.rsplit("/", 1)[0], self.options)

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> RemotePath:
        return self.with_name(PurePosixPath(self.name).with_suffix(suffix).name)

    def relative_to(self, other: RemotePath) -> PurePosixPath:
        if not isinstance(other, RemotePath) or other.protocol != self.protocol:
            raise ValueError(f"{self} is not below {other}")
        if self.key == other.key:
            return PurePosixPath(".")
        if not self.key.startswith(other.key + "/"):
            raise ValueError(f"{self} is not below {other}")
        return PurePosixPath(self.key[len(other.key) + 1 :])

    def as_posix(self) -> str:
        return str(self)

    def resolve(self) -> RemotePath:
        return self

    def expanduser(self) -> RemotePath:
        return self

    # ------------------------------------------------------------------ the file system

    @property
    def fs(self) -> Any:
        """This process's fsspec file system for the path (synchronous API)."""
        return _filesystem(self.protocol, self.options, asynchronous=False)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``fs.<name>(*args)``, a failure to reach the store as one :class:`StoreError` line."""
        try:
            return getattr(self.fs, name)(*args, **kwargs)
        except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError):
            raise
        except Exception as err:
            mapped = remote_error(self, err)
            if mapped is None:
                raise
            raise mapped from None

    def exists(self) -> bool:
        return bool(self._call("exists", self.key))

    def is_file(self) -> bool:
        return bool(self._call("isfile", self.key))

    def is_dir(self) -> bool:
        return bool(self._call("isdir", self.key))

    def iterdir(self) -> Iterator[RemotePath]:
        for p in self._call("ls", self.key, detail=False):
            yield RemotePath._make(self.protocol, str(p).strip("/"), self.options)

    def glob(self, pattern: str) -> list[RemotePath]:
        return [
            RemotePath._make(self.protocol, p, self.options)
            for p in self._call("glob", f"{self.key}/{pattern}")
        ]

    def read_bytes(self) -> bytes:
        return bytes(self._call("cat_file", self.key))

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """One PUT: readers see the old object or the new one, never a part (what a rename gives locally)."""
        self._call("pipe_file", self.key, bytes(data))
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def create(self, data: bytes) -> None:
        """Write only if nothing is at the path yet (S3: ``If-None-Match: *``).

        Raises:
            FileExistsError: the object exists.
        """
        self._call("pipe_file", self.key, bytes(data), mode="create")

    def stat(self) -> SimpleNamespace:
        info = self._call("info", self.key)
        return SimpleNamespace(st_size=int(info.get("size") or 0), etag=info.get("ETag"))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self._call("rm_file", self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: object storage has no folders."""

    def rmdir(self) -> None:
        """Nothing to do: object storage has no folders."""


_FILESYSTEMS: dict[tuple[Any, ...], Any] = {}
#: file systems a forked child inherited: kept, never used, so their connections are not collected
#: in the child (aiohttp would report each one as an "Unclosed client session" on stderr)
_INHERITED: list[Any] = []


def _after_fork() -> None:
    _INHERITED.extend(_FILESYSTEMS.values())
    _FILESYSTEMS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _filesystem(protocol: str, options: dict[str, Any], *, asynchronous: bool) -> Any:
    """The fsspec file system of ``protocol`` with ``options``, made in (and kept for) this process
    and thread: instances and their event loops do not survive a fork."""
    import threading

    import fsspec

    token = json.dumps(options, sort_keys=True, default=str)
    key = (os.getpid(), threading.get_ident(), protocol, token, asynchronous)
    fs = _FILESYSTEMS.get(key)
    if fs is None:
        if len(_FILESYSTEMS) > 64:
            _FILESYSTEMS.clear()
        extra = {"asynchronous": True} if asynchronous else {}
        try:
            fs = fsspec.filesystem(protocol, **options, **extra)
        except TypeError as err:
            raise StoreError(f"{protocol}:// storage options: {err}") from None
        _FILESYSTEMS[key] = fs
    return fs


def check_bucket(location: RemotePath) -> None:
    """Refuse, in one line, a store whose bucket does not exist (or cannot be seen with these
    credentials); also the first request, so no credentials or an unreachable endpoint fail here."""
    bucket = location.key.split("/", 1)[0]
    if not location._call("exists", bucket):
        raise StoreError(
            f"{location}: bucket {bucket!r} does not exist (or these credentials cannot see it); "
            "create it first, or check AWS_ENDPOINT_URL"
        )


# ---------------------------------------------------------------------------- what Path cannot do


def zarr_target(location: Path | RemotePath, mode: str) -> Any:
    """What ``zarr.open_group``/``open_array`` open for ``location``: the path as a string (local,
    unchanged), or a ``zarr.storage.FsspecStore`` (read-only for ``mode="r"``)."""
    if not isinstance(location, RemotePath):
        return str(location)
    from zarr.storage import FsspecStore

    fs = _filesystem(location.protocol, location.options, asynchronous=True)
    return FsspecStore(fs, read_only=mode == "r", path=location.key)


def async_filesystem(location: RemotePath) -> Any:
    """The asynchronous fsspec file system zarr's ``FsspecStore`` needs for ``location``."""
    return _filesystem(location.protocol, location.options, asynchronous=True)


def walk_files(base: Path | RemotePath) -> Iterator[Path | RemotePath]:
    """Every file below the folder ``base`` (none when it does not exist)."""
    if isinstance(base, RemotePath):
        for key in base._call("find", base.key):
            yield RemotePath._make(base.protocol, key, base.options)
        return
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            yield Path(dirpath) / name


def read_many(files: list[RemotePath]) -> dict[RemotePath, bytes]:
    """The bytes of several objects of one file system, fetched concurrently."""
    if not files:
        return {}
    got = files[0]._call("cat", [f.key for f in files], on_error="omit")
    by_key = {str(k).strip("/"): v for k, v in got.items()}
    return {f: bytes(by_key[f.key]) for f in files if f.key in by_key}


def remove_tree(path: Path | RemotePath, *, ignore_errors: bool = False) -> None:
    """Delete the folder ``path`` and everything below it."""
    if not isinstance(path, RemotePath):
        import shutil

        shutil.rmtree(path, ignore_errors=ignore_errors)
        return
    try:
        if path.exists():
            path._call("rm", path.key, recursive=True)
    except FileNotFoundError:
        pass
    except Exception:
        if not ignore_errors:
            raise


def copy_tree(src: RemotePath, dst: RemotePath) -> None:
    """Copy every object below ``src`` to the same place below ``dst`` (server-side copies)."""
    for f in walk_files(src):
        target = dst / f.relative_to(src).as_posix()
        f._call("copy", f.key, target.key)


def tree_bytes(path: Path | RemotePath) -> int:
    """Total size in bytes of the files below ``path``."""
    if isinstance(path, RemotePath):
        return int(path._call("du", path.key, total=True)) if path.exists() else 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


__all__ = [
    "RemotePath",
    "async_filesystem",
    "check_bucket",
    "copy_tree",
    "is_url",
    "read_many",
    "remote_error",
    "remove_tree",
    "resolve_store",
    "storage_options",
    "store_location",
    "tree_bytes",
    "walk_files",
    "zarr_target",
]
