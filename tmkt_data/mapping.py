"""Tables of named values (recipe tables, command-line values, option bags): one way to refuse an
unknown key and to name a key in an error the way the user wrote it.

Used by :meth:`tmkt_data.convert.ConvertOptions.from_mapping`, :meth:`tmkt_data.synth.SynthJob.from_mapping`,
:meth:`tmkt_data.pairing.PairSettings.from_mapping`, ``tmkt_train.pipeline`` (recipe tables), the
layouts' ``scan`` and the RGB sources' loaders (their options).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

ErrorType = Callable[[str], Exception]


def check_keys(table: Mapping[str, Any], allowed: Collection[str], where: str, error: ErrorType) -> None:
    """Refuse keys of ``table`` that are not in ``allowed``.

    Raises:
        ``error``: ``"<where>: unknown key(s) a, b; expected some of <allowed>"``, the allowed keys
        in their order (sorted when ``allowed`` is a set).
    """
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        listed = sorted(allowed) if isinstance(allowed, set | frozenset) else list(allowed)
        raise error(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(listed)}")


def check_no_options(owner: str, options: Mapping[str, Any], error: ErrorType) -> None:
    """Refuse the options a reader did not take (its ``**options`` leftovers).

    Raises:
        ``error``: ``"<owner>: unknown option(s) a, b"`` when ``options`` is not empty.
    """
    if options:
        raise error(f"{owner}: unknown option(s) {', '.join(sorted(options))}")


def option_name(key: str, where: str = "", flags: Mapping[str, str] | None = None) -> str:
    """How an error names option ``key``: ``"r.toml [convert] frames ="`` in the recipe table
    ``where``; else its command-line flag, ``--`` plus the key with dashes unless ``flags`` maps
    it to another (``{"options": "--option"}``). A dotted key names an entry of an option bag:
    ``"options.sensor_size"`` is ``"--option sensor_size"`` (``"... options.sensor_size ="`` in a table).
    """
    if where:
        return f"{where} {key} ="
    head, _, sub = key.partition(".")
    flag = (flags or {}).get(head, "--" + head.replace("_", "-"))
    return f"{flag} {sub}" if sub else flag


__all__ = ["check_keys", "check_no_options", "option_name"]
