"""CIFAR10-DVS (``docs/formats.md`` §4.3): one folder per class of DVS128 recordings.

Expected tree (``root`` is the folder holding the ten class folders)::

    <root>/airplane/cifar10_airplane_0.aedat      original release, AEDAT 2.0
    <root>/airplane/cifar10_airplane_1.aedat
    ...
    <root>/truck/cifar10_truck_999.aedat

or, for the AEDAT4 re-release (tonic's ``CIFAR10DVS.zip``)::

    <root>/<class>/cifar10_<class>_<i>.aedat4

* All ten classes are required, labels in CIFAR-10 order: airplane,
  automobile, bird, cat, deer, dog, frog, horse, ship, truck.
* A class folder holds files ``cifar10_<class>_<i>.aedat`` or ``.aedat4``
  (``<i>`` a decimal number); other files (hidden files, READMEs) are ignored,
  but an ``.aedat``/``.aedat4`` file with another name is an error. The
  variant is detected from the extensions: every class must use the same one
  (a class mixing both, or two classes differing, is an error).
* Sensor 128 x 128. AEDAT 2.0 files are read with ``chip="dvs128"`` and the
  ``orientation`` option (default ``"spikingjelly"``: x = 127 - raw_y,
  y = 127 - raw_x, the convention of most SNN papers; see §3). AEDAT4 files are
  read as stored by DV.

Splits:

* standard (``split``): spikingjelly-compatible 9:1 per class: the class's
  file names in ASCII order (``_10`` before ``_2``), the first
  ``ceil(0.9 * n)`` train, the rest test (option ``train_ratio``);
* ``alt_splits`` ``"first100"`` (TEBN, spikingjelly ``CIFAR10DVSTEBNSplit``):
  numeric ``i`` in 0..99 test, the rest train.

Sample ids are ``"<class>/<file stem>"`` (``"cat/cifar10_cat_17"``).
"""

from __future__ import annotations

import re
from pathlib import Path
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

NAME = "cifar10dvs"
LAYOUT_VERSION = 1

#: Class names, in CIFAR-10 label order (also alphabetical).
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SENSOR_SIZE = (128, 128)
#: AEDAT 2.0 orientations accepted (see ``tmkt_data.formats.aedat2``).
ORIENTATIONS = ("spikingjelly", "jaer", "image", "raw")
#: Numeric file index below which a file is test in the ``first100`` split.
FIRST100_TEST_BELOW = 100

_EXT_FORMAT = {".aedat": "aedat2", ".aedat4": "aedat4"}
_EXPECT = "CIFAR10-DVS <class>/cifar10_<class>_<i>.aedat (or .aedat4)"


def _list_class(folder: Path, cls: str) -> tuple[str, list[tuple[str, int]]]:
    """(extension, [(file name, numeric i)]) of one class folder."""
    pattern = re.compile(rf"^cifar10_{re.escape(cls)}_(\d+)$")
    files: list[tuple[str, int]] = []
    exts: set[str] = set()
    for entry in folder.iterdir():
        if entry.name.startswith(".") or not entry.is_file():
            continue
        ext = entry.suffix.lower()
        if ext not in _EXT_FORMAT:
            continue
        m = pattern.match(entry.stem)
        if m is None:
            raise LayoutError(f"{entry}: unexpected file name, expected cifar10_{cls}_<i>{ext}")
        exts.add(ext)
        files.append((entry.name, int(m.group(1))))
    if not files:
        raise LayoutError(f"{folder}: no cifar10_{cls}_<i>.aedat or .aedat4 files, expected {_EXPECT}")
    if len(exts) > 1:
        raise LayoutError(
            f"{folder}: mixes .aedat and .aedat4 files, "
            "expected one release (AEDAT 2.0 .aedat or AEDAT4 .aedat4)"
        )
    return exts.pop(), files


@LAYOUTS.register(NAME)
def scan(
    root: Path, *, orientation: str | None = "spikingjelly", train_ratio: float | None = 0.9, **options: Any
) -> DatasetIndex:
    """Index a CIFAR10-DVS tree (see the module docstring).

    Args:
        root: folder holding the ten class folders.
        orientation: AEDAT 2.0 pixel convention (one of :data:`ORIENTATIONS`);
            ignored for the AEDAT4 release. None means the default.
        train_ratio: fraction of each class (ASCII-sorted) in the standard train
            split; None means the default 0.9.

    Raises:
        LayoutError: missing class folder, class without recordings, mixed
            releases, unexpected file name, unknown option.
    """
    orientation = "spikingjelly" if orientation is None else orientation
    check_no_options(NAME, options, LayoutError)
    if orientation not in ORIENTATIONS:
        raise LayoutError(
            f"cifar10dvs: orientation {orientation!r}, expected one of {', '.join(ORIENTATIONS)}"
        )
    train_ratio = check_train_ratio(NAME, train_ratio, 0.9, LayoutError)
    root = Path(root)
    per_class: dict[str, tuple[str, list[tuple[str, int]]]] = {}
    for cls in CLASSES:
        folder = require_dir(root / cls, f"{_EXPECT} (class {cls!r})")
        per_class[cls] = _list_class(folder, cls)
    exts = {ext for ext, _ in per_class.values()}
    if len(exts) > 1:
        by_ext = {e: [c for c in CLASSES if per_class[c][0] == e] for e in sorted(exts)}
        detail = "; ".join(f"{e}: {', '.join(cs)}" for e, cs in by_ext.items())
        raise LayoutError(
            f"{root}: classes use different releases ({detail}), expected all .aedat or all .aedat4"
        )
    ext = exts.pop()
    fmt = _EXT_FORMAT[ext]

    samples: list[SampleSpec] = []
    counts: dict[str, dict[str, int]] = {}
    for label, cls in enumerate(CLASSES):
        _, files = per_class[cls]
        numeric = dict(files)
        names = ascii_sorted([name for name, _ in files])
        first100 = [(("first100", "test" if numeric[n] < FIRST100_TEST_BELOW else "train"),) for n in names]
        specs, counts[cls] = per_class_samples(cls, label, names, float(train_ratio), f"{cls}/", first100)
        samples += specs
    samples.sort(key=lambda s: s.sample_id)

    if fmt == "aedat2":
        read_options: dict[str, Any] = {"format": "aedat2", "chip": "dvs128", "orientation": orientation}
    else:
        read_options = {"format": "aedat4"}
    return DatasetIndex(
        dataset=NAME,
        root=root,
        classes=list(CLASSES),
        samples=samples,
        sensor_size=SENSOR_SIZE,
        read_options=read_options,
        split_info={
            "kind": "per_class_sorted",
            "train_ratio": float(train_ratio),
            "order": "ascii file name",
            "equals": "spikingjelly split_to_train_test_set(ratio, random_split=False)",
            "per_class": counts,
            "alternatives": {
                "first100": f"numeric file index i < {FIRST100_TEST_BELOW} test, the rest train "
                "(TEBN split, spikingjelly CIFAR10DVSTEBNSplit)"
            },
        },
        notes={
            "layout_version": LAYOUT_VERSION,
            "release": "aedat2 (original)" if fmt == "aedat2" else "aedat4 (re-release)",
            "extension": ext,
            "orientation": orientation if fmt == "aedat2" else "as stored (DV x, y)",
        },
    )
