"""Caltech101, ``101_ObjectCategories/<class>/image_NNNN.jpg``.

Expected tree (``101_ObjectCategories.tar.gz`` extracted)::

    <root>/101_ObjectCategories/accordion/image_0001.jpg
    ...
    <root>/101_ObjectCategories/BACKGROUND_Google/image_0001.jpg

``root`` may also be ``101_ObjectCategories`` itself, or torchvision's
``caltech101/`` folder holding it.

* Classes: the class folder names in ASCII order (stock Caltech101 has 102:
  101 categories including both ``Faces`` and ``Faces_easy``, plus
  ``BACKGROUND_Google``; N-Caltech101 lacks ``Faces``, see the shipped class
  map). Hidden folders are ignored.
* Images: the ``.jpg``/``.jpeg`` files directly in a class folder (other files
  ignored); a class folder without any is an error. Decoded lazily, one at a
  time (grayscale JPEGs stay ``HxW``).
* Split: none is published. Per class, file names in ASCII order, the first
  ``ceil(r * n)`` train and the rest test, ``r`` = option ``train_ratio``
  (default 0.9), exactly as the ``ncaltech101`` layout splits N-Caltech101,
  so an RGB image and the recording made from it fall in the same split.
* Source ids: ``"<class>/<file name>"`` (``"accordion/image_0001.jpg"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmkt_data.rgb import RGB_SOURCES, ImageFiles, RGBError, RGBSet, check_ratio, no_options, require_root
from tmkt_data.splits import per_class_split

FOLDER = "101_ObjectCategories"
EXTENSIONS = (".jpg", ".jpeg")
_EXPECT = "Caltech101 101_ObjectCategories/<class>/image_NNNN.jpg"


def _images(folder: Path) -> list[str]:
    return sorted(
        e.name
        for e in folder.iterdir()
        if e.is_file() and not e.name.startswith(".") and e.suffix.lower() in EXTENSIONS
    )


def _data_folder(root: Path) -> Path:
    for cand in (root / FOLDER, root / "caltech101" / FOLDER):
        if cand.is_dir():
            return cand
    if root.name == FOLDER:
        return root
    raise RGBError(f"{root / FOLDER}: missing folder, expected {_EXPECT}")


@RGB_SOURCES.register("caltech101")
def load(root: str | Path | None, *, train_ratio: float = 0.9, **options: Any) -> RGBSet:
    """Index Caltech101's images (decoded lazily; see the module docstring)."""
    no_options("caltech101", options)
    ratio = check_ratio("caltech101", train_ratio)
    data = _data_folder(require_root("caltech101", root))
    classes = sorted(e.name for e in data.iterdir() if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise RGBError(f"{data}: no class folders, expected {_EXPECT}")
    paths, labels, ids, split = [], [], [], []
    counts = {}
    for label, cls in enumerate(classes):
        names = _images(data / cls)
        if not names:
            raise RGBError(f"{data / cls}: class folder has no .jpg images, expected {_EXPECT}")
        parts = per_class_split(len(names), ratio)
        counts[cls] = {"train": parts.count("train"), "test": parts.count("test")}
        for name, sp in zip(names, parts, strict=True):
            paths.append(data / cls / name)
            labels.append(label)
            ids.append(f"{cls}/{name}")
            split.append(sp)
    info = {
        "split": {
            "kind": "per_class_sorted",
            "train_ratio": ratio,
            "order": "ascii file name",
            "equals": "the ncaltech101 layout's split of N-Caltech101",
            "per_class": counts,
        }
    }
    images = ImageFiles(paths, "a Caltech101 JPEG image")
    return RGBSet("caltech101", str(data), images, labels, classes, ids, split, info)
