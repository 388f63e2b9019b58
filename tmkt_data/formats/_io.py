"""Small, safe byte-level helpers shared by the readers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tmkt_data.errors import FormatError

#: Largest file any reader will load into memory (bytes); guards against absurd inputs.
MAX_FILE_BYTES = 8 * 1024**3


def check_file(path: str | os.PathLike[str]) -> tuple[Path, int]:
    """(path, size in bytes) of an event file that exists, is a file, is not empty and is not
    absurdly large; otherwise :class:`FormatError`."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise FormatError(p, "file not found") from None
    except OSError as err:
        raise FormatError(p, f"cannot stat file ({err.strerror})") from None
    if p.is_dir():
        raise FormatError(p, "is a folder, expected an event file")
    if size == 0:
        raise FormatError(p, "file is empty, expected event data", offset=0)
    if size > MAX_FILE_BYTES:
        raise FormatError(p, f"file is {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit")
    return p, size


def read_file_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a whole file, turning OS errors and empty files into :class:`FormatError`."""
    p, _ = check_file(path)
    try:
        return p.read_bytes()
    except OSError as err:
        raise FormatError(p, f"cannot read file ({err.strerror})") from None


def read_head(path: str | os.PathLike[str], n: int = 64) -> bytes:
    """First ``n`` bytes of a file (fewer if shorter); OS errors become :class:`FormatError`."""
    p = Path(path)
    if p.is_dir():
        raise FormatError(p, "is a folder, expected an event file")
    try:
        with open(p, "rb") as fh:
            return fh.read(n)
    except FileNotFoundError:
        raise FormatError(p, "file not found") from None
    except OSError as err:
        raise FormatError(p, f"cannot read file ({err.strerror})") from None


def read_hash_header(
    data: bytes, path: str | os.PathLike[str], *, end_line: bytes | None = None
) -> tuple[list[str], int]:
    """Parse the ``#``-prefixed ASCII header lines of an AEDAT 1/2/3 file.

    Returns the decoded lines (without line endings) and the byte offset where
    the body starts. With ``end_line`` the header must contain that exact line
    (e.g. ``b"#!END-HEADER"``) and the body starts right after it.
    """
    lines: list[str] = []
    pos = 0
    n = len(data)
    while pos < n and data[pos : pos + 1] == b"#":
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise FormatError(path, "header line does not end with a newline", offset=pos)
        raw = data[pos:nl].rstrip(b"\r")
        lines.append(raw.decode("latin-1"))
        pos = nl + 1
        if end_line is not None and raw == end_line:
            return lines, pos
    if end_line is not None:
        raise FormatError(path, f"header has no {end_line.decode()!r} line", offset=pos)
    return lines, pos


def _new_file_mode(final: Path) -> int:
    """Mode for a new file: the replaced file's, else 0o666 less the umask (mkstemp uses 0o600)."""
    try:
        return final.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_path(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """(final path, temporary path next to it) for an atomic write."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _new_file_mode(p))
    except OSError:
        pass
    return p, tmp


def finish_atomic(tmp: str, final: Path, ok: bool) -> None:
    """Rename ``tmp`` over ``final`` when ``ok``, else remove it."""
    if ok:
        os.replace(tmp, final)
    else:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it over ``path``."""
    final, tmp = atomic_path(path)
    ok = False
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        ok = True
    finally:
        finish_atomic(tmp, final, ok)
