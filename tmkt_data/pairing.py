"""Pair a frame store's DVS samples with RGB images of the same class (``tmkt-data pair``).

The pairing index and the encoded RGB images live in the store itself, in the
groups ``rgb/`` and ``pairs/`` (layout in ``docs/store-format.md``), so
training never touches the raw image files. Both groups are written under
temporary names (``_rgb_tmp``, ``_pairs_tmp``) and renamed into place only when
everything succeeded: a failed run leaves the store as it was.

Rules (each recorded in ``pairs/`` attributes):

* Classes match by name, case- and punctuation-insensitively (only letters
  and digits count); a class map (TOML, see :func:`load_class_map`) settles
  real mismatches. Shipped maps (``tmkt_data/classmaps/*.toml``) apply
  automatically to their dataset/source combination. An unmatched class on
  either side is an error listing them all, unless ``drop_unmatched``.
* DVS splits: the store's split array (``split`` by default) gives train and
  test (valid samples only); ``val`` is carved from train, per class; then
  ``dvs_fraction`` or ``dvs_per_class`` keeps part of the remaining train
  samples per class. Both selections order a class's samples by
  ``sha256("<seed>/<purpose>/<sample_id>")`` (purpose ``val``, then
  ``dvs_fraction`` for both train selections), so they are deterministic,
  independent of other classes and samples, and a smaller fraction or count
  keeps a subset of a larger one's samples.

  - ``n_val = floor(val_fraction * n + 1/2)`` (round half up), at most ``n - 1``;
    or exactly ``val_per_class`` (the class needs at least ``val_per_class + 1``).
  - ``n_keep = ceil(dvs_fraction * m)`` of the ``m`` remaining, at least 1;
    or exactly ``dvs_per_class`` (the class needs at least that many).

* Instance links (which RGB image a recording shows): N-MNIST/MNIST and
  N-Caltech101/Caltech101 by file name (:data:`INSTANCE_RULES`), and synthetic
  stores paired with the RGB source they were simulated from, through the
  simulator's samples table (:func:`synthetic_sources`).
* RGB pools: for each DVS class, the RGB images of its matched RGB classes in
  the RGB source's train split. Where the instance link is known, the RGB
  images that are the sources of DVS val or test samples are left out of the
  pools (no appearance leak into validation/test), with or without
  ``instance``, unless ``exclude_eval_sources=False`` (the reference's pools).
* Every pair has equal labels: asserted before writing and by :func:`read_pairs`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.errors import TmktError
from tmkt_data.rgb import RGBSet, load_rgb
from tmkt_data.rgb.encode import ENCODE_MODES, encode_images
from tmkt_data.store import GroupsWriter, StoreView, holds_store_lock

PAIRS_FORMAT = "tmkt-pairs"
PAIRS_FORMAT_VERSION = 2
SPLITS = ("train", "val", "test")
CLASSMAP_DIR = Path(__file__).resolve().parent / "classmaps"
_LIST_MAX = 40


class PairingError(TmktError, ValueError):
    """Pairing cannot be done (bad store, class map, fractions) or a pairing index is inconsistent."""


# ---------------------------------------------------------------------------- class maps


def normalize_name(name: str) -> str:
    """Matching key: case-folded, letters and digits only (``"Faces_easy"`` -> ``"faceseasy"``)."""
    return "".join(ch for ch in str(name).casefold() if ch.isalnum())


@dataclass
class ClassMap:
    """A parsed class map.

    Attributes:
        classes: DVS class name -> RGB class names pooled into it.
        ignore_dvs: DVS classes without an RGB counterpart, left out on purpose.
        ignore_rgb: RGB classes without a DVS counterpart, left out on purpose.
        rgb_options: default options for the RGB reader (e.g. ``labels="coarse"``).
        source: where the map came from (a path, ``"dict"``, ``"shipped:<file>"``).
        strict: names unknown to the store or RGB source are an error (user maps);
            shipped maps skip entries naming absent classes.
    """

    classes: dict[str, list[str]] = field(default_factory=dict)
    ignore_dvs: list[str] = field(default_factory=list)
    ignore_rgb: list[str] = field(default_factory=list)
    rgb_options: dict[str, Any] = field(default_factory=dict)
    source: str = "none"
    strict: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "classes": self.classes,
            "ignore": {"dvs": self.ignore_dvs, "rgb": self.ignore_rgb},
            "rgb_options": self.rgb_options,
        }


def _names_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise PairingError(f"{where}: expected a class name or a non-empty list of class names, got {value!r}")


def parse_class_map(data: dict[str, Any], source: str, *, strict: bool = True) -> ClassMap:
    """Build a :class:`ClassMap` from a parsed TOML document or a plain dict.

    Structured form: tables ``[classes]`` (DVS class = RGB class or list),
    ``[ignore]`` (``dvs = [...]``, ``rgb = [...]``) and ``[meta]`` (with an
    optional ``rgb_options`` table). A document with none of these keys is
    read as a flat ``DVS class = RGB class(es)`` table.
    """
    if not isinstance(data, dict):
        raise PairingError(f"{source}: class map must be a table, got {type(data).__name__}")
    structured = any(k in data for k in ("classes", "ignore", "meta"))
    if structured:
        unknown = sorted(set(data) - {"classes", "ignore", "meta"})
        if unknown:
            raise PairingError(
                f"{source}: unknown top-level key(s) {unknown}, expected [classes], [ignore], [meta]"
            )
        classes_raw = data.get("classes", {})
        ignore = data.get("ignore", {})
        meta = data.get("meta", {})
    else:
        classes_raw, ignore, meta = data, {}, {}
    for name, tbl in (("classes", classes_raw), ("ignore", ignore), ("meta", meta)):
        if not isinstance(tbl, dict):
            raise PairingError(f"{source}: [{name}] must be a table")
    unknown = sorted(set(ignore) - {"dvs", "rgb"})
    if unknown:
        raise PairingError(f"{source}: [ignore] key(s) {unknown}, expected dvs and rgb")
    classes = {str(k): _names_list(v, f"{source}: classes.{k}") for k, v in classes_raw.items()}
    ign = {}
    for side in ("dvs", "rgb"):
        v = ignore.get(side, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise PairingError(f"{source}: ignore.{side} must be a list of class names")
        ign[side] = list(v)
    rgb_options = meta.get("rgb_options", {})
    if not isinstance(rgb_options, dict):
        raise PairingError(f"{source}: meta.rgb_options must be a table")
    return ClassMap(classes, ign["dvs"], ign["rgb"], dict(rgb_options), source, strict, dict(meta))


def load_class_map(spec: str | os.PathLike[str] | dict[str, Any]) -> ClassMap:
    """Read a class map from a TOML file (or take a dict); see :func:`parse_class_map`."""
    if isinstance(spec, dict):
        return parse_class_map(spec, "class map (dict)")
    path = Path(spec)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PairingError(f"{path}: missing class map file, expected a TOML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PairingError(f"{path}: cannot read class map ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise PairingError(f"{path}: not valid TOML ({err})") from None
    return parse_class_map(data, str(path))


def known_class_map(dvs_dataset: str | None, rgb_kind: str) -> ClassMap | None:
    """The shipped map for this store dataset / RGB source combination, if any."""
    for path in sorted(CLASSMAP_DIR.glob("*.toml")):
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        meta = data.get("meta", {})
        if meta.get("dvs_dataset") == dvs_dataset and meta.get("rgb_kind") == rgb_kind:
            return parse_class_map(data, f"shipped:{path.name}", strict=False)
    return None


def _fmt_names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LIST_MAX])
    return shown + (f" ... and {len(names) - _LIST_MAX} more" if len(names) > _LIST_MAX else "")


@dataclass
class ClassMatch:
    """How DVS classes map to RGB classes.

    Attributes:
        dvs_to_rgb: per DVS class, the RGB class indices pooled into it (empty: dropped).
        rgb_to_dvs: per RGB class, its DVS class index, or -1 when unused.
        how: per DVS class: ``"name"``, ``"map"``, ``"ignored"`` (class map) or ``"unmatched"``.
        unused_rgb: RGB classes with no DVS class (ignored by the map or unmatched).
        unmatched_dvs, unmatched_rgb: classes without counterpart that no map entry explains.
        skipped_entries: shipped-map entries naming classes absent here.
    """

    dvs_to_rgb: list[list[int]]
    rgb_to_dvs: np.ndarray
    how: list[str]
    unused_rgb: list[str]
    unmatched_dvs: list[str]
    unmatched_rgb: list[str]
    skipped_entries: list[str]


def _resolver(names: list[str], side: str, source: str) -> Callable[[str], int | None]:
    exact = {n: i for i, n in enumerate(names)}
    norm: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        norm.setdefault(normalize_name(n), []).append(i)

    def resolve(name: str) -> int | None:
        if name in exact:
            return exact[name]
        hits = norm.get(normalize_name(name), [])
        if len(hits) > 1:
            raise PairingError(
                f"{source}: {side} class {name!r} is ambiguous, it matches "
                f"{_fmt_names([names[i] for i in hits])}; spell it exactly"
            )
        return hits[0] if hits else None

    return resolve


def match_classes(
    dvs_classes: list[str], rgb_classes: list[str], cmap: ClassMap | None, *, drop_unmatched: bool = False
) -> ClassMatch:
    """Match DVS and RGB classes by name and class map (see the module docstring).

    Raises:
        PairingError: the map names unknown classes (strict maps), an RGB class
            goes to two DVS classes, a name is ambiguous, or classes are
            unmatched and ``drop_unmatched`` is False.
    """
    cmap = cmap or ClassMap()
    src = cmap.source
    dvs_of = _resolver(dvs_classes, "DVS", src)
    rgb_of = _resolver(rgb_classes, "RGB", src)
    assigned: dict[int, list[int]] = {}
    ign_dvs: set[int] = set()
    ign_rgb: set[int] = set()
    unknown: list[str] = []
    skipped: list[str] = []
    for dname, rnames in cmap.classes.items():
        d = dvs_of(dname)
        rs = [rgb_of(r) for r in rnames]
        missing = ([f"DVS {dname!r}"] if d is None else []) + [
            f"RGB {r!r}" for r, i in zip(rnames, rs, strict=True) if i is None
        ]
        if missing:
            (unknown if cmap.strict else skipped).extend(missing)
            continue
        assigned[d] = sorted(set(rs))  # type: ignore[arg-type]
    for side, names, resolve, target in (
        ("DVS", cmap.ignore_dvs, dvs_of, ign_dvs),
        ("RGB", cmap.ignore_rgb, rgb_of, ign_rgb),
    ):
        for n in names:
            i = resolve(n)
            if i is None:
                (unknown if cmap.strict else skipped).append(f"{side} {n!r} (ignore)")
            else:
                target.add(i)
    if unknown:
        raise PairingError(
            f"{src}: class map names unknown classes: {', '.join(unknown[:_LIST_MAX])}"
            + (f" ... and {len(unknown) - _LIST_MAX} more" if len(unknown) > _LIST_MAX else "")
            + f" (store classes: {_fmt_names(dvs_classes)}; RGB classes: {_fmt_names(rgb_classes)})"
        )
    both = sorted(set(assigned) & ign_dvs)
    if both:
        raise PairingError(
            f"{src}: DVS class(es) {_fmt_names([dvs_classes[d] for d in both])} both mapped and ignored"
        )

    rgb_norm: dict[str, list[int]] = {}
    for i, n in enumerate(rgb_classes):
        if i not in ign_rgb:
            rgb_norm.setdefault(normalize_name(n), []).append(i)
    rgb_exact = {n: i for i, n in enumerate(rgb_classes) if i not in ign_rgb}
    dvs_to_rgb: list[list[int]] = []
    how: list[str] = []
    for d, name in enumerate(dvs_classes):
        if d in assigned:
            dvs_to_rgb.append(assigned[d])
            how.append("map")
        elif d in ign_dvs:
            dvs_to_rgb.append([])
            how.append("ignored")
        elif name in rgb_exact:
            dvs_to_rgb.append([rgb_exact[name]])
            how.append("name")
        else:
            hits = rgb_norm.get(normalize_name(name), [])
            if len(hits) > 1:
                raise PairingError(
                    f"DVS class {name!r} matches several RGB classes by name "
                    f"({_fmt_names([rgb_classes[i] for i in hits])}); settle it with --class-map"
                )
            dvs_to_rgb.append(hits)
            how.append("name" if hits else "unmatched")

    rgb_to_dvs = np.full(len(rgb_classes), -1, dtype=np.int64)
    for d, rs in enumerate(dvs_to_rgb):
        for r in rs:
            if r in ign_rgb:
                raise PairingError(f"{src}: RGB class {rgb_classes[r]!r} is both mapped and ignored")
            if rgb_to_dvs[r] >= 0:
                raise PairingError(
                    f"RGB class {rgb_classes[r]!r} is paired with two DVS classes, "
                    f"{dvs_classes[rgb_to_dvs[r]]!r} and {dvs_classes[d]!r}; "
                    "an RGB class can feed one DVS class only"
                )
            rgb_to_dvs[r] = d
    unmatched_dvs = [n for n, h in zip(dvs_classes, how, strict=True) if h == "unmatched"]
    unmatched_rgb = [n for i, n in enumerate(rgb_classes) if rgb_to_dvs[i] < 0 and i not in ign_rgb]
    if (unmatched_dvs or unmatched_rgb) and not drop_unmatched:
        parts = []
        if unmatched_dvs:
            parts.append(f"{len(unmatched_dvs)} DVS class(es) without RGB: {_fmt_names(unmatched_dvs)}")
        if unmatched_rgb:
            parts.append(f"{len(unmatched_rgb)} RGB class(es) without DVS: {_fmt_names(unmatched_rgb)}")
        raise PairingError(
            "unmatched classes: " + "; ".join(parts) + " (give a --class-map or use --drop-unmatched)"
        )
    unused = [n for i, n in enumerate(rgb_classes) if rgb_to_dvs[i] < 0]
    return ClassMatch(dvs_to_rgb, rgb_to_dvs, how, unused, unmatched_dvs, unmatched_rgb, skipped)


# ---------------------------------------------------------------------------- instances


def _nmnist_mnist(
    sample_id: str, dvs_class: str, rgb_ids: dict[str, int], rgb_classes: list[str]
) -> str | None:
    """N-MNIST ``"Train/3/00012"`` -> MNIST ``"train/00011"``: file number k is MNIST index k - 1.

    Assumes N-MNIST numbers its files 1-based over the MNIST order of the same
    split (not verified against the full archive). It is consistent with what
    we can check: SLAYER's N-MNIST train samples ``1, 2, 3, 4, 6`` carry labels
    5, 0, 4, 1, 2, which are MNIST train images 0, 1, 2, 3, 5; 0-based
    numbering would give 0, 4, 1, 9, 1. A label mismatch under this rule is an
    error with ``instance=True``, so a wrong convention cannot pass silently.
    """
    parts = sample_id.split("/")
    if len(parts) != 3 or parts[0] not in ("Train", "Test") or not parts[2].isdigit() or int(parts[2]) < 1:
        return None
    return f"{'train' if parts[0] == 'Train' else 'test'}/{int(parts[2]) - 1:05d}"


def _ncaltech_caltech(
    sample_id: str, dvs_class: str, rgb_ids: dict[str, int], rgb_classes: list[str]
) -> str | None:
    """N-Caltech101 ``"<class>/image_0001"`` -> Caltech101 ``"<rgb class>/image_0001.jpg"``."""
    stem = sample_id.rsplit("/", 1)[-1]
    for rc in rgb_classes:
        for ext in (".jpg", ".jpeg"):
            cand = f"{rc}/{stem}{ext}"
            if cand in rgb_ids:
                return cand
    return None


#: (store dataset, RGB source) -> instance rule (sample id -> RGB source id) and its description.
INSTANCE_RULES: dict[tuple[str, str], tuple[Callable[..., str | None], str]] = {
    ("nmnist", "mnist"): (
        _nmnist_mnist,
        "N-MNIST <Train|Test>/<digit>/<k> <-> MNIST <train|test> index k - 1 (1-based file numbers)",
    ),
    ("ncaltech101", "caltech101"): (
        _ncaltech_caltech,
        "N-Caltech101 <class>/image_NNNN <-> Caltech101 <mapped class>/image_NNNN.jpg",
    ),
}

#: The instance link of a synthetic store (see :func:`synthetic_sources`).
SYNTHETIC_RULE = (
    "synthetic store: the sample's source_path is a file of the simulator's samples table "
    "(attrs.source_metadata.samples), whose source_id is the RGB image it was simulated from"
)


def synthetic_sources(
    attrs: dict[str, Any], source_paths: list[str] | None, rgb_kind: str
) -> tuple[list[str | None] | None, str | None]:
    """Per store sample, the id of the RGB image it was simulated from (None: not in the table).

    The link holds for a store with ``attrs.synthetic`` whose
    ``attrs.source_metadata`` (the simulator's ``synthetic.json``) names
    ``rgb_kind`` as its source and holds the samples table (columns ``file``
    and ``source_id``; ``file`` is the recording's path in the raw tree, which
    is the store's ``source_path``).

    Returns:
        ``(ids, None)`` when the link holds; ``(None, reason)`` for a synthetic
        store where it does not (the reason in words); ``(None, None)`` for a
        store that is not synthetic.
    """
    if not attrs.get("synthetic", False):
        return None, None
    meta = attrs.get("source_metadata")
    if not isinstance(meta, dict):
        return None, "the synthetic store has no source_metadata (the simulator's synthetic.json)"
    kind = (meta.get("source") or {}).get("kind") if isinstance(meta.get("source"), dict) else None
    if kind != rgb_kind:
        return None, f"the synthetic store was simulated from {kind!r} images, not {rgb_kind!r}"
    table = meta.get("samples")
    cols = table.get("columns") if isinstance(table, dict) else None
    if not isinstance(cols, list) or "file" not in cols or "source_id" not in cols:
        return None, "the synthetic store's source_metadata has no samples table with file and source_id"
    if source_paths is None:
        return None, "the synthetic store has no source_path array"
    fi, si = cols.index("file"), cols.index("source_id")
    by_file = {str(r[fi]): str(r[si]) for r in table.get("rows", []) if r[fi] is not None}
    return [by_file.get(p) for p in source_paths], None


# ---------------------------------------------------------------------------- orientation

DIHEDRAL: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "flip_x": lambda a: a[:, ::-1],
    "flip_y": lambda a: a[::-1, :],
    "transpose": lambda a: a.T,
    "anti_transpose": lambda a: np.rot90(a, 2).T,
}


def gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """``sqrt(d/dy^2 + d/dx^2)`` of a 2-D image (numpy central differences)."""
    gy, gx = np.gradient(np.asarray(img, dtype=np.float64))
    return np.hypot(gx, gy)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def orientation_scores(event_img: np.ndarray, rgb_img: np.ndarray) -> dict[str, float]:
    """Pearson correlation of an event-count image with the RGB image's gradient magnitude, per transform.

    ``rgb_img`` (an intensity image of the same ``(H, W)`` as ``event_img``)
    goes through each of the 8 dihedral transforms (:data:`DIHEDRAL`: numpy
    ``rot90`` is counter-clockwise, ``flip_x`` mirrors columns, ``flip_y``
    rows, ``anti_transpose`` = ``rot180`` then transpose) before its gradient
    magnitude is correlated with ``event_img``. The transform with the highest
    score is the one that brings the RGB image onto the events. Transforms
    that change the shape (90-degree turns of a non-square image) and
    constant images give NaN.
    """
    ev = np.asarray(event_img, dtype=np.float64)
    if ev.ndim != 2 or np.shape(rgb_img) != ev.shape:
        raise PairingError(
            f"orientation: images of shape {ev.shape} and {np.shape(rgb_img)}, expected equal (H, W)"
        )
    grad = gradient_magnitude(rgb_img)
    out = {}
    for name, fn in DIHEDRAL.items():
        g = fn(grad)
        out[name] = _corr(ev, g) if g.shape == ev.shape else float("nan")
    return out


# ---------------------------------------------------------------------------- results


@dataclass
class PairReport:
    """What :func:`pair_store` did (also what ``tmkt-data pair`` prints).

    Selection: ``val_fraction`` (None when ``val_per_class`` is given),
    ``val_per_class``, ``dvs_fraction``, ``dvs_per_class`` (None when not
    given). ``per_class`` rows: class, DVS ``train``/``val``/``test`` counts,
    ``pool`` size and ``excluded`` (RGB training images of the class kept out
    of its pool). Pool hygiene: ``instance_rule`` is the instance link used
    (None: unknown), ``eval_source_images`` the RGB training images that are
    sources of DVS val/test samples (None when the link is unknown),
    ``pool_excluded`` those kept out of the pools (0 with
    ``exclude_eval_sources=False``).
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

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars turned into Python ones and NaN into None (zarr attrs are JSON)."""
    obj = json.loads(json.dumps(obj, default=_json_default, allow_nan=True))

    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(obj)


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
            raise PairingError(f"no RGB partners for class(es) {_fmt_names(bad)}")
        rows = self.pool_rgb[lo + (rng.random(len(idx)) * (hi - lo)).astype(np.int64)]
        if not np.array_equal(self.rgb_labels[rows], labels):
            raise PairingError("drawn RGB partners have labels different from their DVS samples")
        return rows


# ---------------------------------------------------------------------------- selection helpers


def _order_key(seed: int, purpose: str, sample_id: str) -> bytes:
    return hashlib.sha256(f"{seed}/{purpose}/{sample_id}".encode()).digest()


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


def _check_fraction(name: str, value: float, *, lo_open: bool, allow_one: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    ok = (v > 0 if lo_open else v >= 0) and (v <= 1 if allow_one else v < 1)
    if not ok:
        rng = ("0 < F" if lo_open else "0 <= F") + (" <= 1" if allow_one else " < 1")
        raise PairingError(f"{name} {value!r}: expected {rng}")
    return v


def _check_count(name: str, value: Any, minimum: int) -> int | None:
    """``value`` as an int >= ``minimum``, or None for None; PairingError naming the option otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise PairingError(f"{name} {value!r}: expected an integer >= {minimum}")
    return int(value)


def check_selection(
    classes: list[str],
    dvs: dict[str, np.ndarray],
    dvs_labels: np.ndarray,
    pool_rgb: np.ndarray,
    rgb_split: list[str],
    eval_rgb: np.ndarray,
    attrs: dict[str, Any],
    where: str,
) -> None:
    """Check the index against its recorded selection settings; PairingError naming the first violation.

    ``attrs`` holds ``val_fraction``, ``val_per_class``, ``dvs_fraction``,
    ``dvs_per_class``, ``exclude_eval_sources``, ``pool_excluded`` and
    ``dvs_classes_dropped`` (as written to ``pairs/``). Checked: the settings'
    types and exclusivity, exactly ``val_per_class`` val and ``dvs_per_class``
    train samples in every class that is not dropped, and, when eval sources
    are excluded, no ``eval_rgb`` row in any pool and ``pool_excluded`` equal
    to the eval sources in the RGB train split (0 when they are kept).
    """
    vf, vpc = attrs.get("val_fraction"), attrs.get("val_per_class")
    df, dpc = attrs.get("dvs_fraction"), attrs.get("dvs_per_class")
    excl = attrs.get("exclude_eval_sources")
    try:
        _check_count("val_per_class", vpc, 0)
        _check_count("dvs_per_class", dpc, 1)
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
        got = np.bincount(dvs_labels[dvs[sp]], minlength=len(classes))
        bad = [c for c in range(len(classes)) if classes[c] not in dropped and got[c] != want]
        if bad:
            c = bad[0]
            raise PairingError(
                f"{where}: class {classes[c]!r} has {int(got[c])} DVS {sp} sample(s), expected "
                f"{'val_per_class' if sp == 'val' else 'dvs_per_class'} = {want}"
            )
    rgb_train = np.asarray(rgb_split, dtype=object) == "train"
    in_train = int(np.sum(rgb_train[eval_rgb])) if len(eval_rgb) else 0
    if excl:
        if np.intersect1d(eval_rgb, pool_rgb).size:
            raise PairingError(f"{where}: a pool holds the RGB source of a DVS val/test sample")
        want_excluded = in_train
    else:
        want_excluded = 0
    if attrs.get("pool_excluded") != want_excluded:
        raise PairingError(
            f"{where}: pool_excluded {attrs.get('pool_excluded')!r}, expected {want_excluded} "
            f"(exclude_eval_sources {excl}, {in_train} eval source(s) in the RGB train split)"
        )


def check_index(
    classes: list[str],
    dvs: dict[str, np.ndarray],
    partners: dict[str, np.ndarray] | None,
    pool_offsets: np.ndarray,
    pool_rgb: np.ndarray,
    rgb_labels: np.ndarray,
    rgb_split: list[str],
    dvs_labels: np.ndarray,
    dvs_valid: np.ndarray,
    dvs_split: list[str],
    where: str,
) -> None:
    """Assert the index's invariants; PairingError naming the first violation.

    Every pool holds only RGB training images of its class (so every pair has
    equal labels), DVS indices are valid samples of the right store split,
    the splits do not overlap, every class with DVS training samples has a
    non-empty pool, and instance partners have the DVS sample's label.
    """
    c = len(classes)
    n = len(dvs_labels)
    m = len(rgb_labels)
    off = np.asarray(pool_offsets, dtype=np.int64)
    if off.shape != (c + 1,) or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != len(pool_rgb):
        raise PairingError(
            f"{where}: pool_offsets are not a CSR index over {c} classes and {len(pool_rgb)} rows"
        )
    if len(pool_rgb) and (pool_rgb.min() < 0 or pool_rgb.max() >= m):
        raise PairingError(f"{where}: pool rows outside 0..{m - 1}")
    owner = np.repeat(np.arange(c), np.diff(off))
    bad = np.flatnonzero(rgb_labels[pool_rgb] != owner)
    if bad.size:
        k = int(bad[0])
        raise PairingError(
            f"{where}: pool of class {classes[owner[k]]!r} holds RGB image {int(pool_rgb[k])} "
            f"of class {int(rgb_labels[pool_rgb[k]])}: labels differ"
        )
    rgb_split_arr = np.asarray(rgb_split, dtype=object)
    if len(pool_rgb) and np.any(rgb_split_arr[pool_rgb] != "train"):
        raise PairingError(f"{where}: a pool holds an RGB image outside the RGB train split")
    seen = np.zeros(n, dtype=bool)
    dvs_split_arr = np.asarray(dvs_split, dtype=object)
    for sp, idx in dvs.items():
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise PairingError(f"{where}: {sp} DVS indices outside 0..{n - 1}")
        if np.any(seen[idx]) or len(np.unique(idx)) != len(idx):
            raise PairingError(f"{where}: DVS split {sp} overlaps another split or repeats samples")
        seen[idx] = True
        if not np.all(dvs_valid[idx]):
            raise PairingError(f"{where}: DVS split {sp} holds invalid samples")
        want = "test" if sp == "test" else "train"
        if np.any(dvs_split_arr[idx] != want):
            raise PairingError(f"{where}: DVS split {sp} holds samples outside the store's {want} split")
        labs = dvs_labels[idx]
        if len(labs) and (labs.min() < 0 or labs.max() >= c):
            raise PairingError(f"{where}: DVS split {sp} holds labels outside 0..{c - 1}")
        if sp == "train" and len(labs):
            empty = np.unique(labs[np.diff(off)[labs] == 0])
            if empty.size:
                raise PairingError(
                    f"{where}: class(es) {_fmt_names([classes[i] for i in empty.tolist()])} have DVS "
                    "training samples but no RGB training images"
                )
        if partners is not None:
            p = partners[sp]
            if p.shape != idx.shape or (len(p) and (p.min() < -1 or p.max() >= m)):
                raise PairingError(f"{where}: {sp} instance partners do not line up with the DVS samples")
            has = p >= 0
            if np.any(rgb_labels[p[has]] != labs[has]):
                raise PairingError(
                    f"{where}: a {sp} instance partner has a label different from its DVS sample"
                )


# ---------------------------------------------------------------------------- the job


def _read_dvs(store: Path, split_array: str) -> tuple[StoreView, dict[str, Any]]:
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
    return g, {
        "classes": classes,
        "labels": labels,
        "valid": g.read("valid", bool),
        "ids": g.strings("sample_id"),
        "split": g.strings(split_array),
        "size": (int(shape[3]), int(shape[4])),
        "dataset": str(g.attrs.get("dataset", "")),
        "source_paths": g.strings("source_path") if g.has("source_path") else None,
    }


@holds_store_lock("tmkt-data pair")
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
    on_progress: Callable[[str, int, int], None] | None = None,
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
    t0 = time.perf_counter()
    store = Path(store_path).resolve()
    val_per_class = _check_count("--val-per-class", val_per_class, 0)
    dvs_per_class = _check_count("--dvs-per-class", dvs_per_class, 1)
    if val_fraction is not None and val_per_class is not None:
        raise PairingError(
            f"--val-fraction {val_fraction!r} and --val-per-class {val_per_class}: give one of them"
        )
    if val_per_class is None:
        val_fraction = _check_fraction(
            "--val-fraction", 0.1 if val_fraction is None else val_fraction, lo_open=False, allow_one=False
        )
    dvs_fraction = _check_fraction("--dvs-fraction", dvs_fraction, lo_open=True, allow_one=True)
    if dvs_per_class is not None and dvs_fraction != 1.0:
        raise PairingError(
            f"--dvs-fraction {dvs_fraction!r} and --dvs-per-class {dvs_per_class}: give one of them"
        )
    if not isinstance(exclude_eval_sources, (bool, np.bool_)):
        raise PairingError(f"exclude_eval_sources {exclude_eval_sources!r}: expected true or false")
    exclude_eval_sources = bool(exclude_eval_sources)
    if encode_mode not in ENCODE_MODES:
        raise PairingError(f"encode mode {encode_mode!r}, expected one of {', '.join(ENCODE_MODES)}")
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise PairingError(f"--seed {seed!r}: expected an integer") from None
    group, dvs = _read_dvs(store, split_array)
    classes: list[str] = dvs["classes"]
    dataset: str = dvs["dataset"]
    warnings: list[str] = []

    # class map and RGB source
    if class_map is None:
        cmap = known_class_map(dataset, rgb_kind)
    else:
        cmap = load_class_map(class_map)
    opts = dict(cmap.rgb_options if cmap else {})
    opts.update(rgb_options or {})
    synth_ids, synth_gap = synthetic_sources(dict(group.attrs), dvs["source_paths"], rgb_kind)
    # a synthetic store's files are not the published dataset's recordings: no file-name rule
    rule = INSTANCE_RULES.get((dataset, rgb_kind)) if synth_gap is None else None
    rule_text = SYNTHETIC_RULE if synth_ids is not None else rule[1] if rule else None
    if instance and rule_text is None:
        known = ", ".join(f"{d}+{k}" for d, k in INSTANCE_RULES)
        raise PairingError(
            f"--instance: no instance correspondence for {dataset} + {rgb_kind} (defined for {known}, "
            f"and for a synthetic store paired with its source{': ' + synth_gap if synth_gap else ''})"
        )
    if synth_gap:
        warnings.append(
            f"{synth_gap}: the RGB sources of DVS val/test samples are unknown and stay in the pools"
        )
    rgb: RGBSet = load_rgb(rgb_kind, rgb_root, **opts)
    match = match_classes(classes, rgb.class_names, cmap, drop_unmatched=drop_unmatched)
    if match.skipped_entries:
        warnings.append(
            f"class map {cmap.source if cmap else ''}: skipped entries for absent classes: "
            + ", ".join(match.skipped_entries[:_LIST_MAX])
        )

    # RGB images kept: those of matched classes, in source order
    rgb_dvs_label = match.rgb_to_dvs[rgb.labels]
    keep = np.flatnonzero(rgb_dvs_label >= 0)
    if keep.size == 0:
        raise PairingError(f"{rgb_kind}: no RGB image belongs to a matched class")
    rgb_labels = rgb_dvs_label[keep].astype(np.int32)
    rgb_split = [rgb.split[i] for i in keep.tolist()]
    rgb_ids = [rgb.source_ids[i] for i in keep.tolist()]
    rgb_src_labels = rgb.labels[keep]
    row_of_id = {sid: j for j, sid in enumerate(rgb_ids)}

    # DVS splits
    labels, valid, ids, split = dvs["labels"], dvs["valid"], dvs["ids"], dvs["split"]
    split_arr = np.asarray(split, dtype=object)
    active = np.array([bool(match.dvs_to_rgb[c]) for c in range(len(classes))])
    usable = valid & active[labels]
    other = sorted(set(split) - {"train", "test"})
    if other:
        warnings.append(
            f"store split values {other} are neither train nor test; those samples are not paired"
        )
    train_all = np.flatnonzero(usable & (split_arr == "train"))
    test_idx = np.flatnonzero(usable & (split_arr == "test"))
    val_parts, train_parts = [], []
    short: list[str] = []
    no_val: list[str] = []
    per_class_rule = val_per_class is not None or dvs_per_class is not None
    for c in range(len(classes)):
        members = train_all[labels[train_all] == c]
        if members.size == 0 and not (per_class_rule and active[c]):
            continue
        by_val = sorted(members.tolist(), key=lambda i: _order_key(seed, "val", ids[i]))
        n = len(by_val)
        nv = val_per_class if val_per_class is not None else n_val_for(n, float(val_fraction or 0.0))
        n_train = dvs_per_class if dvs_per_class is not None else 1
        if per_class_rule and n - nv < n_train:
            short.append(f"{classes[c]!r} ({n}" + (f", {nv} to val)" if val_per_class is None else ")"))
            continue
        if val_per_class is None and val_fraction and nv == 0:
            no_val.append(classes[c])
        val_parts.append(by_val[:nv])
        rest = sorted(by_val[nv:], key=lambda i: _order_key(seed, "dvs_fraction", ids[i]))
        n_keep = dvs_per_class if dvs_per_class is not None else n_keep_for(len(rest), dvs_fraction)
        train_parts.append(rest[:n_keep])
    if short:
        if val_per_class is None:
            need = (
                f"--dvs-per-class {dvs_per_class} needs {dvs_per_class} DVS training samples per class left"
            )
            need += f" after --val-fraction {val_fraction:g}"
        else:
            train_text = f"{dvs_per_class}" if dvs_per_class is not None else "at least 1"
            need = (
                f"--val-per-class {val_per_class}"
                + (f" with --dvs-per-class {dvs_per_class}" if dvs_per_class is not None else "")
                + f" needs {val_per_class + (dvs_per_class or 1)} DVS training samples per class "
                f"({val_per_class} val + {train_text} train)"
            )
        raise PairingError(
            f"{need}; class(es) with fewer (training samples): {', '.join(short[:_LIST_MAX])}"
            + (f" ... and {len(short) - _LIST_MAX} more" if len(short) > _LIST_MAX else "")
        )
    if no_val:
        warnings.append(
            f"--val-fraction {val_fraction:g} gives {len(no_val)} class(es) no validation sample "
            f"(too few training samples): {_fmt_names(no_val)}; --val-per-class sets a count per class"
        )
    dvs_split_idx = {
        "train": np.array(sorted(i for part in train_parts for i in part), dtype=np.int64),
        "val": np.array(sorted(i for part in val_parts for i in part), dtype=np.int64),
        "test": test_idx.astype(np.int64),
    }
    n_invalid = int(np.sum(~valid & active[labels]))
    if n_invalid:
        warnings.append(f"{n_invalid} invalid DVS sample(s) (failed conversion) left out")
    no_samples = [classes[c] for c in range(len(classes)) if active[c] and not np.any(usable & (labels == c))]
    if no_samples:
        warnings.append(f"matched class(es) without valid DVS samples: {_fmt_names(no_samples)}")

    # instance partners (for --instance, and to keep eval sources out of the pools)
    partners: dict[str, np.ndarray] | None = None
    partner_all: np.ndarray | None = None
    if rule_text is not None:
        partner_all = np.full(len(ids), -1, dtype=np.int64)
        rgb_names_of = [[rgb.class_names[r] for r in match.dvs_to_rgb[c]] for c in range(len(classes))]
        rule_fn = rule[0] if rule is not None else None
        for sp_idx in dvs_split_idx.values():
            for i in sp_idx.tolist():
                sid: str | None = None
                if synth_ids is not None:
                    sid = synth_ids[i]
                elif rule_fn is not None:
                    sid = rule_fn(ids[i], classes[labels[i]], row_of_id, rgb_names_of[labels[i]])
                if sid is not None and sid in row_of_id:
                    partner_all[i] = row_of_id[sid]
        has = partner_all >= 0
        wrong = np.flatnonzero(has & (rgb_labels[np.maximum(partner_all, 0)] != labels))
        if wrong.size and instance:
            ex = ", ".join(
                f"{ids[i]} ({classes[labels[i]]}) <-> {rgb_ids[partner_all[i]]} "
                f"({classes[rgb_labels[partner_all[i]]]})"
                for i in wrong[:3].tolist()
            )
            raise PairingError(
                f"instance pairing: {wrong.size} DVS sample(s) would pair with an RGB image of another "
                f"class, e.g. {ex}; the instance rule ({rule_text}) does not hold for these files"
            )
        partner_all[wrong] = -1
        if instance:
            partners = {sp: partner_all[idx] for sp, idx in dvs_split_idx.items()}

    # pools: RGB-train images per DVS class, minus the sources of DVS val/test samples
    is_source = np.zeros(len(keep), dtype=bool)
    if partner_all is not None:
        for sp in ("val", "test"):
            src = partner_all[dvs_split_idx[sp]]
            is_source[src[src >= 0]] = True
    eval_rgb = np.flatnonzero(is_source).astype(np.int64)
    is_train = np.asarray(rgb_split, dtype=object) == "train"
    excluded = is_source if exclude_eval_sources else np.zeros(len(keep), dtype=bool)
    in_pool = is_train & ~excluded
    pool_rows = [np.flatnonzero(in_pool & (rgb_labels == c)) for c in range(len(classes))]
    pool_offsets = np.zeros(len(classes) + 1, dtype=np.int64)
    pool_offsets[1:] = np.cumsum([len(p) for p in pool_rows])
    pool_rgb = np.concatenate(pool_rows).astype(np.int64) if pool_rows else np.zeros(0, np.int64)
    excluded_per_class = np.bincount(rgb_labels[is_train & excluded], minlength=len(classes))
    pool_excluded = int(excluded_per_class.sum())
    eval_source_images = int(np.sum(is_train & is_source)) if rule_text is not None else None
    if pool_excluded:
        warnings.append(
            f"{pool_excluded} RGB training image(s) kept out of the pools: "
            "they are the sources of DVS val/test samples"
        )
    elif eval_source_images:
        warnings.append(
            f"{eval_source_images} RGB pool image(s) are the sources of DVS val/test samples, kept by "
            "--keep-eval-sources: validation and test are not independent of the RGB training images"
        )
    train_labels = set(labels[dvs_split_idx["train"]].tolist())
    empty = [c for c in range(len(classes)) if c in train_labels and not len(pool_rows[c])]
    if empty:
        rgb_names = sorted({rgb.class_names[r] for c in empty for r in match.dvs_to_rgb[c]})
        gone = int(sum(excluded_per_class[c] for c in empty))
        raise PairingError(
            f"{rgb_kind}: class(es) {_fmt_names([classes[c] for c in empty])} have DVS training samples but "
            f"no RGB training images (their RGB classes: {_fmt_names(rgb_names)})"
            + (
                f"; {gone} were kept out as sources of DVS val/test samples (--keep-eval-sources keeps them)"
                if gone
                else ""
            )
        )
    check_index(
        classes, dvs_split_idx, partners, pool_offsets, pool_rgb, rgb_labels, rgb_split, labels, valid, split,
        "pairing (before writing)",
    )  # fmt: skip
    dropped = [classes[c] for c in range(len(classes)) if not match.dvs_to_rgb[c]]
    selection = {
        "val_fraction": val_fraction,
        "val_per_class": val_per_class,
        "dvs_fraction": dvs_fraction,
        "dvs_per_class": dvs_per_class,
        "exclude_eval_sources": exclude_eval_sources,
    }
    check_selection(
        classes, dvs_split_idx, labels, pool_rgb, rgb_split, eval_rgb,
        {**selection, "pool_excluded": pool_excluded, "dvs_classes_dropped": dropped}, "pairing (before writing)",
    )  # fmt: skip

    # write: temporary groups, then swap in
    size = dvs["size"]
    counts = {
        sp: {classes[c]: int(np.sum(labels[idx] == c)) for c in range(len(classes))}
        for sp, idx in dvs_split_idx.items()
    }
    pool_sizes = {classes[c]: int(pool_offsets[c + 1] - pool_offsets[c]) for c in range(len(classes))}
    h = hashlib.sha256()
    for arr in (
        *dvs_split_idx.values(),
        pool_offsets,
        pool_rgb,
        rgb_labels,
        eval_rgb,
        *(partners or {}).values(),
    ):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps([rgb_ids, encode_mode, list(size), rgb_kind, seed, selection], default=str).encode())
    pairing_id = h.hexdigest()[:32]
    class_mapping = [
        {
            "dvs": classes[c],
            "dvs_label": c,
            "rgb": [rgb.class_names[r] for r in match.dvs_to_rgb[c]],
            "how": match.how[c],
        }
        for c in range(len(classes))
    ]
    synthetic = bool(group.attrs.get("synthetic", False))
    if synthetic:
        warnings.append(
            "the DVS store holds DVS-like synthetic events (attrs.synthetic), not a real recording"
        )

    orientation = None
    with GroupsWriter(store) as out:
        m = len(keep)
        block = out.create_images(m, size)
        source = rgb.images
        for a in range(0, m, block):
            b = min(m, a + block)
            block_rows = keep[a:b]
            if hasattr(source, "subset"):
                block_src = source.subset(block_rows)
            elif isinstance(source, np.ndarray):
                block_src = source[block_rows]
            else:
                block_src = [source[int(i)] for i in block_rows]
            out.write_images(a, encode_images(block_src, size, encode_mode))
            if on_progress is not None:
                on_progress("encode", b, m)
        out.put("rgb/labels", rgb_labels, np.int32)
        out.put("rgb/source_labels", rgb_src_labels, np.int32)
        out.put("rgb/source_ids", rgb_ids, str)
        out.put("rgb/split", rgb_split, str)
        rgb_attrs = {
            "format": PAIRS_FORMAT,
            "format_version": PAIRS_FORMAT_VERSION,
            "pairing_id": pairing_id,
            "kind": rgb_kind,
            "root": rgb.root,
            "options": opts,
            "class_names": list(rgb.class_names),
            "dvs_classes": classes,
            "encode_mode": encode_mode,
            "encoding": (
                "PIL bilinear resize of the uint8 image to (H, W), then "
                + ("HSV V = max(R, G, B) / 255" if encode_mode == "hsv_v" else "ITU-R 601 luma / 255")
                + ", copied into both polarity channels"
            ),
            "size": list(size),
            "n_images": m,
            "split_counts": {sp: int(rgb_split.count(sp)) for sp in ("train", "test")},
            "source_info": rgb.info,
        }

        if instance and partners is not None:
            orientation = _jsonable(
                _orientation(group.lazy("frames"), out.images, dvs_split_idx, partners, orientation_samples)
            )
            if orientation["warning"]:
                warnings.append(
                    "orientation: the RGB images line up best with the events under "
                    f"{orientation['best']!r}, not the identity (scores "
                    f"{orientation['scores'][orientation['best']]:.3f} vs "
                    f"{orientation['scores']['identity']:.3f}); the orientation conventions may differ"
                )

        partner_counts = None
        if partners is not None:
            partner_counts = {
                sp: {"paired": int(np.sum(p >= 0)), "missing": int(np.sum(p < 0))}
                for sp, p in partners.items()
            }
            missing = sum(v["missing"] for v in partner_counts.values())
            if missing:
                warnings.append(f"instance pairing: {missing} DVS sample(s) have no RGB partner (-1)")

        for sp, idx in dvs_split_idx.items():
            out.put(f"pairs/{sp}/dvs", idx, np.int64)
            if partners is not None:
                out.put(f"pairs/{sp}/rgb", partners[sp], np.int64)
        out.put("pairs/pool_offsets", pool_offsets, np.int64)
        out.put("pairs/pool_rgb", pool_rgb, np.int64)
        out.put("pairs/eval_rgb", eval_rgb, np.int64)
        pairs_attrs = {
            "format": PAIRS_FORMAT,
            "format_version": PAIRS_FORMAT_VERSION,
            "pairing_id": pairing_id,
            "store_index_hash": group.attrs.get("index_hash"),
            "store_params_hash": group.attrs.get("params_hash"),
            "dvs_dataset": dataset,
            "dvs_classes": classes,
            "dvs_split_array": split_array,
            "rgb_kind": rgb_kind,
            "seed": seed,
            **selection,
            "rules": {
                "order": "per class, samples ordered by sha256('<seed>/<purpose>/<sample_id>'), "
                "purpose val, then dvs_fraction for both train selections",
                "val": "the first val_per_class samples of the store's train split, or "
                "n_val = floor(val_fraction * n + 1/2), at most n - 1",
                "train": "the first dvs_per_class of the samples left after val, or "
                "n_keep = ceil(dvs_fraction * m) of the m left, at least 1",
                "pools": "RGB train-split images of the matched RGB classes"
                + (
                    ", excluding the sources of DVS val/test samples (eval_rgb; where the instance "
                    "link is known)"
                    if exclude_eval_sources
                    else "; the sources of DVS val/test samples (eval_rgb) stay in (exclude_eval_sources false)"
                ),
                "dvs": "valid samples of matched classes only",
            },
            "instance": bool(instance),
            "instance_rule": rule_text,
            "class_mapping": class_mapping,
            "dvs_classes_dropped": dropped,
            "rgb_classes_unused": match.unused_rgb,
            "class_map": cmap.to_dict() if cmap else None,
            "counts": counts,
            "split_totals": {sp: int(len(idx)) for sp, idx in dvs_split_idx.items()},
            "pool_sizes": pool_sizes,
            "eval_source_images": eval_source_images,
            "pool_excluded": pool_excluded,
            "partners": partner_counts,
            "orientation": orientation,
            "synthetic": synthetic,
            "warnings": warnings,
            **(extra_attrs or {}),
        }
        out.commit({"rgb": _jsonable(rgb_attrs), "pairs": _jsonable(pairs_attrs)})

    return PairReport(
        store=str(store),
        dvs_dataset=dataset,
        rgb_kind=rgb_kind,
        rgb_root=rgb.root,
        rgb_images=len(keep),
        rgb_split_counts={sp: int(rgb_split.count(sp)) for sp in ("train", "test")},
        class_mapping=class_mapping,
        dvs_classes_dropped=dropped,
        rgb_classes_unused=match.unused_rgb,
        split_counts={sp: int(len(idx)) for sp, idx in dvs_split_idx.items()},
        per_class=[
            {
                "class": classes[c],
                **{sp: counts[sp][classes[c]] for sp in SPLITS},
                "pool": pool_sizes[classes[c]],
                "excluded": int(excluded_per_class[c]),
            }
            for c in range(len(classes))
        ],
        seed=seed,
        val_fraction=val_fraction,
        val_per_class=val_per_class,
        dvs_fraction=dvs_fraction,
        dvs_per_class=dvs_per_class,
        encode_mode=encode_mode,
        size=size,
        class_map=cmap.to_dict() if cmap else None,
        instance=bool(instance),
        instance_rule=rule_text,
        partners=partner_counts,
        orientation=orientation,
        exclude_eval_sources=exclude_eval_sources,
        eval_source_images=eval_source_images,
        pool_excluded=pool_excluded,
        synthetic=synthetic,
        warnings=warnings,
        pairing_id=pairing_id,
        seconds=time.perf_counter() - t0,
    )


def _orientation(
    frames: Any, images: Any, dvs: dict[str, np.ndarray], partners: dict[str, np.ndarray], limit: int
) -> dict[str, Any]:
    """Mean :func:`orientation_scores` over up to ``limit`` instance pairs (evenly spaced, all splits)."""
    pairs = sorted(
        (int(i), int(p))
        for sp in SPLITS
        for i, p in zip(dvs[sp].tolist(), partners[sp].tolist(), strict=True)
        if p >= 0
    )
    if not pairs:
        return {"n_pairs": 0, "scores": {}, "best": None, "warning": False}
    if len(pairs) > limit > 0:
        pick = np.linspace(0, len(pairs) - 1, limit).round().astype(int)
        pairs = [pairs[k] for k in sorted(set(pick.tolist()))]
    sums = dict.fromkeys(DIHEDRAL, 0.0)
    used = dict.fromkeys(DIHEDRAL, 0)
    for i, p in pairs:
        ev = np.asarray(frames[i], dtype=np.float64).sum(axis=(0, 1))
        img = np.asarray(images[p][0], dtype=np.float64)
        for name, v in orientation_scores(ev, img).items():
            if math.isfinite(v):
                sums[name] += v
                used[name] += 1
    scores = {k: (sums[k] / used[k] if used[k] else float("nan")) for k in DIHEDRAL}
    finite = {k: v for k, v in scores.items() if math.isfinite(v)}
    best = max(finite, key=lambda k: finite[k]) if finite else None
    return {
        "n_pairs": len(pairs),
        "scores": scores,
        "best": best,
        "warning": best is not None and best != "identity",
        "method": "Pearson correlation of the summed event counts with the gradient magnitude of the "
        "encoded RGB image under each transform, averaged over the pairs",
    }


# ---------------------------------------------------------------------------- reading


def read_pairs(store_path: str | os.PathLike[str]) -> Pairs:
    """Read a store's pairing index, re-checking every invariant (equal labels for every pair).

    Raises:
        PairingError: no index, an index from another sample list or run, or a broken invariant.
    """
    store = Path(store_path).resolve()
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
    split_name = str(pa.get("dvs_split_array", "split"))
    check_index(
        classes, pairs.dvs, partners, pairs.pool_offsets, pairs.pool_rgb, pairs.rgb_labels, pairs.rgb_split,
        pairs.dvs_labels, g.read("valid", bool), g.strings(split_name), f"{store}: pairs",
    )  # fmt: skip
    if len(pairs.eval_rgb) and (pairs.eval_rgb.min() < 0 or pairs.eval_rgb.max() >= len(pairs.rgb_labels)):
        raise PairingError(f"{store}: pairs/eval_rgb holds rows outside 0..{len(pairs.rgb_labels) - 1}")
    check_selection(
        classes, pairs.dvs, pairs.dvs_labels, pairs.pool_rgb, pairs.rgb_split, pairs.eval_rgb, pa,
        f"{store}: pairs",
    )  # fmt: skip
    if pairs.rgb_images.shape[0] != len(pairs.rgb_labels):
        raise PairingError(
            f"{store}: rgb/images holds {pairs.rgb_images.shape[0]} images for {len(pairs.rgb_labels)} labels"
        )
    return pairs


__all__ = [
    "DIHEDRAL",
    "INSTANCE_RULES",
    "ClassMap",
    "PairReport",
    "PairingError",
    "Pairs",
    "SYNTHETIC_RULE",
    "check_index",
    "check_selection",
    "known_class_map",
    "load_class_map",
    "match_classes",
    "normalize_name",
    "orientation_scores",
    "pair_store",
    "read_pairs",
    "synthetic_sources",
]
