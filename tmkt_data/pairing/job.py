"""``tmkt-data pair``'s job: load (store, class map, RGB source, instance link) -> plan
(:func:`~tmkt_data.pairing.plan.plan_pairing`) -> write (``rgb/`` and ``pairs/``, through
:class:`~tmkt_data.store.GroupsWriter`, swapped in only when everything succeeded)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.pairing.classmap import ClassMap, ClassMatch, known_class_map, load_class_map, match_classes
from tmkt_data.pairing.common import LIST_MAX, PairingError
from tmkt_data.pairing.instances import InstanceLink, resolve_link
from tmkt_data.pairing.orientation import orientation_check, orientation_warning
from tmkt_data.pairing.plan import DvsSamples, PairingPlan, RgbCatalog, plan_pairing
from tmkt_data.pairing.report import PairReport, jsonable
from tmkt_data.pairing.settings import PairSettings
from tmkt_data.rgb import RGBSet, load_rgb
from tmkt_data.rgb.encode import encode_images
from tmkt_data.store import GroupsWriter, StoreView, holds_store_lock
from tmkt_data.store.location import store_location

Progress = Callable[[str, int, int], None]


@dataclass
class _Inputs:
    """What the job read: the store and its samples, the RGB source, the class match, the link."""

    view: StoreView
    dvs: DvsSamples
    dataset: str
    rgb: RGBSet
    rgb_options: dict[str, Any]
    cmap: ClassMap | None
    match: ClassMatch
    link: InstanceLink | None
    warnings: list[str]


def _read_dvs(store: Path, split_array: str) -> tuple[StoreView, DvsSamples]:
    g = StoreView(store)
    needed = ("frames", "labels", "valid", "sample_id", split_array)
    missing = [a for a in needed if not g.has(a)]
    if "frames" in missing:
        raise PairingError(
            f"{store}: store has no frames array, expected a store written by tmkt-data convert"
        )
    if missing:
        raise PairingError(f"{store}: store lacks the array(s) {', '.join(missing)}")
    shape = g.shape("frames")
    if len(shape) != 5 or shape[0] == 0:
        raise PairingError(f"{store}: frames have shape {shape}, expected (N > 0, T, 2, H, W)")
    classes = list(g.attrs.get("classes", []))
    labels = g.read("labels", np.int64)
    if not classes or labels.min() < 0 or labels.max() >= len(classes):
        raise PairingError(f"{store}: labels do not index the store's {len(classes)} classes")
    samples = DvsSamples(
        classes=classes,
        labels=labels,
        valid=g.read("valid", bool),
        split=g.strings(split_array),
        ids=g.strings("sample_id"),
        size=(int(shape[3]), int(shape[4])),
    )
    return g, samples


def _load(store: Path, s: PairSettings) -> _Inputs:
    g, dvs = _read_dvs(store, s.split_array)
    dataset = str(g.attrs.get("dataset", ""))
    warnings: list[str] = []
    cmap = known_class_map(dataset, s.rgb_kind) if s.class_map is None else load_class_map(s.class_map)
    rgb_options = dict(cmap.rgb_options if cmap else {})
    rgb_options.update(s.rgb_options or {})
    source_paths = g.strings("source_path") if g.has("source_path") else None
    link, gap = resolve_link(dict(g.attrs), source_paths, dataset, s.rgb_kind, instance=s.instance)
    if gap:
        warnings.append(gap)
    rgb = load_rgb(s.rgb_kind, s.rgb_root, **rgb_options)
    match = match_classes(dvs.classes, rgb.class_names, cmap, drop_unmatched=s.drop_unmatched)
    if match.skipped_entries:
        warnings.append(
            f"class map {cmap.source if cmap else ''}: skipped entries for absent classes: "
            + ", ".join(match.skipped_entries[:LIST_MAX])
        )
    return _Inputs(g, dvs, dataset, rgb, rgb_options, cmap, match, link, warnings)


def _write_images(
    out: GroupsWriter,
    source: Any,
    keep: np.ndarray,
    size: tuple[int, int],
    mode: str,
    on_progress: Progress | None,
) -> None:
    """Encode the RGB images ``keep`` (source rows) into ``rgb/images``, a few chunks at a time."""
    m = len(keep)
    block = out.create_images(m, size)
    for a in range(0, m, block):
        b = min(m, a + block)
        rows = keep[a:b]
        if hasattr(source, "subset"):
            block_src = source.subset(rows)
        elif isinstance(source, np.ndarray):
            block_src = source[rows]
        else:
            block_src = [source[int(i)] for i in rows]
        out.write_images(a, encode_images(block_src, size, mode))
        if on_progress is not None:
            on_progress("encode", b, m)


def _put_index(out: GroupsWriter, plan: PairingPlan, part: str) -> None:
    """The ``rgb`` (``part="rgb"``) or ``pairs`` index arrays of the plan."""
    if part == "rgb":
        out.put("rgb/labels", plan.rgb_labels, np.int32)
        out.put("rgb/source_labels", plan.rgb_source_labels, np.int32)
        out.put("rgb/source_ids", plan.rgb_ids, str)
        out.put("rgb/split", plan.rgb_split, str)
        return
    for sp, idx in plan.dvs.items():
        out.put(f"pairs/{sp}/dvs", idx, np.int64)
        if plan.partners is not None:
            out.put(f"pairs/{sp}/rgb", plan.partners[sp], np.int64)
    out.put("pairs/pool_offsets", plan.pool_offsets, np.int64)
    out.put("pairs/pool_rgb", plan.pool_rgb, np.int64)
    out.put("pairs/eval_rgb", plan.eval_rgb, np.int64)


def _report(store: Path, src: _Inputs, plan: PairingPlan, s: PairSettings, **found: Any) -> PairReport:
    """The report of a pairing; ``found``: orientation, synthetic, warnings, extra_attrs."""
    rgb, match, classes = src.rgb, src.match, plan.classes
    per_class = plan.per_class(src.dvs.labels)
    return PairReport(
        store=str(store),
        dvs_dataset=src.dataset,
        rgb_kind=s.rgb_kind,
        rgb_root=rgb.root,
        rgb_images=len(plan.keep),
        rgb_split_counts={sp: plan.rgb_split.count(sp) for sp in ("train", "test")},
        class_mapping=[
            {
                "dvs": name,
                "dvs_label": c,
                "rgb": [rgb.class_names[r] for r in match.dvs_to_rgb[c]],
                "how": match.how[c],
            }
            for c, name in enumerate(classes)
        ],
        dvs_classes_dropped=plan.dvs_classes_dropped,
        rgb_classes_unused=match.unused_rgb,
        split_counts={sp: len(idx) for sp, idx in plan.dvs.items()},
        per_class=per_class,
        seed=s.seed,
        val_fraction=s.val_fraction,
        val_per_class=s.val_per_class,
        dvs_fraction=s.dvs_fraction,
        dvs_per_class=s.dvs_per_class,
        encode_mode=s.encode_mode,
        size=src.dvs.size,
        class_map=src.cmap.to_dict() if src.cmap else None,
        instance=bool(s.instance),
        instance_rule=src.link.rule if src.link else None,
        partners=plan.partner_counts(),
        exclude_eval_sources=s.exclude_eval_sources,
        eval_source_images=plan.eval_source_images,
        pool_excluded=plan.pool_excluded,
        pairing_id=plan.pairing_id,
        dvs_classes=classes,
        dvs_split_array=s.split_array,
        store_index_hash=src.view.attrs.get("index_hash"),
        store_params_hash=src.view.attrs.get("params_hash"),
        rgb_options=src.rgb_options,
        rgb_class_names=list(rgb.class_names),
        rgb_source_info=rgb.info,
        **found,
    )


def _write(
    store: Path,
    src: _Inputs,
    plan: PairingPlan,
    s: PairSettings,
    orientation_samples: int,
    on_progress: Progress | None,
    extra_attrs: dict[str, Any] | None,
) -> PairReport:
    """Write ``rgb/`` and ``pairs/`` (temporary groups, swapped in at the end); the report."""
    warnings = [*src.warnings, *plan.warnings]
    synthetic = bool(src.view.attrs.get("synthetic", False))
    if synthetic:
        warnings.append(
            "the DVS store holds DVS-like synthetic events (attrs.synthetic), not a real recording"
        )
    orientation = None
    with GroupsWriter(store) as out:
        _write_images(out, src.rgb.images, plan.keep, src.dvs.size, s.encode_mode, on_progress)
        _put_index(out, plan, "rgb")
        if s.instance and plan.partners is not None:
            check = orientation_check(
                src.view.lazy("frames"), out.images, plan.dvs, plan.partners, orientation_samples
            )
            orientation = jsonable(check)
            warning = orientation_warning(orientation)
            if warning:
                warnings.append(warning)
        partners = plan.partner_counts()
        missing = sum(v["missing"] for v in partners.values()) if partners else 0
        if missing:
            warnings.append(f"instance pairing: {missing} DVS sample(s) have no RGB partner (-1)")
        _put_index(out, plan, "pairs")
        report = _report(
            store, src, plan, s, orientation=orientation, synthetic=synthetic, warnings=warnings,
            extra_attrs=dict(extra_attrs or {}),
        )  # fmt: skip
        out.commit(report.stored_attrs())
    return report


@holds_store_lock("tmkt-data pair")
def pair_with_settings(
    store_path: str | os.PathLike[str],
    settings: PairSettings,
    *,
    orientation_samples: int = 256,
    on_progress: Progress | None = None,
    extra_attrs: dict[str, Any] | None = None,
) -> PairReport:
    """:func:`pair_store` with its settings as one :class:`PairSettings` (holding the store lock)."""
    t0 = time.perf_counter()
    store = store_location(store_path).resolve()
    s = settings.validated()
    src = _load(store, s)
    plan = plan_pairing(src.dvs, RgbCatalog.of(src.rgb), src.match, s, src.link)
    report = _write(store, src, plan, s, orientation_samples, on_progress, extra_attrs)
    report.seconds = time.perf_counter() - t0
    return report


def pair_store(
    store_path: str | os.PathLike[str],
    rgb_kind: str,
    rgb_root: str | os.PathLike[str] | None,
    *,
    class_map: str | os.PathLike[str] | dict[str, Any] | None = None,
    drop_unmatched: bool = False,
    val_fraction: float | None = None,
    dvs_fraction: float = 1.0,
    seed: int = 0,
    instance: bool = False,
    val_per_class: int | None = None,
    dvs_per_class: int | None = None,
    exclude_eval_sources: bool = True,
    encode_mode: str = "hsv_v",
    rgb_options: dict[str, Any] | None = None,
    split_array: str = "split",
    orientation_samples: int = 256,
    on_progress: Progress | None = None,
    extra_attrs: dict[str, Any] | None = None,
) -> PairReport:
    """Pair the store's DVS samples with RGB images and write ``rgb/`` and ``pairs/`` into it.

    Args:
        store_path: a complete tmkt frame store.
        rgb_kind: RGB source (:data:`tmkt_data.rgb.RGB_SOURCES`).
        rgb_root: the RGB dataset's folder (None or ``"-"`` for ``digits``).
        class_map: TOML path or dict (see :func:`parse_class_map`); None applies the
            shipped map for this dataset/source if there is one, ``{}`` applies none.
        drop_unmatched: leave unmatched classes out instead of failing.
        val_fraction: fraction of each class's DVS train samples carved into val
            (0 <= F < 1; None: 0.1, or ``val_per_class`` when that is given).
        dvs_fraction: fraction of each class's remaining DVS train samples kept (0 < F <= 1).
        seed: selection seed (val and train selections).
        instance: also pair each DVS sample with the RGB image it was recorded from
            (or simulated from, for a synthetic store), and report the orientation check.
        val_per_class: carve exactly this many val samples from every class
            (instead of ``val_fraction``); a class needs at least one more.
        dvs_per_class: keep exactly this many train samples per class after val
            (instead of ``dvs_fraction``); the first of the fraction's order, so
            the samples kept for N are a subset of those kept for N' > N.
        exclude_eval_sources: where the instance link is known, keep the RGB
            images that are the sources of DVS val/test samples out of the pools;
            False keeps the reference's pools (every RGB training image).
        encode_mode: ``"hsv_v"`` (reference) or ``"gray"``.
        rgb_options: options for the RGB reader (override the class map's ``meta.rgb_options``).
        split_array: the store array giving train/test (``"split"`` or an alternative ``split_<name>``).
        orientation_samples: instance pairs used for the orientation check (evenly spaced).
        on_progress: called as ``(stage, done, total)`` while encoding.
        extra_attrs: more ``pairs/`` attributes (JSON values), written with the others while
            the store lock is held (the pipeline's ``pipeline_settings``).

    Raises:
        PairingError, RGBError, StoreError: one line each; the store is left as it was.
    """
    settings = PairSettings(
        rgb_kind=rgb_kind, rgb_root=rgb_root, class_map=class_map, drop_unmatched=drop_unmatched,
        val_fraction=val_fraction, val_per_class=val_per_class, dvs_fraction=dvs_fraction,
        dvs_per_class=dvs_per_class, exclude_eval_sources=exclude_eval_sources, seed=seed, instance=instance,
        encode_mode=encode_mode, rgb_options=rgb_options or {}, split_array=split_array,
    )  # fmt: skip
    return pair_with_settings(
        store_path, settings, orientation_samples=orientation_samples, on_progress=on_progress,
        extra_attrs=extra_attrs,
    )  # fmt: skip
