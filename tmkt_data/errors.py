"""One exception hierarchy for every user-facing failure in tmkt_data.

Every error renders as one line that names the file or value at fault and what
was expected, so command-line layers can print ``str(err)`` and exit with 2.
"""

from __future__ import annotations

from os import PathLike


class TmktError(Exception):
    """Base class of all errors raised on purpose by tmkt.

    Raised in a ``torch.utils.data.DataLoader`` worker, the error reaches the main process
    re-created from "Caught <type> in DataLoader worker process N. Original Traceback ...":
    the message is cut back to the original one line, so the command line still prints one line.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith("Caught "):
            args = (_original_message(args[0], type(self)),)
        super().__init__(*args)


def _original_message(text: str, cls: type) -> str:
    """The original message inside torch's re-raised worker text (``text`` itself if it is not one)."""
    head, sep, trace = text.partition("\nOriginal Traceback (most recent call last):\n")
    if not sep or " worker " not in head:
        return text
    prefix = f"{cls.__module__}.{cls.__qualname__}: "
    lines = trace.rstrip("\n").split("\n")
    for i in range(len(lines) - 1, -1, -1):  # the exception line: the last one naming the type
        if lines[i].startswith(prefix):
            return "\n".join([lines[i][len(prefix) :], *lines[i + 1 :]])
    return lines[-1]


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
