"""N-Omniglot (``docs/formats.md`` §4.5): AEDAT4 recordings of 20 drawings each, cut by a CSV.

Expected tree (the official loader's layout)::

    <root>/dvs_background/<alphabet>/character01/<name>.aedat4
    <root>/dvs_background/<alphabet>/character01/<name>.csv
    ...
    <root>/dvs_evaluation/<alphabet>/characterNN/<name>.aedat4 + <name>.csv

* ``dvs_background`` (train) and ``dvs_evaluation`` (test) must both exist.
  Every alphabet folder needs at least one character folder and every
  character folder at least one ``.aedat4`` (hidden entries are ignored).
* Each ``.aedat4`` is paired with the ``.csv`` of the same stem beside it; when
  there is none and the character folder holds exactly one ``.aedat4`` and
  exactly one ``.csv``, those two are paired (the archive's file names are
  unverified, and the official loader pairs by extension). No CSV is an error.
* CSV: a header row, then one row per sample; columns 1 and 2 (0-based) are
  the start and end timestamps in the recording's absolute clock (us since
  the epoch, as AEDAT4 stores them); column 0 (an index) is ignored. Fields
  are comma separated (whitespace separation is accepted too); integral
  floats (``1.6e15``) are accepted. A malformed row, ``end <= start`` or a CSV
  without rows is an error naming the file and line.
* One sample per CSV row: the half-open window ``start <= t < end``.
* Classes are ``"<alphabet>/<character folder>"``; Omniglot's background and
  evaluation characters are different characters, so the class list is the
  union over both splits, in ASCII order.
* Sensor 346 x 260 (DAVIS346). With option ``crop=True`` the official
  loader's crop is applied at load time, rows 4-253 and columns 54-303, i.e.
  ``notes["crop"] = [54, 4, 304, 254]`` (x0, y0, x1, y1, half-open) and a
  250 x 250 sensor.

* ``alt_splits`` ``"drawers"``: within every character, the first
  ``ceil(0.75 n)`` of its ``n`` samples (files in name order, then CSV rows
  in order: 15 of 20 drawings) are train, the rest test. Background and evaluation characters are
  different classes, so the official split scores classes never trained on;
  the drawers split (``pair --split split_drawers``) is the one that measures
  plain classification. That CSV rows follow Omniglot's drawer numbers is
  unverified.

Sample ids are ``"<background|evaluation>/<alphabet>/<character>/<stem>_<k>"``,
``<stem>`` the recording's file stem and ``k`` the 0-based data row of its CSV
(``"background/Greek/character03/0003_7"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from tmkt_data.layouts import LAYOUTS
from tmkt_data.layouts.base import (
    DatasetIndex,
    LayoutError,
    SampleSpec,
    ascii_sorted,
    require_dir,
    split_within_groups,
    visible_dirs,
)
from tmkt_data.mapping import check_no_options

NAME = "nomniglot"
LAYOUT_VERSION = 2  # 2: the drawers alternative split

SENSOR_SIZE = (346, 260)
#: Official loader crop (x0, y0, x1, y1), half-open: rows 4-253, columns 54-303.
CROP = (54, 4, 304, 254)
CROP_SENSOR_SIZE = (CROP[2] - CROP[0], CROP[3] - CROP[1])
SPLIT_FOLDERS = (("dvs_background", "background", "train"), ("dvs_evaluation", "evaluation", "test"))
_EXPECT = "N-Omniglot dvs_background/<alphabet>/characterNN/*.aedat4 + .csv (same under dvs_evaluation)"
_SPLIT_RE = re.compile(r"\s*,\s*|\s+")
#: Share of each character's samples that the ``drawers`` alternative split trains on.
DRAWERS_TRAIN_RATIO = 0.75


def alphabet_characters(
    base: Path, error: Callable[[str], Exception], expect: str
) -> Iterator[tuple[Path, Path]]:
    """(alphabet, character) folders of one Omniglot split folder (``<alphabet>/<character>``, kept
    by N-Omniglot), in name order; an empty split or alphabet folder is one line ``error``,
    raised when the walk reaches it."""
    alphabets = visible_dirs(base)
    if not alphabets:
        raise error(f"{base}: no alphabet folders, expected {expect}")
    for alphabet in alphabets:
        chars = visible_dirs(alphabet)
        if not chars:
            raise error(f"{alphabet}: alphabet folder has no character folders, expected {expect}")
        for char in chars:
            yield alphabet, char


def _as_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not math.isfinite(value) or value != int(value):
            raise ValueError(text) from None
        return int(value)


def parse_windows_csv(path: Path) -> list[tuple[int, int]]:
    """``(start_us, end_us)`` of each data row of an N-Omniglot CSV (header row skipped).

    Raises:
        LayoutError: unreadable file, a row with fewer than 3 fields or non-integer
            times, ``end <= start``, or no data rows (naming file and line).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise LayoutError(f"{path}: cannot read as text ({err})") from None
    windows: list[tuple[int, int]] = []
    header_seen = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if not header_seen:
            header_seen = True
            continue
        fields = [f for f in _SPLIT_RE.split(line.strip()) if f != ""]
        if len(fields) < 3:
            raise LayoutError(
                f"{path} line {lineno}: {len(fields)} fields, expected at least 3 (index,start,end)"
            )
        try:
            start, end = _as_int(fields[1]), _as_int(fields[2])
        except ValueError:
            raise LayoutError(
                f"{path} line {lineno}: columns 1 and 2 ({fields[1]!r}, {fields[2]!r}) "
                "are not integer timestamps"
            ) from None
        if end <= start:
            raise LayoutError(f"{path} line {lineno}: window [{start}, {end}), expected start < end")
        windows.append((start, end))
    if not windows:
        raise LayoutError(f"{path}: no sample rows after the header, expected index,start,end rows")
    return windows


def _pairs(char_dir: Path) -> list[tuple[Path, Path]]:
    """(aedat4, csv) pairs of one character folder."""
    files = [e for e in char_dir.iterdir() if e.is_file() and not e.name.startswith(".")]
    aedats = sorted((e for e in files if e.suffix.lower() == ".aedat4"), key=lambda p: p.name)
    csvs = sorted((e for e in files if e.suffix.lower() == ".csv"), key=lambda p: p.name)
    if not aedats:
        raise LayoutError(f"{char_dir}: character folder has no .aedat4 recording, expected {_EXPECT}")
    by_stem = {c.stem: c for c in csvs}
    pairs = []
    for a in aedats:
        csv = by_stem.get(a.stem)
        if csv is None and len(aedats) == 1 and len(csvs) == 1:
            csv = csvs[0]
        if csv is None:
            raise LayoutError(
                f"{char_dir / (a.stem + '.csv')}: missing file, expected the sample CSV of {a.name}"
            )
        pairs.append((a, csv))
    return pairs


def _with_drawers_split(samples: list[SampleSpec]) -> list[SampleSpec]:
    """``samples`` (in file-name and CSV-row order) with the ``drawers`` alternative split."""
    drawers = split_within_groups([s.label for s in samples], DRAWERS_TRAIN_RATIO)
    return [replace(s, alt_splits=(("drawers", d),)) for s, d in zip(samples, drawers, strict=True)]


@LAYOUTS.register(NAME)
def scan(root: Path, *, crop: bool | None = False, **options: Any) -> DatasetIndex:
    """Index an N-Omniglot tree (see the module docstring).

    Args:
        root: the folder holding ``dvs_background/`` and ``dvs_evaluation/``.
        crop: apply the official 250 x 250 crop at load time (None: False).

    Raises:
        LayoutError: missing split folder, empty alphabet or character folder,
            missing or malformed CSV, unknown option.
    """
    check_no_options(NAME, options, LayoutError)
    crop = bool(crop)
    root = Path(root)
    found: list[tuple[str, str, str, Path, Path]] = []  # (split name, split, class, aedat, csv)
    for folder, split_name, split in SPLIT_FOLDERS:
        base = require_dir(root / folder, _EXPECT)
        for alphabet, char in alphabet_characters(base, LayoutError, _EXPECT):
            for aedat, csv in _pairs(char):
                found.append((split_name, split, f"{alphabet.name}/{char.name}", aedat, csv))

    classes = ascii_sorted(sorted({cls for _, _, cls, _, _ in found}))
    label_of = {c: i for i, c in enumerate(classes)}
    samples: list[SampleSpec] = []
    counts = {"train": 0, "test": 0}
    for split_name, split, cls, aedat, csv in found:
        windows = parse_windows_csv(csv)
        counts[split] += len(windows)
        rel = aedat.relative_to(root).as_posix()
        for k, (start, end) in enumerate(windows):
            samples.append(
                SampleSpec(
                    sample_id=f"{split_name}/{cls}/{aedat.stem}_{k}",
                    path=rel,
                    label=label_of[cls],
                    split=split,
                    start_us=start,
                    end_us=end,
                )
            )
    samples = _with_drawers_split(samples)  # in file and CSV-row order
    samples.sort(key=lambda s: s.sample_id)
    notes: dict[str, Any] = {
        "layout_version": LAYOUT_VERSION,
        "slicing": "one sample per CSV row, start <= t < end (columns 1 and 2) in the file's absolute clock",
    }
    if crop:
        notes["crop"] = list(CROP)
        notes["crop_note"] = "official loader crop: rows 4-253, columns 54-303 (250x250)"
    return DatasetIndex(
        dataset=NAME,
        root=root,
        classes=classes,
        samples=samples,
        sensor_size=CROP_SENSOR_SIZE if crop else SENSOR_SIZE,
        read_options={"format": "aedat4"},
        split_info={
            "kind": "official",
            "train": "dvs_background/",
            "test": "dvs_evaluation/",
            "counts": counts,
            "alternatives": {
                "drawers": f"within every character (both folders), the first ceil({DRAWERS_TRAIN_RATIO} n) "
                "samples (files by name, CSV rows in order) train, the rest test"
            },
        },
        notes=notes,
    )
