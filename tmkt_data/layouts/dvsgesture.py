"""DVS128 Gesture (``docs/formats.md`` §4.4): AEDAT 3.1 recordings cut into gestures by label CSVs.

Expected tree (as ``DvsGesture.tar.gz`` extracts)::

    <root>/DvsGesture/trials_to_train.txt
    <root>/DvsGesture/trials_to_test.txt
    <root>/DvsGesture/user01_fluorescent.aedat
    <root>/DvsGesture/user01_fluorescent_labels.csv
    ...
    <root>/DvsGesture/user29_natural.aedat
    <root>/DvsGesture/user29_natural_labels.csv

``root`` may also be the ``DvsGesture`` folder itself (recognised by its
``trials_to_train.txt``). Other files there (README, LICENSE, errata,
``gesture_mapping.csv``) are ignored.

* Recordings are the ``*.aedat`` files of the folder (not recursive),
  AEDAT 3.1, DVS128, sensor 128 x 128. Each needs ``<stem>_labels.csv``.
* ``trials_to_train.txt`` / ``trials_to_test.txt``: one recording file name per
  line (blank lines skipped; a leading folder is dropped; a missing
  ``.aedat`` suffix is added). A listed recording that is not in the folder,
  a recording in neither list and one in both lists are errors.
* Label CSV: header ``class,startTime_usec,endTime_usec`` (spaces and case
  tolerated), then one row ``class,start,end`` per gesture; class 1-11 gives
  label 0-10 (names in :data:`CLASSES`); ``start < end`` are microseconds in the
  recording's own absolute clock. Blank lines are skipped; anything else
  malformed (field count, non-integer, class out of range, ``end <= start``)
  is an error naming the file and line. A CSV without rows is an error.
* One sample per CSV row, the half-open window ``start <= t < end``; windows
  may overlap and a class may repeat within a recording.

Sample ids are ``"<recording stem>_<k>"``, ``k`` the 0-based index of the row
among the CSV's data rows (``"user01_fluorescent_0"``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from tmkt_data.layouts import LAYOUTS
from tmkt_data.layouts.base import DatasetIndex, LayoutError, SampleSpec
from tmkt_data.mapping import check_no_options

NAME = "dvsgesture"
LAYOUT_VERSION = 1

#: Gesture names, label 0-10 (CSV class 1-11).
CLASSES = (
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
)
SENSOR_SIZE = (128, 128)
DATA_FOLDER = "DvsGesture"
TRAIN_LIST = "trials_to_train.txt"
TEST_LIST = "trials_to_test.txt"
CSV_HEADER = ("class", "starttime_usec", "endtime_usec")
_EXPECT = "DVS128 Gesture DvsGesture/trials_to_train.txt, trials_to_test.txt, userNN_<lighting>.aedat"


def _data_folder(root: Path) -> Path:
    nested = root / DATA_FOLDER
    if (nested / TRAIN_LIST).is_file() or (nested.is_dir() and not (root / TRAIN_LIST).is_file()):
        return nested
    if (root / TRAIN_LIST).is_file():
        return root
    raise LayoutError(f"{nested}: missing folder, expected {_EXPECT} (or a root holding those files)")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LayoutError(f"{path}: missing file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LayoutError(f"{path}: cannot read as text ({err})") from None


def _read_trial_list(path: Path) -> list[str]:
    """Recording file names listed in a trials file (in order, duplicates removed)."""
    if not path.is_file():
        raise LayoutError(f"{path}: missing file, expected {_EXPECT}")
    names: list[str] = []
    for line in _read_text(path).splitlines():
        entry = line.strip()
        if not entry:
            continue
        name = PurePosixPath(entry.replace("\\", "/")).name
        if not name.lower().endswith(".aedat"):
            name += ".aedat"
        if name not in names:
            names.append(name)
    return names


def parse_labels_csv(path: Path) -> list[tuple[int, int, int]]:
    """Rows ``(label 0-10, start_us, end_us)`` of a ``*_labels.csv`` file.

    Raises:
        LayoutError: missing file, bad header, malformed row (naming file and line), no rows.
    """
    if not path.is_file():
        raise LayoutError(
            f"{path}: missing file, expected the labels CSV (class,startTime_usec,endTime_usec)"
        )
    rows: list[tuple[int, int, int]] = []
    header_seen = False
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if not header_seen:
            header_seen = True
            if tuple(f.lower() for f in fields) != CSV_HEADER:
                raise LayoutError(
                    f"{path} line {lineno}: header {line.strip()!r}, "
                    "expected 'class,startTime_usec,endTime_usec'"
                )
            continue
        if len(fields) != 3:
            raise LayoutError(f"{path} line {lineno}: {len(fields)} fields, expected 3 (class,start,end)")
        try:
            cls, start, end = (int(f) for f in fields)
        except ValueError:
            raise LayoutError(
                f"{path} line {lineno}: {line.strip()!r} is not three integers (class,start,end)"
            ) from None
        if not 1 <= cls <= len(CLASSES):
            raise LayoutError(f"{path} line {lineno}: class {cls}, expected 1-{len(CLASSES)}")
        if start < 0 or end <= start:
            raise LayoutError(f"{path} line {lineno}: window [{start}, {end}), expected 0 <= start < end")
        rows.append((cls - 1, start, end))
    if not header_seen:
        raise LayoutError(f"{path} line 1: empty file, expected header 'class,startTime_usec,endTime_usec'")
    if not rows:
        raise LayoutError(f"{path}: no label rows after the header, expected class,start,end rows")
    return rows


@LAYOUTS.register(NAME)
def scan(root: Path, **options: Any) -> DatasetIndex:
    """Index a DVS128 Gesture tree (see the module docstring).

    Raises:
        LayoutError: missing folder, trial list or labels CSV; a listed recording
            missing; a recording in neither or both lists; a malformed CSV; unknown option.
    """
    check_no_options(NAME, options, LayoutError)
    root = Path(root)
    data = _data_folder(root)
    train = _read_trial_list(data / TRAIN_LIST)
    test = _read_trial_list(data / TEST_LIST)
    recordings = sorted(e.name for e in data.iterdir() if e.is_file() and e.suffix.lower() == ".aedat")
    present = set(recordings)
    for list_name, listed in ((TRAIN_LIST, train), (TEST_LIST, test)):
        for name in listed:
            if name not in present:
                raise LayoutError(f"{data / name}: missing recording listed in {data / list_name}")
    both = sorted(set(train) & set(test))
    if both:
        raise LayoutError(f"{data / both[0]}: listed in both {TRAIN_LIST} and {TEST_LIST}")
    split_of = {n: "train" for n in train} | {n: "test" for n in test}
    if not recordings:
        raise LayoutError(f"{data}: no .aedat recordings, expected {_EXPECT}")

    prefix = data.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    samples: list[SampleSpec] = []
    counts = {"train": 0, "test": 0}
    for name in recordings:
        if name not in split_of:
            raise LayoutError(f"{data / name}: recording listed in neither {TRAIN_LIST} nor {TEST_LIST}")
        stem = Path(name).stem
        rows = parse_labels_csv(data / f"{stem}_labels.csv")
        split = split_of[name]
        counts[split] += len(rows)
        for k, (label, start, end) in enumerate(rows):
            samples.append(
                SampleSpec(
                    sample_id=f"{stem}_{k}",
                    path=f"{prefix}{name}",
                    label=label,
                    split=split,
                    start_us=start,
                    end_us=end,
                )
            )
    dups = sorted(i for i, n in Counter(s.sample_id for s in samples).items() if n > 1)
    if dups:
        raise LayoutError(f"{data}: two samples would both be named {dups[0]!r}; rename one recording")
    samples.sort(key=lambda s: s.sample_id)
    return DatasetIndex(
        dataset=NAME,
        root=root,
        classes=list(CLASSES),
        samples=samples,
        sensor_size=SENSOR_SIZE,
        read_options={"format": "aedat31"},
        split_info={
            "kind": "official",
            "train_list": f"{prefix}{TRAIN_LIST}",
            "test_list": f"{prefix}{TEST_LIST}",
            "train_recordings": len(train),
            "test_recordings": len(test),
            "counts": counts,
        },
        notes={
            "layout_version": LAYOUT_VERSION,
            "slicing": "one sample per labels-CSV row, start <= t < end in the file's absolute clock, "
            "t re-based to start",
        },
    )
