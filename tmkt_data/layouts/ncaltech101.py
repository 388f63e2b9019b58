"""N-Caltech101 (``docs/formats.md`` §4.2): ATIS 40-bit ``.bin`` recordings, one folder per class.

Expected tree (as ``Caltech101.zip`` extracts)::

    <root>/Caltech101/accordion/image_0001.bin
    <root>/Caltech101/accordion/image_0002.bin
    ...
    <root>/Caltech101/BACKGROUND_Google/image_0001.bin
    ...

``root`` may also be the ``Caltech101`` folder itself (the folder holding the
class folders); it is recognised by class folders containing ``image_*.bin``.

* Classes are the class folder names in ASCII order (uppercase first, so
  ``BACKGROUND_Google`` and ``Faces_easy`` come before ``accordion``); the real
  dataset has 101 (100 classes plus ``BACKGROUND_Google``), but any number is
  accepted and recorded in ``notes["n_classes"]``.
* Samples are the ``image_*.bin`` files of each class folder (not recursive).
  Annotations are ignored: ``annotation_*.bin`` files and a
  ``Caltech101_annotations`` folder (beside or inside the data folder) are
  never picked up. A class folder without any ``image_*.bin`` is an error.
* Sensor 240 x 180 (W x H), spikingjelly's fixed H = 180, W = 240 with the
  coordinates unshifted (tonic instead shifts every sample to start at 0 and
  has no fixed size). The ATIS reader is given this size
  (``read_options["sensor_size"]``), so an event outside it is an error at
  load time.
* Split: per class, file names in ASCII order, the first ``ceil(r * n)``
  train and the rest test, ``r`` = option ``train_ratio`` (default 0.9) =
  spikingjelly ``split_to_train_test_set(0.9, ..., random_split=False)``.

Sample ids are ``"<class>/<file stem>"`` (``"accordion/image_0001"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmkt_data.layouts import LAYOUTS
from tmkt_data.layouts.base import DatasetIndex, LayoutError, SampleSpec, ascii_sorted, per_class_samples
from tmkt_data.mapping import check_no_options
from tmkt_data.splits import check_train_ratio

NAME = "ncaltech101"
LAYOUT_VERSION = 1

SENSOR_SIZE = (240, 180)
DATA_FOLDER = "Caltech101"
ANNOTATION_FOLDER = "Caltech101_annotations"
_EXPECT = "N-Caltech101 Caltech101/<class>/image_NNNN.bin"


def _images(folder: Path) -> list[str]:
    """Names of the ``image_*.bin`` files directly in ``folder``."""
    return [
        e.name
        for e in folder.iterdir()
        if e.is_file() and e.name.startswith("image_") and e.suffix.lower() == ".bin"
    ]


def _class_dirs(folder: Path) -> list[Path]:
    """Candidate class folders of the data folder (hidden and annotation folders excluded)."""
    return [
        e
        for e in folder.iterdir()
        if e.is_dir() and not e.name.startswith(".") and e.name != ANNOTATION_FOLDER
    ]


def _data_folder(root: Path) -> Path:
    """``<root>/Caltech101`` if present, else ``root`` when it directly holds class folders of images."""
    nested = root / DATA_FOLDER
    if nested.is_dir():
        return nested
    if any(_images(d) for d in _class_dirs(root)):
        return root
    raise LayoutError(
        f"{nested}: missing folder, expected {_EXPECT} "
        f"(or a root holding the class folders with image_*.bin directly)"
    )


@LAYOUTS.register(NAME)
def scan(root: Path, *, train_ratio: float | None = 0.9, **options: Any) -> DatasetIndex:
    """Index an N-Caltech101 tree (see the module docstring).

    Args:
        root: the folder holding ``Caltech101/``, or the ``Caltech101`` folder itself.
        train_ratio: fraction of each class in the train split (None: 0.9).

    Raises:
        LayoutError: no data folder, no class folder, a class folder without
            ``image_*.bin``, unknown option.
    """
    check_no_options(NAME, options, LayoutError)
    train_ratio = check_train_ratio(NAME, train_ratio, 0.9, LayoutError)
    root = Path(root)
    data = _data_folder(root)
    class_dirs = {d.name: d for d in _class_dirs(data)}
    if not class_dirs:
        raise LayoutError(f"{data}: no class folders, expected {_EXPECT}")
    classes = ascii_sorted(list(class_dirs))
    prefix = data.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"

    samples: list[SampleSpec] = []
    counts: dict[str, dict[str, int]] = {}
    for label, cls in enumerate(classes):
        names = ascii_sorted(_images(class_dirs[cls]))
        if not names:
            raise LayoutError(f"{class_dirs[cls]}: class folder has no image_*.bin files, expected {_EXPECT}")
        specs, counts[cls] = per_class_samples(cls, label, names, train_ratio, f"{prefix}{cls}/")
        samples += specs
    samples.sort(key=lambda s: s.sample_id)
    return DatasetIndex(
        dataset=NAME,
        root=root,
        classes=classes,
        samples=samples,
        sensor_size=SENSOR_SIZE,
        read_options={"format": "atis_bin", "sensor_size": SENSOR_SIZE},
        split_info={
            "kind": "per_class_sorted",
            "train_ratio": train_ratio,
            "order": "ascii file name",
            "equals": "spikingjelly split_to_train_test_set(ratio, random_split=False)",
            "per_class": counts,
        },
        notes={
            "layout_version": LAYOUT_VERSION,
            "n_classes": len(classes),
            "data_folder": prefix.rstrip("/") or ".",
            "sensor": "fixed 240x180 (W x H) as spikingjelly (H=180, W=240), coordinates unshifted; "
            "tonic shifts each sample to start at 0 instead",
            "annotations": "ignored",
        },
    )
