"""CEP-DVS (``docs/formats.md`` §4.6): one MATLAB file per sample, labels in ``pathFile.csv``.

Expected tree (the reference loader's layout)::

    <root>/pathFile.csv
    <root>/data/MAT/img/0.mat
    <root>/data/MAT/img/1.mat
    ...

* Each ``.mat`` (directly in ``data/MAT/img``) holds variables ``x``, ``y``,
  ``ts``, ``p`` (p in {-1, +1}); it is read with the ``mat`` reader.
* ``pathFile.csv``: the real file's exact format is unverified, so this
  layout assumes, and is liberal about, the following. Each non-empty line is
  split on whitespace (commas are accepted as separators too). The sample's
  file is named by the first field ending in ``.mat`` (its file stem is used,
  any folder is dropped), else by the first field when it is an integer
  index ``i`` (file ``<i>.mat``; numeric names match by value, so ``0007.mat``
  matches ``7`` and ``7.mat`` matches ``0007``). The superclass is the 5th
  field (index 4) when that is one of the 20 names, else the only field of the
  line that is one (case-insensitive).
  A first line with neither a file reference nor a superclass is taken as a
  header and skipped; any other such line is an error naming file and line.
* Every ``.mat`` needs exactly one label (a file without a line, a line naming
  a missing file, or one file given two superclasses is an error) and each
  of the 20 classes needs at least one sample.
* Classes: the 20 CIFAR-100 superclasses in CIFAR-100 coarse-label order
  (:data:`CLASSES`).
* Split: none is published. Deterministic per class: the class's file names
  in ASCII order, the first ``ceil(r * n)`` train, the rest test, with
  ``r`` = option ``train_ratio``, default 250/350 (the "250 train / 100 test
  per class" of the TMKT recipe, for 350 samples per class).
* Sensor: option ``sensor_size`` (W, H), default (128, 128). CEP-DVS's sensor
  and resolution are unverified (docs/formats.md §2.5, CeleX suspected), so pass
  the right size; an event outside it is a :class:`LayoutError` at load time.
* Time unit: the ``mat`` reader's default (``ts`` in microseconds), also
  unverified; option ``time_unit`` (``"us"``, ``"ms"``, ``"s"``) is passed
  to the reader when given.

Sample ids are ``"<superclass>/<file stem>"`` (``"fish/42"``).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from tmkt_data.layouts import LAYOUTS
from tmkt_data.layouts.base import (
    DatasetIndex,
    LayoutError,
    SampleSpec,
    ascii_sorted,
    per_class_samples,
    require_dir,
)
from tmkt_data.mapping import check_no_options
from tmkt_data.splits import check_train_ratio

NAME = "cepdvs"
LAYOUT_VERSION = 1

#: CIFAR-100 superclasses in coarse-label order.
CLASSES = (
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
)
DEFAULT_SENSOR_SIZE = (128, 128)
DEFAULT_TRAIN_RATIO = 250 / 350
LABEL_FILE = "pathFile.csv"
MAT_FOLDER = "data/MAT/img"
_EXPECT = "CEP-DVS data/MAT/img/<index>.mat and pathFile.csv"
_FIELD_RE = re.compile(r"[\s,]+")
_LOWER = {c.lower(): c for c in CLASSES}


def _file_key(fields: list[str]) -> str | None:
    """The file stem a label line refers to, or None."""
    for f in fields:
        if f.lower().endswith(".mat"):
            return PurePosixPath(f.replace("\\", "/")).stem
    if fields and fields[0].isdigit():
        return fields[0]
    return None


def _superclass(fields: list[str]) -> str | None:
    if len(fields) > 4 and fields[4].lower() in _LOWER:
        return _LOWER[fields[4].lower()]
    hits = {_LOWER[f.lower()] for f in fields if f.lower() in _LOWER}
    return hits.pop() if len(hits) == 1 else None


def parse_path_file(path: Path) -> list[tuple[int, str, str]]:
    """``(line number, file stem, superclass)`` for each label line of ``pathFile.csv``.

    Raises:
        LayoutError: unreadable file, a line without a file reference or a
            superclass (naming file and line), no label line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LayoutError(f"{path}: missing file, expected {_EXPECT}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LayoutError(f"{path}: cannot read as text ({err})") from None
    out: list[tuple[int, str, str]] = []
    first = True
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f for f in _FIELD_RE.split(line.strip()) if f]
        key, cls = _file_key(fields), _superclass(fields)
        if key is None or cls is None:
            if first and key is None and cls is None:
                first = False  # a header line
                continue
            what = "no .mat file or integer index in the first field" if key is None else "no superclass name"
            raise LayoutError(
                f"{path} line {lineno}: {what}, expected whitespace-separated fields with the "
                "sample's <index> or <name>.mat and the CIFAR-100 superclass as the 5th field"
            )
        first = False
        out.append((lineno, key, cls))
    if not out:
        raise LayoutError(f"{path}: no label lines, expected one line per .mat file")
    return out


def _stem_lookup(stems: list[str]) -> dict[str, str]:
    """Map each accepted key (the stem, and its integer value for numeric stems) to the stem."""
    lookup: dict[str, str] = {}
    for stem in stems:
        lookup[stem] = stem
        if stem.isdigit():
            lookup.setdefault(str(int(stem)), stem)
    return lookup


def _label_files(label_file: Path, mat_dir: Path, names: dict[str, str]) -> dict[str, str]:
    """Superclass of each ``.mat`` file stem (``names``: stem -> file name), every file labelled once."""
    lookup = _stem_lookup(sorted(names))
    class_of: dict[str, str] = {}
    for lineno, key, cls in parse_path_file(label_file):
        stem = lookup.get(key)
        if stem is None and key.isdigit():
            stem = lookup.get(str(int(key)))
        if stem is None:
            raise LayoutError(f"{mat_dir / (key + '.mat')}: missing file named in {label_file} line {lineno}")
        if class_of.get(stem, cls) != cls:
            raise LayoutError(
                f"{label_file} line {lineno}: {names[stem]} labelled {cls!r}, earlier {class_of[stem]!r}"
            )
        class_of[stem] = cls
    unlabelled = sorted(set(names) - set(class_of))
    if unlabelled:
        raise LayoutError(
            f"{mat_dir / names[unlabelled[0]]}: no label line in {label_file} "
            f"({len(unlabelled)} unlabelled .mat file(s))"
        )
    return class_of


def _split_samples(
    label_file: Path, names: dict[str, str], class_of: dict[str, str], ratio: float
) -> tuple[list[SampleSpec], dict[str, dict[str, int]]]:
    """(samples sorted by id, per-class train/test counts); every class needs a sample."""
    samples: list[SampleSpec] = []
    counts: dict[str, dict[str, int]] = {}
    for label, cls in enumerate(CLASSES):
        files = ascii_sorted([names[s] for s, c in class_of.items() if c == cls])
        if not files:
            raise LayoutError(
                f"{label_file}: class {cls!r} has no sample, expected all 20 CIFAR-100 superclasses"
            )
        specs, counts[cls] = per_class_samples(cls, label, files, ratio, f"{MAT_FOLDER}/")
        samples += specs
    samples.sort(key=lambda s: s.sample_id)
    return samples, counts


@LAYOUTS.register(NAME)
def scan(
    root: Path,
    *,
    sensor_size: tuple[int, int] | None = None,
    train_ratio: float | None = None,
    time_unit: str | None = None,
    **options: Any,
) -> DatasetIndex:
    """Index a CEP-DVS tree (see the module docstring).

    Args:
        root: the folder holding ``pathFile.csv`` and ``data/MAT/img``.
        sensor_size: (W, H) of the recordings (None: (128, 128), unverified).
        train_ratio: fraction of each class in the train split (None: 250/350).
        time_unit: unit of the files' ``ts`` for the ``mat`` reader (None: its default, us).

    Raises:
        LayoutError: missing folder or label file, malformed label line, a file
            without label or label without file, an empty class, unknown option.
    """
    check_no_options(NAME, options, LayoutError)
    sensor_given = sensor_size is not None
    w, h = DEFAULT_SENSOR_SIZE if sensor_size is None else (int(sensor_size[0]), int(sensor_size[1]))
    if w <= 0 or h <= 0:
        raise LayoutError(f"cepdvs: sensor_size {sensor_size!r}, expected positive (width, height)")
    ratio = check_train_ratio(NAME, train_ratio, DEFAULT_TRAIN_RATIO, LayoutError)
    if time_unit is not None and time_unit not in ("us", "ms", "s"):
        raise LayoutError(f"cepdvs: time_unit {time_unit!r}, expected 'us', 'ms' or 's'")
    root = Path(root)
    mat_dir = require_dir(root / MAT_FOLDER, _EXPECT)
    label_file = root / LABEL_FILE
    if not label_file.is_file():
        raise LayoutError(f"{label_file}: missing file, expected {_EXPECT}")
    names = {e.stem: e.name for e in mat_dir.iterdir() if e.is_file() and e.suffix.lower() == ".mat"}
    if not names:
        raise LayoutError(f"{mat_dir}: no .mat files, expected {_EXPECT}")
    class_of = _label_files(label_file, mat_dir, names)
    samples, counts = _split_samples(label_file, names, class_of, ratio)
    return DatasetIndex(
        dataset=NAME,
        root=root,
        classes=list(CLASSES),
        samples=samples,
        sensor_size=(w, h),
        read_options={"format": "mat"} if time_unit is None else {"format": "mat", "time_unit": time_unit},
        split_info={
            "kind": "per_class_sorted",
            "train_ratio": ratio,
            "order": "ascii file name",
            "note": "no published split; default 250/350 = 250 train / 100 test per class of 350",
            "per_class": counts,
        },
        notes={
            "layout_version": LAYOUT_VERSION,
            "sensor_size_source": "option" if sensor_given else "default (128, 128), unverified guess",
            "label_file_assumption": "whitespace-separated lines; file = first field ending .mat or "
            "integer first field; superclass = 5th field",
        },
    )
