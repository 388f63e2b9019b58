"""Any class-per-folder tree of images (e.g. CEP-DVS's own RGB images).

Expected tree, either without a split::

    <root>/<class>/<file>.png|.jpg|.jpeg|.bmp          any depth below the class folder

or with one (both folders present, names matched case-insensitively)::

    <root>/train/<class>/**/<image>
    <root>/test/<class>/**/<image>

* Images: files with extension ``.png``, ``.jpg``, ``.jpeg`` or ``.bmp``
  (case-insensitive) anywhere below a class folder; hidden files and folders
  are ignored. A class folder without any image is an error. Decoded lazily.
* Classes: the class folder names in ASCII order (with ``train``/``test``:
  the union of both).
* Split: with ``train/`` and ``test/`` those; else per class, the image paths
  below the class folder in ASCII order, the first ``ceil(r * n)`` train,
  the rest test, ``r`` = option ``train_ratio``, default 1.0 (every image is
  a training image: RGB pools only draw from training images).
* Source ids: the path below the root (``"cat/img_0001.png"``,
  ``"train/cat/img_0001.png"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmkt_data.layouts.base import train_test_folders, visible_dirs
from tmkt_data.rgb import (
    IMAGE_EXTENSIONS,
    RGB_SOURCES,
    ImageFiles,
    RGBError,
    RGBSet,
    check_ratio,
    no_options,
    require_root,
)
from tmkt_data.splits import per_class_split

_EXPECT = "<class>/**/<image>.png|jpg|jpeg|bmp (or train/<class>/... and test/<class>/...)"


def _images(folder: Path) -> list[Path]:
    """Image files below ``folder`` (recursive, hidden entries skipped), sorted by relative path."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


@RGB_SOURCES.register("imagefolder")
def load(root: str | Path | None, *, train_ratio: float = 1.0, **options: Any) -> RGBSet:
    """Index a class-per-folder image tree (decoded lazily; see the module docstring)."""
    no_options("imagefolder", options)
    ratio = check_ratio("imagefolder", train_ratio)
    base = require_root("imagefolder", root)
    rows: list[tuple[str, str, Path]] = []  # (split, class, path)
    splits = train_test_folders(base)
    if splits is not None:
        for sp, folder in splits.items():
            for cdir in visible_dirs(folder):
                imgs = _images(cdir)
                if not imgs:
                    raise RGBError(f"{cdir}: class folder has no images, expected {_EXPECT}")
                rows += [(sp, cdir.name, p) for p in imgs]
        split_info: dict[str, Any] = {"kind": "official", "train": "train/", "test": "test/"}
    else:
        for cdir in visible_dirs(base):
            imgs = _images(cdir)
            if not imgs:
                raise RGBError(f"{cdir}: class folder has no images, expected {_EXPECT}")
            rows += [
                (sp, cdir.name, p) for sp, p in zip(per_class_split(len(imgs), ratio), imgs, strict=True)
            ]
        split_info = {"kind": "per_class_sorted", "train_ratio": ratio, "order": "ascii path below the class"}
    if not rows:
        raise RGBError(f"{base}: no class folders, expected {_EXPECT}")
    classes = sorted({c for _, c, _ in rows})
    label_of = {c: i for i, c in enumerate(classes)}
    rows.sort(key=lambda r: r[2].relative_to(base).as_posix())
    return RGBSet(
        "imagefolder",
        str(base),
        ImageFiles([p for _, _, p in rows], "an image (.png, .jpg, .jpeg or .bmp)"),
        [label_of[c] for _, c, _ in rows],
        classes,
        [p.relative_to(base).as_posix() for _, _, p in rows],
        [sp for sp, _, _ in rows],
        {"split": split_info},
    )
