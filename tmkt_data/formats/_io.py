"""Small, safe byte-level helpers shared by the readers."""

from __future__ import annotations

import os
from pathlib import Path

from tmkt_data.errors import FormatError

#: Largest file any reader will load into memory (bytes); guards against absurd inputs.
MAX_FILE_BYTES = 8 * 1024**3


def read_file_bytes(path: str | os.PathLike[str], *, allow_empty: bool = False) -> bytes:
    """Read a whole file, turning OS errors and empty files into :class:`FormatError`."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise FormatError(p, "file not found") from None
    except OSError as err:
        raise FormatError(p, f"cannot stat file ({err.strerror})") from None
    if p.is_dir():
        raise FormatError(p, "is a folder, expected an event file")
    if size == 0 and not allow_empty:
        raise FormatError(p, "file is empty, expected event data", offset=0)
    if size > MAX_FILE_BYTES:
        raise FormatError(p, f"file is {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit")
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


def read_hash_header(data: bytes, path: str | os.PathLike[str], *, end_line: bytes | None = None) -> tuple[
    list[str], int
]:
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
