"""The pairing index: :class:`Pairs` (what :func:`read_pairs` returns), its invariants
(:func:`check_index` over a :class:`PairIndex`) and reading it back from a store.

Every pair has equal labels: asserted before writing and by :func:`read_pairs`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.pairing.common import PAIRS_FORMAT, PAIRS_FORMAT_VERSION, SPLITS, PairingError, fmt_names
from tmkt_data.pairing.settings import check_count
from tmkt_data.store import StoreView
from tmkt_data.store.location import store_location


@dataclass
class Pairs:
    """The pairing index of a store, as :func:`read_pairs` returns it (labels re-checked).

    Attributes:
        store: the store path.
        classes: the DVS class names (label = index).
        dvs: split -> int64 DVS sample indices into ``frames``.
        partners: split -> per-sample RGB instance partner (-1: none), or None.
        pool_offsets, pool_rgb: CSR pools: RGB rows of class ``c`` are
            ``pool_rgb[pool_offsets[c]:pool_offsets[c + 1]]``.
        rgb_labels: (M,) DVS class of each stored RGB image.
        rgb_split, rgb_source_ids: per stored RGB image.
        dvs_labels: (N,) labels of every store sample.
        attrs: the ``pairs`` group's attributes; ``rgb_attrs``: the ``rgb`` group's.
        rgb_images: the ``rgb/images`` array (M, 2, H, W) float16, read lazily.
        eval_rgb: RGB rows that are the sources of DVS val/test samples (empty
            when the instance link is unknown); kept out of the pools unless
            ``attrs["exclude_eval_sources"]`` is False.
    """

    store: Path
    classes: list[str]
    dvs: dict[str, np.ndarray]
    partners: dict[str, np.ndarray] | None
    pool_offsets: np.ndarray
    pool_rgb: np.ndarray
    rgb_labels: np.ndarray
    rgb_split: list[str]
    rgb_source_ids: list[str]
    dvs_labels: np.ndarray
    attrs: dict[str, Any]
    rgb_attrs: dict[str, Any]
    rgb_images: Any = None
    eval_rgb: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def pool(self, c: int) -> np.ndarray:
        """RGB rows that DVS class ``c`` draws partners from."""
        return self.pool_rgb[self.pool_offsets[c] : self.pool_offsets[c + 1]]

    def draw_partners(self, dvs_indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random RGB row from its class pool for each DVS sample (labels asserted equal)."""
        idx = np.asarray(dvs_indices, dtype=np.int64)
        labels = self.dvs_labels[idx]
        lo, hi = self.pool_offsets[labels], self.pool_offsets[labels + 1]
        if np.any(hi <= lo):
            bad = sorted({self.classes[c] for c in labels[hi <= lo].tolist()})
            raise PairingError(f"no RGB partners for class(es) {fmt_names(bad)}")
        rows = self.pool_rgb[lo + (rng.random(len(idx)) * (hi - lo)).astype(np.int64)]
        if not np.array_equal(self.rgb_labels[rows], labels):
            raise PairingError("drawn RGB partners have labels different from their DVS samples")
        return rows


@dataclass(frozen=True)
class PairIndex:
    """Everything :func:`check_index` checks: the index arrays, the store's samples and the
    recorded selection settings.

    Attributes:
        classes: the DVS class names.
        dvs, partners, pool_offsets, pool_rgb, eval_rgb: as in :class:`Pairs`.
        rgb_labels, rgb_split: per stored RGB image.
        dvs_labels, dvs_valid, dvs_split: per store sample (``dvs_split``: the store's
            split array the index was made from).
        selection: ``val_fraction``, ``val_per_class``, ``dvs_fraction``,
            ``dvs_per_class``, ``exclude_eval_sources``, ``pool_excluded`` and
            ``dvs_classes_dropped``, as written to ``pairs/``.
    """

    classes: list[str]
    dvs: dict[str, np.ndarray]
    partners: dict[str, np.ndarray] | None
    pool_offsets: np.ndarray
    pool_rgb: np.ndarray
    rgb_labels: np.ndarray
    rgb_split: list[str]
    eval_rgb: np.ndarray
    dvs_labels: np.ndarray
    dvs_valid: np.ndarray
    dvs_split: list[str]
    selection: Mapping[str, Any]


def _check_pools(ix: PairIndex, where: str) -> np.ndarray:
    """Pools are a CSR index of RGB training images of their class; returns the offsets."""
    c, m = len(ix.classes), len(ix.rgb_labels)
    off = np.asarray(ix.pool_offsets, dtype=np.int64)
    pool_rgb = ix.pool_rgb
    if off.shape != (c + 1,) or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != len(pool_rgb):
        raise PairingError(
            f"{where}: pool_offsets are not a CSR index over {c} classes and {len(pool_rgb)} rows"
        )
    if len(pool_rgb) and (pool_rgb.min() < 0 or pool_rgb.max() >= m):
        raise PairingError(f"{where}: pool rows outside 0..{m - 1}")
    owner = np.repeat(np.arange(c), np.diff(off))
    bad = np.flatnonzero(ix.rgb_labels[pool_rgb] != owner)
    if bad.size:
        k = int(bad[0])
        raise PairingError(
            f"{where}: pool of class {ix.classes[owner[k]]!r} holds RGB image {int(pool_rgb[k])} "
            f"of class {int(ix.rgb_labels[pool_rgb[k]])}: labels differ"
        )
    rgb_split_arr = np.asarray(ix.rgb_split, dtype=object)
    if len(pool_rgb) and np.any(rgb_split_arr[pool_rgb] != "train"):
        raise PairingError(f"{where}: a pool holds an RGB image outside the RGB train split")
    return off


def _check_splits(ix: PairIndex, off: np.ndarray, where: str) -> None:
    """DVS splits: valid samples of the right store split, disjoint, with filled pools and partners
    of their own label."""
    c, n, m = len(ix.classes), len(ix.dvs_labels), len(ix.rgb_labels)
    seen = np.zeros(n, dtype=bool)
    dvs_split_arr = np.asarray(ix.dvs_split, dtype=object)
    for sp, idx in ix.dvs.items():
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise PairingError(f"{where}: {sp} DVS indices outside 0..{n - 1}")
        if np.any(seen[idx]) or len(np.unique(idx)) != len(idx):
            raise PairingError(f"{where}: DVS split {sp} overlaps another split or repeats samples")
        seen[idx] = True
        if not np.all(ix.dvs_valid[idx]):
            raise PairingError(f"{where}: DVS split {sp} holds invalid samples")
        want = "test" if sp == "test" else "train"
        if np.any(dvs_split_arr[idx] != want):
            raise PairingError(f"{where}: DVS split {sp} holds samples outside the store's {want} split")
        labs = ix.dvs_labels[idx]
        if len(labs) and (labs.min() < 0 or labs.max() >= c):
            raise PairingError(f"{where}: DVS split {sp} holds labels outside 0..{c - 1}")
        if sp == "train" and len(labs):
            empty = np.unique(labs[np.diff(off)[labs] == 0])
            if empty.size:
                raise PairingError(
                    f"{where}: class(es) {fmt_names([ix.classes[i] for i in empty.tolist()])} have DVS "
                    "training samples but no RGB training images"
                )
        if ix.partners is not None:
            p = ix.partners[sp]
            if p.shape != idx.shape or (len(p) and (p.min() < -1 or p.max() >= m)):
                raise PairingError(f"{where}: {sp} instance partners do not line up with the DVS samples")
            has = p >= 0
            if np.any(ix.rgb_labels[p[has]] != labs[has]):
                raise PairingError(
                    f"{where}: a {sp} instance partner has a label different from its DVS sample"
                )


def _check_selection(ix: PairIndex, where: str) -> None:
    """The index against its recorded selection settings: the settings' types and exclusivity,
    exactly ``val_per_class`` val and ``dvs_per_class`` train samples in every class that is not
    dropped, and, when eval sources are excluded, no ``eval_rgb`` row in any pool and
    ``pool_excluded`` equal to the eval sources in the RGB train split (0 when they are kept)."""
    attrs, classes = ix.selection, ix.classes
    vf, vpc = attrs.get("val_fraction"), attrs.get("val_per_class")
    df, dpc = attrs.get("dvs_fraction"), attrs.get("dvs_per_class")
    excl = attrs.get("exclude_eval_sources")
    try:
        check_count("val_per_class", vpc, 0)
        check_count("dvs_per_class", dpc, 1)
    except PairingError as err:
        raise PairingError(f"{where}: {err}") from None
    if (vpc is None) == (vf is None):
        raise PairingError(
            f"{where}: val_fraction {vf!r} and val_per_class {vpc!r}: expected exactly one set"
        )
    if dpc is not None and df != 1.0:
        raise PairingError(f"{where}: dvs_per_class {dpc} with dvs_fraction {df!r}: expected dvs_fraction 1")
    if not isinstance(excl, bool):
        raise PairingError(f"{where}: exclude_eval_sources {excl!r}: expected true or false")
    dropped = set(attrs.get("dvs_classes_dropped", []))
    for sp, want in (("val", vpc), ("train", dpc)):
        if want is None:
            continue
        got = np.bincount(ix.dvs_labels[ix.dvs[sp]], minlength=len(classes))
        bad = [c for c in range(len(classes)) if classes[c] not in dropped and got[c] != want]
        if bad:
            c = bad[0]
            raise PairingError(
                f"{where}: class {classes[c]!r} has {int(got[c])} DVS {sp} sample(s), expected "
                f"{'val_per_class' if sp == 'val' else 'dvs_per_class'} = {want}"
            )
    eval_rgb = ix.eval_rgb
    rgb_train = np.asarray(ix.rgb_split, dtype=object) == "train"
    in_train = int(np.sum(rgb_train[eval_rgb])) if len(eval_rgb) else 0
    if excl:
        if np.intersect1d(eval_rgb, ix.pool_rgb).size:
            raise PairingError(f"{where}: a pool holds the RGB source of a DVS val/test sample")
        want_excluded = in_train
    else:
        want_excluded = 0
    if attrs.get("pool_excluded") != want_excluded:
        raise PairingError(
            f"{where}: pool_excluded {attrs.get('pool_excluded')!r}, expected {want_excluded} "
            f"(exclude_eval_sources {excl}, {in_train} eval source(s) in the RGB train split)"
        )


def check_index(index: PairIndex, where: str) -> None:
    """Assert the index's invariants; PairingError (prefixed ``where``) naming the first violation.

    Every pool holds only RGB training images of its class (so every pair has equal
    labels), DVS indices are valid samples of the right store split, the splits do not
    overlap, every class with DVS training samples has a non-empty pool, instance partners
    have the DVS sample's label, ``eval_rgb`` rows exist, and the index matches its
    recorded selection settings (counts per class, eval sources out of the pools).
    """
    off = _check_pools(index, where)
    _check_splits(index, off, where)
    m = len(index.rgb_labels)
    if len(index.eval_rgb) and (index.eval_rgb.min() < 0 or index.eval_rgb.max() >= m):
        raise PairingError(f"{where}: pairs/eval_rgb holds rows outside 0..{m - 1}")
    _check_selection(index, where)


def _open_index(store: Path) -> tuple[StoreView, dict[str, Any], dict[str, Any], list[str]]:
    """The store view, ``pairs`` and ``rgb`` attributes and the classes, after the identity checks."""
    g = StoreView(store)
    for name in ("rgb", "pairs"):
        if not g.is_group(name):
            raise PairingError(f"{store}: no {name}/ group; run tmkt-data pair on this store first")
    pa, ra = g.group_attrs("pairs"), g.group_attrs("rgb")
    if pa.get("format") != PAIRS_FORMAT or pa.get("format_version") != PAIRS_FORMAT_VERSION:
        raise PairingError(
            f"{store}: pairs/ has format {pa.get('format')!r} v{pa.get('format_version')}, "
            f"expected {PAIRS_FORMAT!r} v{PAIRS_FORMAT_VERSION}; run tmkt-data pair again"
        )
    if pa.get("pairing_id") != ra.get("pairing_id"):
        raise PairingError(
            f"{store}: rgb/ and pairs/ come from different runs (interrupted?); run tmkt-data pair again"
        )
    if pa.get("store_index_hash") != g.attrs.get("index_hash"):
        raise PairingError(
            f"{store}: the pairing index was made for another sample list; run tmkt-data pair again"
        )
    classes = list(g.attrs["classes"])
    if list(pa.get("dvs_classes", [])) != classes:
        raise PairingError(f"{store}: the pairing index was made for other classes; run tmkt-data pair again")
    return g, pa, ra, classes


def read_pairs(store_path: str | os.PathLike[str]) -> Pairs:
    """Read a store's pairing index, re-checking every invariant (equal labels for every pair).

    Raises:
        PairingError: no index, an index from another sample list or run, or a broken invariant.
    """
    store = store_location(store_path).resolve()
    g, pa, ra, classes = _open_index(store)
    dvs = {sp: g.read(f"pairs/{sp}/dvs", np.int64) for sp in SPLITS}
    partners = None
    if pa.get("instance"):
        partners = {sp: g.read(f"pairs/{sp}/rgb", np.int64) for sp in SPLITS}
    pairs = Pairs(
        store=store,
        classes=classes,
        dvs=dvs,
        partners=partners,
        pool_offsets=g.read("pairs/pool_offsets", np.int64),
        pool_rgb=g.read("pairs/pool_rgb", np.int64),
        rgb_labels=g.read("rgb/labels", np.int64),
        rgb_split=g.strings("rgb/split"),
        rgb_source_ids=g.strings("rgb/source_ids"),
        dvs_labels=g.read("labels", np.int64),
        attrs=pa,
        rgb_attrs=ra,
        rgb_images=g.lazy("rgb/images"),
        eval_rgb=g.read("pairs/eval_rgb", np.int64),
    )
    index = PairIndex(
        classes=classes, dvs=dvs, partners=partners, pool_offsets=pairs.pool_offsets, pool_rgb=pairs.pool_rgb,
        rgb_labels=pairs.rgb_labels, rgb_split=pairs.rgb_split, eval_rgb=pairs.eval_rgb,
        dvs_labels=pairs.dvs_labels, dvs_valid=g.read("valid", bool),
        dvs_split=g.strings(str(pa.get("dvs_split_array", "split"))), selection=pa,
    )  # fmt: skip
    check_index(index, f"{store}: pairs")
    if pairs.rgb_images.shape[0] != len(pairs.rgb_labels):
        raise PairingError(
            f"{store}: rgb/images holds {pairs.rgb_images.shape[0]} images for {len(pairs.rgb_labels)} labels"
        )
    return pairs
