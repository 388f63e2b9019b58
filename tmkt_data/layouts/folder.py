"""Any class-per-folder tree of event files (e.g. the still-image simulator's output).

Expected tree, either without a split::

    <root>/<class>/<file>            any depth below the class folder:
    <root>/<class>/<sub>/.../<file>  <root>/<class>/**/<file>

or with an official split (both folders present)::

    <root>/train/<class>/**/<file>
    <root>/test/<class>/**/<file>

* Event files are those whose extension a reader knows (the union of
  ``tmkt_data.formats.FORMATS[name].EXTENSIONS``: ``.aedat``, ``.aedat4``,
  ``.bin``, ``.npy``, ``.npz``, ``.h5``, ``.mat``...); with option ``format``
  only that format's extensions, and every file is read as that format
  (otherwise each file's format is detected). Hidden files and folders (names
  starting with ``.``) and other files are ignored.
* Classes are the class folder names in ASCII order (with ``train``/``test``:
  the union over both). A class folder without any event file is an error.
* Split: with ``train/`` and ``test/`` (matched case-insensitively) those are
  the split; else per class, the files' paths below the class folder in ASCII
  order, the first ``ceil(r * n)`` train, the rest test, ``r`` = option
  ``train_ratio`` (default 0.9).
* Sensor: option ``sensor_size`` (W, H). When None, the first file (ASCII
  order) of each class folder is read and the largest width and height any of
  them reports is used (``notes["sensor_size_source"]``); for formats that do
  not store a size (ATIS ``.bin``) that is the events' extent, so pass
  ``sensor_size`` there.
* ``<root>/synthetic.json`` or else ``<root>/metadata.json``, when present, is
  parsed and copied to ``notes["source_metadata"]`` (file name in
  ``notes["source_metadata_file"]``); invalid JSON is an error.

Sample ids are the file path relative to ``root`` without its extension
(``"cat/img_0001"``, ``"train/cat/img_0001"``); when two files differ only by
extension, both keep their extension.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tmkt_data.layouts import LAYOUTS
from tmkt_data.layouts.base import (
    DatasetIndex,
    LayoutError,
    SampleSpec,
    ascii_sorted,
    per_class_split,
    read_source_metadata,
    train_test_folders,
    visible_dirs,
)
from tmkt_data.mapping import check_no_options
from tmkt_data.splits import check_train_ratio

NAME = "folder"
LAYOUT_VERSION = 1

_EXPECT = "<class>/**/<event file> (or train/<class>/... and test/<class>/...)"


def _known_extensions(fmt: str | None) -> set[str]:
    from tmkt_data.formats import FORMATS

    if fmt is not None:
        if fmt not in FORMATS:
            raise LayoutError(f"folder: format {fmt!r}, expected one of {', '.join(FORMATS)}")
        return {e.lower() for e in FORMATS[fmt].EXTENSIONS}
    return {e.lower() for m in FORMATS.values() for e in m.EXTENSIONS}


def _event_files(folder: Path, exts: set[str]) -> list[str]:
    """Paths (POSIX, relative to ``folder``) of the event files below it, ASCII-sorted."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in exts and p.is_file():
            out.append(rel.as_posix())
    return ascii_sorted(out)


def _class_groups(root: Path, splits: dict[str, Path] | None) -> list[tuple[str | None, str, str]]:
    """(split or None, class, class folder relative to root) of every class folder."""
    groups: list[tuple[str | None, str, str]] = []
    if splits is not None:
        for split, base in splits.items():
            for d in visible_dirs(base):
                groups.append((split, d.name, f"{base.name}/{d.name}"))
    else:
        groups = [(None, d.name, d.name) for d in visible_dirs(root)]
    if not groups:
        where = " under train/ and test/" if splits is not None else ""
        raise LayoutError(f"{root}: no class folders{where}, expected {_EXPECT}")
    return groups


def _class_entries(
    root: Path, groups: list[tuple[str | None, str, str]], classes: list[str], exts: set[str], ratio: float
) -> tuple[list[tuple[str, int, str]], list[Path], dict[str, dict[str, int]]]:
    """((path relative to root, label, split) per file, first file of each class folder, per-class counts)."""
    label_of = {c: i for i, c in enumerate(classes)}
    entries: list[tuple[str, int, str]] = []
    firsts: list[Path] = []
    counts: dict[str, dict[str, int]] = {c: {"train": 0, "test": 0} for c in classes}
    for split, cls, rel_dir in sorted(groups, key=lambda g: g[2]):
        files = _event_files(root / rel_dir, exts)
        if not files:
            raise LayoutError(
                f"{root / rel_dir}: class folder has no event files "
                f"(extensions {', '.join(sorted(exts))}), expected {_EXPECT}"
            )
        firsts.append(root / rel_dir / files[0])
        file_splits = [split] * len(files) if split is not None else per_class_split(len(files), ratio)
        for f, s in zip(files, file_splits, strict=True):
            entries.append((f"{rel_dir}/{f}", label_of[cls], s))
            counts[cls][s] += 1
    return entries, firsts, counts


def _samples(entries: list[tuple[str, int, str]]) -> list[SampleSpec]:
    """Samples sorted by id: the path without extension, or with it where two files share a stem."""
    stems = Counter(Path(p).with_suffix("").as_posix() for p, _, _ in entries)
    samples = []
    for path, label, split in entries:
        stem = Path(path).with_suffix("").as_posix()
        samples.append(
            SampleSpec(sample_id=stem if stems[stem] == 1 else path, path=path, label=label, split=split)
        )
    samples.sort(key=lambda s: s.sample_id)
    return samples


def _sensor_size(
    root: Path,
    sensor_size: tuple[int, int] | None,
    firsts: list[Path],
    read_options: dict[str, Any],
    notes: dict[str, Any],
) -> tuple[int, int]:
    """(W, H) from the option, the source metadata, or the first file of each class; fills ``notes``."""
    meta = read_source_metadata(root)
    if meta is not None:
        notes["source_metadata_file"], notes["source_metadata"] = meta
        if sensor_size is None and isinstance(meta[1].get("sensor_size"), list):
            sensor_size = tuple(meta[1]["sensor_size"])
            notes["sensor_size_from_metadata"] = True
    if sensor_size is not None:
        w, h = int(sensor_size[0]), int(sensor_size[1])
        if w <= 0 or h <= 0:
            raise LayoutError(f"folder: sensor_size {sensor_size!r}, expected positive (width, height)")
        notes["sensor_size_source"] = "option"
        return w, h
    from tmkt_data.formats import read_events

    w = h = 0
    for path in firsts:
        rec = read_events(path, **read_options)
        w, h = max(w, int(rec.sensor_size[0])), max(h, int(rec.sensor_size[1]))
    notes["sensor_size_source"] = (
        f"inferred: largest (W, H) reported by the first file of each of {len(firsts)} class folder(s)"
    )
    notes["sensor_size_files"] = [p.relative_to(root).as_posix() for p in firsts]
    return w, h


@LAYOUTS.register(NAME)
def scan(
    root: Path,
    *,
    sensor_size: tuple[int, int] | None = None,
    train_ratio: float | None = None,
    format: str | None = None,
    **options: Any,
) -> DatasetIndex:
    """Index a class-per-folder tree (see the module docstring).

    Args:
        root: the tree's root.
        sensor_size: (W, H) of the events; None infers it by reading one file per class.
        train_ratio: fraction of each class in train when there is no train/test split (None: 0.9).
        format: read every file as this format (a :data:`tmkt_data.formats.FORMATS` name).

    Raises:
        LayoutError: no class folder, a class folder without event files, bad
            JSON metadata, bad option.
    """
    check_no_options(NAME, options, LayoutError)
    ratio = check_train_ratio(NAME, train_ratio, 0.9, LayoutError)
    root = Path(root)
    exts = _known_extensions(format)
    read_options: dict[str, Any] = {} if format is None else {"format": format}

    splits = train_test_folders(root)
    groups = _class_groups(root, splits)
    classes = ascii_sorted(sorted({cls for _, cls, _ in groups}))
    entries, firsts, counts = _class_entries(root, groups, classes, exts, ratio)
    samples = _samples(entries)

    notes: dict[str, Any] = {"layout_version": LAYOUT_VERSION}
    w, h = _sensor_size(root, sensor_size, firsts, read_options, notes)
    split_info: dict[str, Any]
    if splits is not None:
        split_info = {
            "kind": "official",
            "train": f"{splits['train'].name}/",
            "test": f"{splits['test'].name}/",
        }
    else:
        split_info = {
            "kind": "per_class_sorted",
            "train_ratio": ratio,
            "order": "ascii path below class folder",
        }
    split_info["per_class"] = counts
    return DatasetIndex(
        dataset=NAME,
        root=root,
        classes=classes,
        samples=samples,
        sensor_size=(w, h),
        read_options=read_options,
        split_info=split_info,
        notes=notes,
    )
