"""The pairing planner: which DVS samples go to train/val/test and which RGB images form each pool.

:func:`plan_pairing` is pure: numpy arrays and lists in (:class:`DvsSamples`,
:class:`RgbCatalog`, the :class:`~tmkt_data.pairing.classmap.ClassMatch`, the
:class:`~tmkt_data.pairing.settings.PairSettings` and the
:class:`~tmkt_data.pairing.instances.InstanceLink`), a :class:`PairingPlan` out; it
reads and writes nothing.

* DVS splits: the store's split array gives train and test (valid samples of matched
  classes only); ``val`` is carved from train, per class; then ``dvs_fraction`` or
  ``dvs_per_class`` keeps part of the remaining train samples per class. Both
  selections order a class's samples by ``sha256("<seed>/<purpose>/<sample_id>")``
  (purpose ``val``, then ``dvs_fraction`` for both train selections), so they are
  deterministic, independent of other classes and samples, and a smaller fraction or
  count keeps a subset of a larger one's samples.

  - ``n_val = floor(val_fraction * n + 1/2)`` (round half up), at most ``n - 1``;
    or exactly ``val_per_class`` (the class needs at least ``val_per_class + 1``).
  - ``n_keep = ceil(dvs_fraction * m)`` of the ``m`` remaining, at least 1;
    or exactly ``dvs_per_class`` (the class needs at least that many).

* RGB pools: for each DVS class, the RGB images of its matched RGB classes in the RGB
  source's train split. Where the instance link is known, the RGB images that are the
  sources of DVS val or test samples are left out of the pools (no appearance leak into
  validation/test), with or without ``instance``, unless ``exclude_eval_sources=False``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tmkt_data.pairing.classmap import ClassMatch
from tmkt_data.pairing.common import LIST_MAX, SPLITS, PairingError, fmt_names
from tmkt_data.pairing.index import PairIndex, check_index
from tmkt_data.pairing.instances import InstanceLink
from tmkt_data.pairing.settings import PairSettings


def n_val_for(n: int, fraction: float) -> int:
    """Validation samples carved from a class of ``n`` train samples: round half up, keeping one for train."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, int(math.floor(round(fraction * n, 9) + 0.5)))


def n_keep_for(m: int, fraction: float) -> int:
    """Train samples kept of ``m`` by ``dvs_fraction``: ceil, at least one (when ``m`` > 0)."""
    if m == 0:
        return 0
    if fraction >= 1:
        return m
    return min(m, max(1, math.ceil(round(fraction * m, 9))))


def _order_key(seed: int, purpose: str, sample_id: str) -> bytes:
    return hashlib.sha256(f"{seed}/{purpose}/{sample_id}".encode()).digest()


@dataclass(frozen=True)
class DvsSamples:
    """The store's samples as the planner sees them (one entry per store sample).

    Attributes:
        classes: class names (label = index).
        labels: (N,) int64 labels; valid: (N,) bool; split: the store's split array
            (``"train"``/``"test"``); ids: sample ids.
        size: the frame size (H, W) the RGB images are encoded to (part of the pairing id).
    """

    classes: list[str]
    labels: np.ndarray
    valid: np.ndarray
    split: list[str]
    ids: list[str]
    size: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class RgbCatalog:
    """The RGB source's images as the planner sees them: per image its class, split and id."""

    class_names: list[str]
    labels: np.ndarray
    split: list[str]
    source_ids: list[str]

    @classmethod
    def of(cls, rgb: Any) -> RgbCatalog:
        """The catalogue of an :class:`~tmkt_data.rgb.RGBSet`."""
        return cls(list(rgb.class_names), np.asarray(rgb.labels), list(rgb.split), list(rgb.source_ids))


@dataclass(frozen=True)
class PairingPlan:
    """What a pairing writes (the ``rgb/`` and ``pairs/`` arrays) and what it found.

    Attributes:
        classes: the DVS class names.
        keep: the RGB source rows stored (images of matched classes, in source order);
            ``rgb_labels`` (int32, their DVS class), ``rgb_source_labels``, ``rgb_ids``
            and ``rgb_split`` are per stored image.
        dvs: split -> int64 store indices; partners: split -> RGB row (-1: none) with
            ``instance``, else None.
        eval_rgb: stored RGB rows that are sources of DVS val/test samples.
        pool_offsets, pool_rgb: the CSR pools; excluded_per_class: RGB training
            images of each class kept out of its pool.
        eval_source_images: RGB training images that are sources of DVS val/test
            samples (None when the instance link is unknown).
        selection: :meth:`PairSettings.selection`; pairing_id: the hash of the index.
    """

    classes: list[str]
    keep: np.ndarray
    rgb_labels: np.ndarray
    rgb_source_labels: np.ndarray
    rgb_ids: list[str]
    rgb_split: list[str]
    dvs: dict[str, np.ndarray]
    partners: dict[str, np.ndarray] | None
    eval_rgb: np.ndarray
    pool_offsets: np.ndarray
    pool_rgb: np.ndarray
    excluded_per_class: np.ndarray
    eval_source_images: int | None
    dvs_classes_dropped: list[str]
    selection: dict[str, Any]
    pairing_id: str
    warnings: list[str]

    @property
    def pool_excluded(self) -> int:
        return int(self.excluded_per_class.sum())

    def per_class(self, dvs_labels: np.ndarray) -> list[dict[str, Any]]:
        """Per class: DVS ``train``/``val``/``test`` counts, ``pool`` size, ``excluded`` images."""
        return [
            {
                "class": name,
                **{sp: int(np.sum(dvs_labels[self.dvs[sp]] == c)) for sp in SPLITS},
                "pool": int(self.pool_offsets[c + 1] - self.pool_offsets[c]),
                "excluded": int(self.excluded_per_class[c]),
            }
            for c, name in enumerate(self.classes)
        ]

    def partner_counts(self) -> dict[str, dict[str, int]] | None:
        """Per split, DVS samples with and without an instance partner (None without ``instance``)."""
        if self.partners is None:
            return None
        return {
            sp: {"paired": int(np.sum(p >= 0)), "missing": int(np.sum(p < 0))}
            for sp, p in self.partners.items()
        }

    def index(self, dvs: DvsSamples) -> PairIndex:
        """The index this plan writes, for :func:`~tmkt_data.pairing.index.check_index`."""
        return PairIndex(
            classes=self.classes, dvs=self.dvs, partners=self.partners, pool_offsets=self.pool_offsets,
            pool_rgb=self.pool_rgb, rgb_labels=self.rgb_labels, rgb_split=self.rgb_split,
            eval_rgb=self.eval_rgb, dvs_labels=dvs.labels, dvs_valid=dvs.valid, dvs_split=dvs.split,
            selection={
                **self.selection,
                "pool_excluded": self.pool_excluded,
                "dvs_classes_dropped": self.dvs_classes_dropped,
            },
        )  # fmt: skip


def _short_message(short: list[str], s: PairSettings) -> str:
    if s.val_per_class is None:
        need = (
            f"--dvs-per-class {s.dvs_per_class} needs {s.dvs_per_class} DVS training samples per class left"
        )
        need += f" after --val-fraction {s.val_fraction:g}"
    else:
        train_text = f"{s.dvs_per_class}" if s.dvs_per_class is not None else "at least 1"
        need = (
            f"--val-per-class {s.val_per_class}"
            + (f" with --dvs-per-class {s.dvs_per_class}" if s.dvs_per_class is not None else "")
            + f" needs {s.val_per_class + (s.dvs_per_class or 1)} DVS training samples per class "
            f"({s.val_per_class} val + {train_text} train)"
        )
    return f"{need}; class(es) with fewer (training samples): {', '.join(short[:LIST_MAX])}" + (
        f" ... and {len(short) - LIST_MAX} more" if len(short) > LIST_MAX else ""
    )


def _carve_train(
    dvs: DvsSamples, train_all: np.ndarray, active: np.ndarray, s: PairSettings
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per class, val samples and the train samples kept; returns (train, val, classes left without val).

    Raises:
        PairingError: a class has too few samples for ``val_per_class`` / ``dvs_per_class``.
    """
    labels, ids, seed = dvs.labels, dvs.ids, s.seed
    val_parts, train_parts = [], []
    short: list[str] = []
    no_val: list[str] = []
    per_class_rule = s.val_per_class is not None or s.dvs_per_class is not None
    for c in range(len(dvs.classes)):
        members = train_all[labels[train_all] == c]
        if members.size == 0 and not (per_class_rule and active[c]):
            continue
        by_val = sorted(members.tolist(), key=lambda i: _order_key(seed, "val", ids[i]))
        n = len(by_val)
        nv = s.val_per_class if s.val_per_class is not None else n_val_for(n, float(s.val_fraction or 0.0))
        n_train = s.dvs_per_class if s.dvs_per_class is not None else 1
        if per_class_rule and n - nv < n_train:
            short.append(f"{dvs.classes[c]!r} ({n}" + (f", {nv} to val)" if s.val_per_class is None else ")"))
            continue
        if s.val_per_class is None and s.val_fraction and nv == 0:
            no_val.append(dvs.classes[c])
        val_parts.append(by_val[:nv])
        rest = sorted(by_val[nv:], key=lambda i: _order_key(seed, "dvs_fraction", ids[i]))
        n_keep = s.dvs_per_class if s.dvs_per_class is not None else n_keep_for(len(rest), s.dvs_fraction)
        train_parts.append(rest[:n_keep])
    if short:
        raise PairingError(_short_message(short, s))
    train = np.array(sorted(i for part in train_parts for i in part), dtype=np.int64)
    val = np.array(sorted(i for part in val_parts for i in part), dtype=np.int64)
    return train, val, no_val


def _select_dvs(
    dvs: DvsSamples, active: np.ndarray, s: PairSettings
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The DVS samples of each split (train, val, test) and the warnings about them."""
    labels, valid = dvs.labels, dvs.valid
    split_arr = np.asarray(dvs.split, dtype=object)
    usable = valid & active[labels]
    warnings: list[str] = []
    other = sorted(set(dvs.split) - {"train", "test"})
    if other:
        warnings.append(
            f"store split values {other} are neither train nor test; those samples are not paired"
        )
    train_all = np.flatnonzero(usable & (split_arr == "train"))
    test_idx = np.flatnonzero(usable & (split_arr == "test"))
    train, val, no_val = _carve_train(dvs, train_all, active, s)
    if no_val:
        warnings.append(
            f"--val-fraction {s.val_fraction:g} gives {len(no_val)} class(es) no validation sample "
            f"(too few training samples): {fmt_names(no_val)}; --val-per-class sets a count per class"
        )
    n_invalid = int(np.sum(~valid & active[labels]))
    if n_invalid:
        warnings.append(f"{n_invalid} invalid DVS sample(s) (failed conversion) left out")
    no_samples = [
        name for c, name in enumerate(dvs.classes) if active[c] and not np.any(usable & (labels == c))
    ]
    if no_samples:
        warnings.append(f"matched class(es) without valid DVS samples: {fmt_names(no_samples)}")
    return {"train": train, "val": val, "test": test_idx.astype(np.int64)}, warnings


@dataclass(frozen=True)
class _RgbRows:
    """The RGB images stored: those of matched classes, in source order."""

    keep: np.ndarray
    labels: np.ndarray  # int32 DVS class
    source_labels: np.ndarray
    ids: list[str]
    split: list[str]


def _rgb_rows(rgb: RgbCatalog, match: ClassMatch, rgb_kind: str) -> _RgbRows:
    rgb_dvs_label = match.rgb_to_dvs[rgb.labels]
    keep = np.flatnonzero(rgb_dvs_label >= 0)
    if keep.size == 0:
        raise PairingError(f"{rgb_kind}: no RGB image belongs to a matched class")
    rows = keep.tolist()
    return _RgbRows(
        keep,
        rgb_dvs_label[keep].astype(np.int32),
        rgb.labels[keep],
        [rgb.source_ids[i] for i in rows],
        [rgb.split[i] for i in rows],
    )


def _link_partners(
    dvs: DvsSamples,
    rows: _RgbRows,
    rgb_names_of: list[list[str]],
    selected: dict[str, np.ndarray],
    link: InstanceLink,
    instance: bool,
) -> np.ndarray:
    """Per store sample, the stored RGB row it shows (-1: unknown, or a partner of another class).

    Raises:
        PairingError: with ``instance``, a partner of another class (the rule does not hold).
    """
    labels, ids, classes = dvs.labels, dvs.ids, dvs.classes
    row_of_id = {sid: j for j, sid in enumerate(rows.ids)}
    partner_all = np.full(len(ids), -1, dtype=np.int64)
    for sp_idx in selected.values():
        for i in sp_idx.tolist():
            sid = link.source_id(i, ids[i], classes[labels[i]], row_of_id, rgb_names_of[labels[i]])
            if sid is not None and sid in row_of_id:
                partner_all[i] = row_of_id[sid]
    has = partner_all >= 0
    wrong = np.flatnonzero(has & (rows.labels[np.maximum(partner_all, 0)] != labels))
    if wrong.size and instance:
        ex = ", ".join(
            f"{ids[i]} ({classes[labels[i]]}) <-> {rows.ids[partner_all[i]]} "
            f"({classes[rows.labels[partner_all[i]]]})"
            for i in wrong[:3].tolist()
        )
        raise PairingError(
            f"instance pairing: {wrong.size} DVS sample(s) would pair with an RGB image of another "
            f"class, e.g. {ex}; the instance rule ({link.rule}) does not hold for these files"
        )
    partner_all[wrong] = -1
    return partner_all


@dataclass(frozen=True)
class _Pools:
    offsets: np.ndarray
    rows: np.ndarray
    eval_rgb: np.ndarray
    excluded_per_class: np.ndarray
    eval_source_images: int | None


def _pools(
    rows: _RgbRows,
    n_classes: int,
    selected: dict[str, np.ndarray],
    partner_all: np.ndarray | None,
    exclude: bool,
) -> _Pools:
    """RGB-train images per DVS class, minus the sources of DVS val/test samples (``exclude``)."""
    is_source = np.zeros(len(rows.keep), dtype=bool)
    if partner_all is not None:
        for sp in ("val", "test"):
            src = partner_all[selected[sp]]
            is_source[src[src >= 0]] = True
    is_train = np.asarray(rows.split, dtype=object) == "train"
    excluded = is_source if exclude else np.zeros(len(rows.keep), dtype=bool)
    in_pool = is_train & ~excluded
    pool_rows = [np.flatnonzero(in_pool & (rows.labels == c)) for c in range(n_classes)]
    offsets = np.zeros(n_classes + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in pool_rows])
    return _Pools(
        offsets,
        np.concatenate(pool_rows).astype(np.int64) if pool_rows else np.zeros(0, np.int64),
        np.flatnonzero(is_source).astype(np.int64),
        np.bincount(rows.labels[is_train & excluded], minlength=n_classes),
        int(np.sum(is_train & is_source)) if partner_all is not None else None,
    )


def _pool_warnings(pools: _Pools) -> list[str]:
    pool_excluded = int(pools.excluded_per_class.sum())
    if pool_excluded:
        return [
            f"{pool_excluded} RGB training image(s) kept out of the pools: "
            "they are the sources of DVS val/test samples"
        ]
    if pools.eval_source_images:
        return [
            f"{pools.eval_source_images} RGB pool image(s) are the sources of DVS val/test samples, kept by "
            "--keep-eval-sources: validation and test are not independent of the RGB training images"
        ]
    return []


def _check_pools_filled(
    dvs: DvsSamples, train: np.ndarray, pools: _Pools, rgb_names_of: list[list[str]], rgb_kind: str
) -> None:
    sizes = np.diff(pools.offsets)
    train_labels = set(dvs.labels[train].tolist())
    empty = [c for c in range(len(dvs.classes)) if c in train_labels and not sizes[c]]
    if empty:
        rgb_names = sorted({r for c in empty for r in rgb_names_of[c]})
        gone = int(sum(pools.excluded_per_class[c] for c in empty))
        raise PairingError(
            f"{rgb_kind}: class(es) {fmt_names([dvs.classes[c] for c in empty])} have DVS training "
            f"samples but no RGB training images (their RGB classes: {fmt_names(rgb_names)})"
            + (
                f"; {gone} were kept out as sources of DVS val/test samples (--keep-eval-sources keeps them)"
                if gone
                else ""
            )
        )


def pairing_id(arrays: list[np.ndarray], rgb_ids: list[str], size: tuple[int, int], s: PairSettings) -> str:
    """The id of an index: sha256 over its arrays, the RGB ids and the settings that shape it."""
    h = hashlib.sha256()
    for arr in arrays:
        h.update(np.ascontiguousarray(arr).tobytes())
    meta = [rgb_ids, s.encode_mode, list(size), s.rgb_kind, s.seed, s.selection()]
    h.update(json.dumps(meta, default=str).encode())
    return h.hexdigest()[:32]


def plan_pairing(
    dvs: DvsSamples,
    rgb: RgbCatalog,
    match: ClassMatch,
    settings: PairSettings,
    link: InstanceLink | None = None,
) -> PairingPlan:
    """Plan a pairing (see the module docstring); checks the plan's index before returning it.

    Args:
        dvs, rgb: the store's samples and the RGB source's images.
        match: how the classes match (:func:`~tmkt_data.pairing.classmap.match_classes`).
        settings: the selection settings (validated here).
        link: the instance link (None: unknown; nothing is excluded from the pools).

    Raises:
        PairingError: no RGB image of a matched class, a class too small for a
            per-class count, instance partners of another class (with ``instance``),
            or a class with DVS training samples and an empty pool.
    """
    s = settings.validated()
    n_classes = len(dvs.classes)
    rows = _rgb_rows(rgb, match, s.rgb_kind)
    active = np.array([bool(match.dvs_to_rgb[c]) for c in range(n_classes)])
    selected, warnings = _select_dvs(dvs, active, s)
    rgb_names_of = [[rgb.class_names[r] for r in match.dvs_to_rgb[c]] for c in range(n_classes)]
    partner_all = None
    if link is not None:
        partner_all = _link_partners(dvs, rows, rgb_names_of, selected, link, s.instance)
    partners = (
        {sp: partner_all[idx] for sp, idx in selected.items()}
        if s.instance and partner_all is not None
        else None
    )
    pools = _pools(rows, n_classes, selected, partner_all, s.exclude_eval_sources)
    warnings += _pool_warnings(pools)
    _check_pools_filled(dvs, selected["train"], pools, rgb_names_of, s.rgb_kind)
    arrays = [
        *selected.values(),
        pools.offsets,
        pools.rows,
        rows.labels,
        pools.eval_rgb,
        *(partners or {}).values(),
    ]
    plan = PairingPlan(
        classes=list(dvs.classes),
        keep=rows.keep,
        rgb_labels=rows.labels,
        rgb_source_labels=rows.source_labels,
        rgb_ids=rows.ids,
        rgb_split=rows.split,
        dvs=selected,
        partners=partners,
        eval_rgb=pools.eval_rgb,
        pool_offsets=pools.offsets,
        pool_rgb=pools.rows,
        excluded_per_class=pools.excluded_per_class,
        eval_source_images=pools.eval_source_images,
        dvs_classes_dropped=[dvs.classes[c] for c in range(n_classes) if not match.dvs_to_rgb[c]],
        selection=s.selection(),
        pairing_id=pairing_id(arrays, rows.ids, dvs.size, s),
        warnings=warnings,
    )
    check_index(plan.index(dvs), "pairing (before writing)")
    return plan
