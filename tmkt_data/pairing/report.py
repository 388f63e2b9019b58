"""What a pairing did: :class:`PairReport`, the one record from which ``tmkt-data pair``'s tables and
``--json`` and the stored ``rgb/`` and ``pairs/`` attributes (:meth:`PairReport.stored_attrs`) derive."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from tmkt_data.jsonutil import json_default
from tmkt_data.pairing.common import PAIRS_FORMAT, PAIRS_FORMAT_VERSION, SPLITS
from tmkt_data.pairing.settings import SELECTION_KEYS

_STORED = {"stored_only": True}  # fields recorded in the store but not part of to_dict (the --json output)


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars turned into Python ones and NaN into None (zarr attrs are JSON)."""
    obj = json.loads(json.dumps(obj, default=json_default, allow_nan=True))

    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(obj)


def selection_rules(exclude_eval_sources: bool) -> dict[str, str]:
    """The selection rules in words (recorded as ``pairs/`` attribute ``rules``)."""
    return {
        "order": "per class, samples ordered by sha256('<seed>/<purpose>/<sample_id>'), "
        "purpose val, then dvs_fraction for both train selections",
        "val": "the first val_per_class samples of the store's train split, or "
        "n_val = floor(val_fraction * n + 1/2), at most n - 1",
        "train": "the first dvs_per_class of the samples left after val, or "
        "n_keep = ceil(dvs_fraction * m) of the m left, at least 1",
        "pools": "RGB train-split images of the matched RGB classes"
        + (
            ", excluding the sources of DVS val/test samples (eval_rgb; where the instance link is known)"
            if exclude_eval_sources
            else "; the sources of DVS val/test samples (eval_rgb) stay in (exclude_eval_sources false)"
        ),
        "dvs": "valid samples of matched classes only",
    }


def encoding_text(encode_mode: str) -> str:
    """How ``rgb/images`` were made from the RGB images, in words."""
    return (
        "PIL bilinear resize of the uint8 image to (H, W), then "
        + ("HSV V = max(R, G, B) / 255" if encode_mode == "hsv_v" else "ITU-R 601 luma / 255")
        + ", copied into both polarity channels"
    )


@dataclass
class PairReport:
    """What :func:`~tmkt_data.pairing.pair_store` did (also what ``tmkt-data pair`` prints).

    Selection: ``val_fraction`` (None when ``val_per_class`` is given),
    ``val_per_class``, ``dvs_fraction``, ``dvs_per_class`` (None when not
    given). ``per_class`` rows: class, DVS ``train``/``val``/``test`` counts,
    ``pool`` size and ``excluded`` (RGB training images of the class kept out
    of its pool). Pool hygiene: ``instance_rule`` is the instance link used
    (None: unknown), ``eval_source_images`` the RGB training images that are
    sources of DVS val/test samples (None when the link is unknown),
    ``pool_excluded`` those kept out of the pools (0 with
    ``exclude_eval_sources=False``).

    The fields after ``seconds`` are recorded in the store only (not in :meth:`to_dict`).
    """

    store: str
    dvs_dataset: str
    rgb_kind: str
    rgb_root: str | None
    rgb_images: int
    rgb_split_counts: dict[str, int]
    class_mapping: list[dict[str, Any]]
    dvs_classes_dropped: list[str]
    rgb_classes_unused: list[str]
    split_counts: dict[str, int]
    per_class: list[dict[str, Any]]
    seed: int
    val_fraction: float | None
    val_per_class: int | None
    dvs_fraction: float
    dvs_per_class: int | None
    encode_mode: str
    size: tuple[int, int]
    class_map: dict[str, Any] | None
    instance: bool
    instance_rule: str | None
    partners: dict[str, dict[str, int]] | None
    orientation: dict[str, Any] | None
    exclude_eval_sources: bool
    eval_source_images: int | None
    pool_excluded: int
    synthetic: bool
    warnings: list[str]
    pairing_id: str
    seconds: float = 0.0
    dvs_classes: list[str] = field(default_factory=list, metadata=_STORED)
    dvs_split_array: str = field(default="split", metadata=_STORED)
    store_index_hash: str | None = field(default=None, metadata=_STORED)
    store_params_hash: str | None = field(default=None, metadata=_STORED)
    rgb_options: dict[str, Any] = field(default_factory=dict, metadata=_STORED)
    rgb_class_names: list[str] = field(default_factory=list, metadata=_STORED)
    rgb_source_info: dict[str, Any] = field(default_factory=dict, metadata=_STORED)
    extra_attrs: dict[str, Any] = field(default_factory=dict, metadata=_STORED)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values (``tmkt-data pair --json``)."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("stored_only")}
        return json.loads(json.dumps(shown, default=json_default))

    def selection(self) -> dict[str, Any]:
        """The selection settings (:data:`~tmkt_data.pairing.settings.SELECTION_KEYS`)."""
        return {k: getattr(self, k) for k in SELECTION_KEYS}

    def rgb_attrs(self) -> dict[str, Any]:
        """The ``rgb`` group's attributes."""
        return {
            "format": PAIRS_FORMAT,
            "format_version": PAIRS_FORMAT_VERSION,
            "pairing_id": self.pairing_id,
            "kind": self.rgb_kind,
            "root": self.rgb_root,
            "options": self.rgb_options,
            "class_names": list(self.rgb_class_names),
            "dvs_classes": self.dvs_classes,
            "encode_mode": self.encode_mode,
            "encoding": encoding_text(self.encode_mode),
            "size": list(self.size),
            "n_images": self.rgb_images,
            "split_counts": self.rgb_split_counts,
            "source_info": self.rgb_source_info,
        }

    def pairs_attrs(self) -> dict[str, Any]:
        """The ``pairs`` group's attributes (``extra_attrs`` last)."""
        rows = self.per_class
        return {
            "format": PAIRS_FORMAT,
            "format_version": PAIRS_FORMAT_VERSION,
            "pairing_id": self.pairing_id,
            "store_index_hash": self.store_index_hash,
            "store_params_hash": self.store_params_hash,
            "dvs_dataset": self.dvs_dataset,
            "dvs_classes": self.dvs_classes,
            "dvs_split_array": self.dvs_split_array,
            "rgb_kind": self.rgb_kind,
            "seed": self.seed,
            **self.selection(),
            "rules": selection_rules(self.exclude_eval_sources),
            "instance": self.instance,
            "instance_rule": self.instance_rule,
            "class_mapping": self.class_mapping,
            "dvs_classes_dropped": self.dvs_classes_dropped,
            "rgb_classes_unused": self.rgb_classes_unused,
            "class_map": self.class_map,
            "counts": {sp: {r["class"]: r[sp] for r in rows} for sp in SPLITS},
            "split_totals": self.split_counts,
            "pool_sizes": {r["class"]: r["pool"] for r in rows},
            "eval_source_images": self.eval_source_images,
            "pool_excluded": self.pool_excluded,
            "partners": self.partners,
            "orientation": self.orientation,
            "synthetic": self.synthetic,
            "warnings": self.warnings,
            **self.extra_attrs,
        }

    def stored_attrs(self) -> dict[str, dict[str, Any]]:
        """``{"rgb": ..., "pairs": ...}``: the groups' attributes as JSON values (NaN as None)."""
        return {"rgb": jsonable(self.rgb_attrs()), "pairs": jsonable(self.pairs_attrs())}
