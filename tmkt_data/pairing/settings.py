"""What a pairing is asked to do: one settings object for ``tmkt-data pair``, :func:`pair_store`
and a pipeline recipe's ``[pair]`` table.

Every recipe key means what its flag means:

====================  =====================================  ========================
recipe key            flag                                   :class:`PairSettings`
====================  =====================================  ========================
rgb_kind, rgb_root    the arguments RGB_KIND, RGB_ROOT       rgb_kind, rgb_root
class_map             --class-map                            class_map
drop_unmatched        --drop-unmatched                       drop_unmatched
val_fraction          --val-fraction                         val_fraction
val_per_class         --val-per-class                        val_per_class
dvs_fraction          --dvs-fraction                         dvs_fraction
dvs_per_class         --dvs-per-class                        dvs_per_class
exclude_eval_sources  --exclude-eval-sources/--keep-...      exclude_eval_sources
seed                  --seed                                 seed
instance              --instance                             instance
grayscale             --grayscale                            encode_mode ``"gray"``
options               --rgb-option KEY=VALUE                 rgb_options
split_array           --split                                split_array
====================  =====================================  ========================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tmkt_data.mapping import check_keys
from tmkt_data.pairing.common import PairingError
from tmkt_data.rgb.encode import ENCODE_MODES

#: recipe keys, in the order of :meth:`PairSettings.to_mapping`
RECIPE_KEYS = (
    "rgb_kind", "rgb_root", "val_fraction", "val_per_class", "dvs_fraction", "dvs_per_class",
    "exclude_eval_sources", "seed", "instance", "class_map", "options", "grayscale", "drop_unmatched",
    "split_array",
)  # fmt: skip
#: the selection settings, in the order ``pairs/`` records them
SELECTION_KEYS = ("val_fraction", "val_per_class", "dvs_fraction", "dvs_per_class", "exclude_eval_sources")
DEFAULT_VAL_FRACTION = 0.1


def check_fraction(name: str, value: Any, *, lo_open: bool, allow_one: bool) -> float:
    """``value`` as a float in ``0 < F`` (``lo_open``) or ``0 <= F``, and ``F <= 1`` (``allow_one``)
    or ``F < 1``; PairingError naming the option otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    ok = (v > 0 if lo_open else v >= 0) and (v <= 1 if allow_one else v < 1)
    if not ok:
        rng = ("0 < F" if lo_open else "0 <= F") + (" <= 1" if allow_one else " < 1")
        raise PairingError(f"{name} {value!r}: expected {rng}")
    return v


def check_count(name: str, value: Any, minimum: int) -> int | None:
    """``value`` as an int >= ``minimum``, or None for None; PairingError naming the option otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise PairingError(f"{name} {value!r}: expected an integer >= {minimum}")
    return int(value)


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise PairingError(f"{name} {value!r}: expected true or false")
    return bool(value)


@dataclass(frozen=True)
class PairSettings:
    """The settings of one pairing (see :func:`tmkt_data.pairing.pair_store` for their meaning).

    Built from flags (``tmkt-data pair``), keyword arguments (:func:`pair_store`) or a
    recipe table (:meth:`from_mapping`); :meth:`validated` checks them and fills in the
    defaults (``val_fraction`` 0.1 unless ``val_per_class`` is given), :meth:`to_mapping`
    gives them back as recipe keys (what a pipeline records as ``pipeline_settings``).
    """

    rgb_kind: str
    rgb_root: str | os.PathLike[str] | None = None
    class_map: str | os.PathLike[str] | dict[str, Any] | None = None
    drop_unmatched: bool = False
    val_fraction: float | None = None
    val_per_class: int | None = None
    dvs_fraction: float = 1.0
    dvs_per_class: int | None = None
    exclude_eval_sources: bool = True
    seed: int = 0
    instance: bool = False
    encode_mode: str = "hsv_v"
    rgb_options: dict[str, Any] = field(default_factory=dict)
    split_array: str = "split"

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, rgb_root: str | None = None) -> PairSettings:
        """Settings from a recipe's ``[pair]`` table (keys :data:`RECIPE_KEYS`), validated;
        ``rgb_root``, when given, replaces the table's.

        Raises:
            PairingError: an unknown key, no ``rgb_kind``, or a value its flag would refuse.
        """
        check_keys(table, RECIPE_KEYS, "[pair]", PairingError)
        if not isinstance(table.get("rgb_kind"), str):
            raise PairingError(f"[pair]: rgb_kind {table.get('rgb_kind')!r}: expected an RGB source name")
        options = table.get("options", {})
        if not isinstance(options, Mapping):
            raise PairingError(f"[pair]: options {options!r}: expected a table of RGB reader options")
        return cls(
            rgb_kind=table["rgb_kind"],
            rgb_root=rgb_root if rgb_root is not None else table.get("rgb_root"),
            class_map=table.get("class_map"),
            drop_unmatched=table.get("drop_unmatched", False),
            val_fraction=table.get("val_fraction"),
            val_per_class=table.get("val_per_class"),
            dvs_fraction=table.get("dvs_fraction", 1.0),
            dvs_per_class=table.get("dvs_per_class"),
            exclude_eval_sources=table.get("exclude_eval_sources", True),
            seed=table.get("seed", 0),
            instance=table.get("instance", False),
            encode_mode="gray" if _check_flag("grayscale", table.get("grayscale", False)) else "hsv_v",
            rgb_options=dict(options),
            split_array=table.get("split_array", "split"),
        ).validated()

    def validated(self) -> PairSettings:
        """These settings checked, with ``val_fraction`` filled in and numbers as float / int.

        Raises:
            PairingError: a value out of range, or both of ``val_fraction`` and
                ``val_per_class`` (or ``dvs_fraction`` and ``dvs_per_class``).
        """
        val_per_class = check_count("--val-per-class", self.val_per_class, 0)
        dvs_per_class = check_count("--dvs-per-class", self.dvs_per_class, 1)
        val_fraction = self.val_fraction
        if val_fraction is not None and val_per_class is not None:
            raise PairingError(
                f"--val-fraction {val_fraction!r} and --val-per-class {val_per_class}: give one of them"
            )
        if val_per_class is None:
            val_fraction = check_fraction(
                "--val-fraction",
                DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction,
                lo_open=False,
                allow_one=False,
            )
        dvs_fraction = check_fraction("--dvs-fraction", self.dvs_fraction, lo_open=True, allow_one=True)
        if dvs_per_class is not None and dvs_fraction != 1.0:
            raise PairingError(
                f"--dvs-fraction {dvs_fraction!r} and --dvs-per-class {dvs_per_class}: give one of them"
            )
        exclude = _check_flag("exclude_eval_sources", self.exclude_eval_sources)
        instance = _check_flag("instance", self.instance)
        drop_unmatched = _check_flag("drop_unmatched", self.drop_unmatched)
        if self.encode_mode not in ENCODE_MODES:
            raise PairingError(f"encode mode {self.encode_mode!r}, expected one of {', '.join(ENCODE_MODES)}")
        try:
            seed = int(self.seed)
        except (TypeError, ValueError):
            raise PairingError(f"--seed {self.seed!r}: expected an integer") from None
        if not isinstance(self.split_array, str):
            raise PairingError(f"--split {self.split_array!r}: expected a store array name")
        if not isinstance(self.rgb_options or {}, Mapping):
            raise PairingError(
                f"RGB reader options {self.rgb_options!r}: expected KEY=VALUE options (a table)"
            )
        return replace(
            self,
            val_fraction=val_fraction,
            val_per_class=val_per_class,
            dvs_fraction=dvs_fraction,
            dvs_per_class=dvs_per_class,
            exclude_eval_sources=exclude,
            instance=instance,
            drop_unmatched=drop_unmatched,
            seed=seed,
            rgb_options=dict(self.rgb_options or {}),
        )

    def selection(self) -> dict[str, Any]:
        """The selection settings as recorded in ``pairs/`` (and hashed into the pairing id)."""
        return {k: getattr(self, k) for k in SELECTION_KEYS}

    def to_mapping(self) -> dict[str, Any]:
        """The settings as recipe keys (:data:`RECIPE_KEYS`), JSON values: a pipeline's record."""
        return {
            "rgb_kind": self.rgb_kind,
            "rgb_root": self.rgb_root,
            **self.selection(),
            "seed": self.seed,
            "instance": self.instance,
            "class_map": self.class_map,
            "options": dict(self.rgb_options),
            "grayscale": self.encode_mode == "gray",
            "drop_unmatched": self.drop_unmatched,
            "split_array": self.split_array,
        }
