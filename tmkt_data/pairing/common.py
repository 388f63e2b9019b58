"""What every part of the pairing package shares: the error, the format name, the split names."""

from __future__ import annotations

from tmkt_data.errors import TmktError

PAIRS_FORMAT = "tmkt-pairs"
PAIRS_FORMAT_VERSION = 2
SPLITS = ("train", "val", "test")
LIST_MAX = 40  # names shown in one message


class PairingError(TmktError, ValueError):
    """Pairing cannot be done (bad store, class map, fractions) or a pairing index is inconsistent."""


def fmt_names(names: list[str]) -> str:
    """``'a', 'b', ... and N more``: at most :data:`LIST_MAX` names for a message."""
    shown = ", ".join(repr(n) for n in names[:LIST_MAX])
    return shown + (f" ... and {len(names) - LIST_MAX} more" if len(names) > LIST_MAX else "")
