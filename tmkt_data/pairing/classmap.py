"""Class maps and class matching: which RGB classes feed each DVS class.

Classes match by name, case- and punctuation-insensitively (only letters and digits
count, :func:`normalize_name`); a class map (TOML, :func:`load_class_map`) settles real
mismatches. Shipped maps (``tmkt_data/classmaps/*.toml``) apply automatically to their
dataset/source combination (:func:`known_class_map`). An unmatched class on either side
is an error listing them all, unless ``drop_unmatched``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.pairing.common import LIST_MAX, PairingError, fmt_names

CLASSMAP_DIR = Path(__file__).resolve().parent.parent / "classmaps"


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
                f"{fmt_names([names[i] for i in hits])}; spell it exactly"
            )
        return hits[0] if hits else None

    return resolve


@dataclass
class _MapEntries:
    """A class map resolved against the classes present: assignments, ignores, skipped entries."""

    assigned: dict[int, list[int]]
    ign_dvs: set[int]
    ign_rgb: set[int]
    skipped: list[str]


def _apply_map(cmap: ClassMap, dvs_classes: list[str], rgb_classes: list[str]) -> _MapEntries:
    src = cmap.source
    dvs_of = _resolver(dvs_classes, "DVS", src)
    rgb_of = _resolver(rgb_classes, "RGB", src)
    out = _MapEntries({}, set(), set(), [])
    unknown: list[str] = []
    for dname, rnames in cmap.classes.items():
        d = dvs_of(dname)
        rs = [rgb_of(r) for r in rnames]
        missing = ([f"DVS {dname!r}"] if d is None else []) + [
            f"RGB {r!r}" for r, i in zip(rnames, rs, strict=True) if i is None
        ]
        if missing:
            (unknown if cmap.strict else out.skipped).extend(missing)
            continue
        out.assigned[d] = sorted(set(rs))  # type: ignore[arg-type,index]
    for side, names, resolve, target in (
        ("DVS", cmap.ignore_dvs, dvs_of, out.ign_dvs),
        ("RGB", cmap.ignore_rgb, rgb_of, out.ign_rgb),
    ):
        for n in names:
            i = resolve(n)
            if i is None:
                (unknown if cmap.strict else out.skipped).append(f"{side} {n!r} (ignore)")
            else:
                target.add(i)
    if unknown:
        raise PairingError(
            f"{src}: class map names unknown classes: {', '.join(unknown[:LIST_MAX])}"
            + (f" ... and {len(unknown) - LIST_MAX} more" if len(unknown) > LIST_MAX else "")
            + f" (store classes: {fmt_names(dvs_classes)}; RGB classes: {fmt_names(rgb_classes)})"
        )
    both = sorted(set(out.assigned) & out.ign_dvs)
    if both:
        raise PairingError(
            f"{src}: DVS class(es) {fmt_names([dvs_classes[d] for d in both])} both mapped and ignored"
        )
    return out


def _match_names(
    dvs_classes: list[str], rgb_classes: list[str], entries: _MapEntries
) -> tuple[list[list[int]], list[str]]:
    """Per DVS class, its RGB classes and how they were found (map, ignored, name, unmatched)."""
    rgb_norm: dict[str, list[int]] = {}
    for i, n in enumerate(rgb_classes):
        if i not in entries.ign_rgb:
            rgb_norm.setdefault(normalize_name(n), []).append(i)
    rgb_exact = {n: i for i, n in enumerate(rgb_classes) if i not in entries.ign_rgb}
    dvs_to_rgb: list[list[int]] = []
    how: list[str] = []
    for d, name in enumerate(dvs_classes):
        if d in entries.assigned:
            dvs_to_rgb.append(entries.assigned[d])
            how.append("map")
        elif d in entries.ign_dvs:
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
                    f"({fmt_names([rgb_classes[i] for i in hits])}); settle it with --class-map"
                )
            dvs_to_rgb.append(hits)
            how.append("name" if hits else "unmatched")
    return dvs_to_rgb, how


def _invert(
    dvs_to_rgb: list[list[int]], dvs_classes: list[str], rgb_classes: list[str], ign_rgb: set[int], src: str
) -> np.ndarray:
    """Per RGB class, its DVS class (-1: none); an RGB class feeds one DVS class at most."""
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
    return rgb_to_dvs


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
    entries = _apply_map(cmap, dvs_classes, rgb_classes)
    dvs_to_rgb, how = _match_names(dvs_classes, rgb_classes, entries)
    rgb_to_dvs = _invert(dvs_to_rgb, dvs_classes, rgb_classes, entries.ign_rgb, cmap.source)
    unmatched_dvs = [n for n, h in zip(dvs_classes, how, strict=True) if h == "unmatched"]
    unmatched_rgb = [n for i, n in enumerate(rgb_classes) if rgb_to_dvs[i] < 0 and i not in entries.ign_rgb]
    if (unmatched_dvs or unmatched_rgb) and not drop_unmatched:
        parts = []
        if unmatched_dvs:
            parts.append(f"{len(unmatched_dvs)} DVS class(es) without RGB: {fmt_names(unmatched_dvs)}")
        if unmatched_rgb:
            parts.append(f"{len(unmatched_rgb)} RGB class(es) without DVS: {fmt_names(unmatched_rgb)}")
        raise PairingError(
            "unmatched classes: " + "; ".join(parts) + " (give a --class-map or use --drop-unmatched)"
        )
    unused = [n for i, n in enumerate(rgb_classes) if rgb_to_dvs[i] < 0]
    return ClassMatch(dvs_to_rgb, rgb_to_dvs, how, unused, unmatched_dvs, unmatched_rgb, entries.skipped)
