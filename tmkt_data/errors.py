"""One exception hierarchy for every user-facing failure in tmkt_data.

Every error renders as one line that names the file or value at fault and what
was expected, so command-line layers can print ``str(err)`` and exit with 2.
"""

from __future__ import annotations

from os import PathLike


class TmktError(Exception):
    """Base class of all errors raised on purpose by tmkt."""


class FormatError(TmktError, ValueError):
    """A file cannot be decoded as the format it claims (or was asked) to be.

    Args:
        path: the file at fault.
        message: what is wrong and what was expected.
        offset: byte offset of the problem, when known.
    """

    def __init__(self, path: str | PathLike[str], message: str, offset: int | None = None):
        self.path = str(path)
        self.offset = offset
        self.reason = message
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{self.path}{where}: {message}")


class EventsError(TmktError, ValueError):
    """An event array or a binning request is invalid (bad field, coordinate, option)."""
