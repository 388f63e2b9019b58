"""Omniglot, ``images_background/`` (train) and ``images_evaluation/`` (test).

Expected tree (``images_background.zip`` and ``images_evaluation.zip`` extracted)::

    <root>/images_background/<alphabet>/character01/0110_01.png
    ...
    <root>/images_evaluation/<alphabet>/characterNN/*.png

``root`` may also be torchvision's ``omniglot-py/`` folder's parent.

* Both split folders must exist; every alphabet folder needs character
  folders and every character folder ``.png`` files (hidden entries ignored).
* Classes ``"<alphabet>/<character folder>"`` (as the ``nomniglot`` layout
  names N-Omniglot's classes), the union of both splits in ASCII order:
  background and evaluation characters are different characters.
* Split (option ``split``): ``"official"`` (default), ``images_background`` =
  train and ``images_evaluation`` = test; ``"drawers"``, within every
  character the first ``ceil(0.75 n)`` of its ``n`` images in name order
  (``_01`` ... ``_15`` of 20 drawers) train and the rest test, in both folders,
  matching the ``drawers`` alternative split of the ``nomniglot`` layout.
* Images are 105x105 bilevel PNGs, decoded lazily to grayscale ``HxW``.
* Source ids: the path below the root (``"images_background/Greek/character01/0394_01.png"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmkt_data.layouts.nomniglot import DRAWERS_TRAIN_RATIO, alphabet_characters
from tmkt_data.rgb import RGB_SOURCES, ImageFiles, RGBError, RGBSet, no_options, require_root
from tmkt_data.splits import split_within_groups

SPLIT_FOLDERS = (("images_background", "train"), ("images_evaluation", "test"))
_EXPECT = "Omniglot images_background/<alphabet>/characterNN/*.png (same under images_evaluation)"


def _base(root: Path) -> Path:
    for cand in (root, root / "omniglot-py"):
        if all((cand / f).is_dir() for f, _ in SPLIT_FOLDERS):
            return cand
    missing = [f for f, _ in SPLIT_FOLDERS if not (root / f).is_dir()]
    raise RGBError(f"{root / missing[0]}: missing folder, expected {_EXPECT}")


@RGB_SOURCES.register("omniglot")
def load(root: str | Path | None, split: str = "official", **options: Any) -> RGBSet:
    """Index Omniglot's images (decoded lazily; see the module docstring)."""
    no_options("omniglot", options)
    if split not in ("official", "drawers"):
        raise RGBError(f"omniglot: split={split!r}, expected official or drawers")
    base = _base(require_root("omniglot", root))
    found: list[tuple[str, str, Path]] = []
    for folder, sp in SPLIT_FOLDERS:
        for alphabet, char in alphabet_characters(base / folder, RGBError, _EXPECT):
            pngs = sorted(
                e.name
                for e in char.iterdir()
                if e.is_file() and not e.name.startswith(".") and e.suffix.lower() == ".png"
            )
            if not pngs:
                raise RGBError(f"{char}: character folder has no .png images, expected {_EXPECT}")
            for name in pngs:
                found.append((sp, f"{alphabet.name}/{char.name}", char / name))
    if split == "drawers":  # found is in folder, character and name order
        drawers = split_within_groups([cls for _, cls, _ in found], DRAWERS_TRAIN_RATIO)
        found = [(sp, cls, path) for sp, (_, cls, path) in zip(drawers, found, strict=True)]
    classes = sorted({cls for _, cls, _ in found})
    label_of = {c: i for i, c in enumerate(classes)}
    found.sort(key=lambda r: r[2].relative_to(base).as_posix())
    ids = [p.relative_to(base).as_posix() for _, _, p in found]
    kinds = {
        "official": {"kind": "official", "train": "images_background/", "test": "images_evaluation/"},
        "drawers": {"kind": "per_class_sorted", "train_ratio": DRAWERS_TRAIN_RATIO, "order": "file name"},
    }
    info = {
        "split": kinds[split],
        "counts": {sp: sum(1 for s, _, _ in found if s == sp) for _, sp in SPLIT_FOLDERS},
    }
    return RGBSet(
        "omniglot",
        str(base),
        ImageFiles([p for _, _, p in found], "an Omniglot PNG image"),
        [label_of[c] for _, c, _ in found],
        classes,
        ids,
        [sp for sp, _, _ in found],
        info,
    )
