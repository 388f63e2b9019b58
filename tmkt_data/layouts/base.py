"""What a dataset layout module produces: a :class:`DatasetIndex` of :class:`SampleSpec`.

A layout knows one dataset's folder tree: which files are samples, their class,
their split, and how to turn a file (or a time slice of it) into events on a
fixed sensor. It does no binning and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.errors import TmktError
from tmkt_data.events import Recording
from tmkt_data.splits import per_class_split, split_within_groups  # noqa: F401  (the layouts import them here)


class LayoutError(TmktError, ValueError):
    """A dataset folder does not match the layout it was given as."""


@dataclass(frozen=True)
class SampleSpec:
    """One sample of a dataset.

    Attributes:
        sample_id: unique, stable name (e.g. ``"airplane/cifar10_airplane_7"``,
            ``"user01_lab_3"``); the store sorts and keys samples by it.
        path: the source file, relative to the raw root (POSIX separators).
        label: class index into :attr:`DatasetIndex.classes`.
        split: ``"train"`` or ``"test"`` (the dataset's standard split).
        start_us, end_us: half-open time slice ``[start, end)`` in the file's own
            absolute clock (``events["t"] + t0_abs``), or None for the whole file.
        alt_splits: other published splits, name -> ``"train"``/``"test"``.
    """

    sample_id: str
    path: str
    label: int
    split: str
    start_us: int | None = None
    end_us: int | None = None
    alt_splits: tuple[tuple[str, str], ...] = ()


@dataclass
class DatasetIndex:
    """Everything a conversion needs to know about one dataset tree.

    Attributes:
        dataset: layout name (``"cifar10dvs"``...).
        root: the raw root folder (absolute).
        classes: class names; labels index into this list.
        samples: every sample, sorted by ``sample_id``.
        sensor_size: (W, H) of the events :meth:`load` returns.
        read_options: keyword options passed to ``read_events`` for every file.
        split_info: how the split was made (``{"kind": "official"}`` or
            ``{"kind": "per_class_sorted", "train_ratio": 0.9}``...), plus alternatives.
        notes: free-form facts worth recording in the store (layout version...).
    """

    dataset: str
    root: Path
    classes: list[str]
    samples: list[SampleSpec]
    sensor_size: tuple[int, int]
    read_options: dict[str, Any] = field(default_factory=dict)
    split_info: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def source(self, spec: SampleSpec) -> Path:
        """Absolute path of a sample's source file."""
        return self.root / spec.path


def slice_recording(rec: Recording, start_us: int | None, end_us: int | None) -> np.ndarray:
    """Events of ``rec`` with absolute time in ``[start_us, end_us)``, t re-based to the slice start.

    The slice keeps the file's canonical ordering; its ``t`` is counted from
    ``start_us`` (not from the first event inside it), so silence at the start
    of a window is preserved.
    """
    ev = rec.events
    if start_us is None and end_us is None:
        return ev
    t_abs = ev["t"] + np.int64(rec.t0_abs)
    lo = 0 if start_us is None else int(np.searchsorted(t_abs, start_us, side="left"))
    hi = len(ev) if end_us is None else int(np.searchsorted(t_abs, end_us, side="left"))
    out = ev[lo:hi].copy()
    base = rec.t0_abs if start_us is None else start_us
    out["t"] = t_abs[lo:hi] - np.int64(base)
    return out


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise :class:`LayoutError` naming what is missing."""
    if not path.is_dir():
        raise LayoutError(f"{path}: missing folder, expected {what}")
    return path


def ascii_sorted(names: Sequence[str]) -> list[str]:
    """Plain code-point order (uppercase first, ``_10`` before ``_2``), as spikingjelly lists files."""
    return sorted(names)


def visible_dirs(folder: Path) -> list[Path]:
    """The folders in ``folder`` whose names do not start with ``.``, sorted by name (the layouts
    and the RGB sources list class, alphabet and character folders this way)."""
    return sorted(
        (e for e in folder.iterdir() if e.is_dir() and not e.name.startswith(".")), key=lambda p: p.name
    )


def train_test_folders(root: Path) -> dict[str, Path] | None:
    """``{"train": ..., "test": ...}`` when ``root`` holds folders named train and test (any case),
    else None: the split folders of the ``folder`` layout and the ``imagefolder`` RGB source."""
    by_name = {d.name.lower(): d for d in visible_dirs(root)}
    if "train" in by_name and "test" in by_name:
        return {"train": by_name["train"], "test": by_name["test"]}
    return None


def per_class_samples(
    cls: str,
    label: int,
    names: Sequence[str],
    train_ratio: float,
    prefix: str,
    alt_splits: Sequence[tuple[tuple[str, str], ...]] | None = None,
) -> tuple[list[SampleSpec], dict[str, int]]:
    """The samples of one class's name-sorted files, split by :func:`per_class_split`, and how many
    went to each split (``{"train": n, "test": m}``).

    File ``names[i]`` becomes sample ``<cls>/<its stem>`` at ``prefix + names[i]``, with
    ``alt_splits[i]`` as its other published splits when given.
    """
    splits = per_class_split(len(names), train_ratio)
    alts = alt_splits if alt_splits is not None else [()] * len(names)
    samples = [
        SampleSpec(
            sample_id=f"{cls}/{Path(name).stem}",
            path=prefix + name,
            label=label,
            split=split,
            alt_splits=alt,
        )
        for name, split, alt in zip(names, splits, alts, strict=True)
    ]
    return samples, {"train": splits.count("train"), "test": splits.count("test")}


#: Names of a raw tree's metadata file (the simulator writes ``synthetic.json``).
METADATA_FILES = ("synthetic.json", "metadata.json")


def read_source_metadata(root: Path) -> tuple[str, dict[str, Any]] | None:
    """(file name, contents) of the tree's metadata file, or None.

    Per-sample tables (a ``samples`` list) stay in the file and are replaced by
    their length, so the store's attributes stay small.
    """
    import json

    for name in METADATA_FILES:
        path = root / name
        if path.is_file():
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise LayoutError(f"{path}: cannot parse as JSON ({err})") from None
            if not isinstance(meta, dict):
                raise LayoutError(f"{path}: expected a JSON object")
            if isinstance(meta.get("samples"), list):
                meta = dict(meta)
                meta["samples"] = f"{len(meta['samples'])} entries, see {name} in the raw tree"
            return name, meta
    return None


def load_sample(
    index: DatasetIndex, spec: SampleSpec, recording: Recording | None = None, *, check: bool = True
) -> np.ndarray:
    """Canonical events of one sample on ``index.sensor_size``.

    Reads the source file with ``index.read_options`` (or uses ``recording`` when
    the caller already read that file, e.g. for several slices of one
    recording), applies the sample's time slice, then the layout's crop
    (``index.notes["crop"] = [x0, y0, x1, y1]``, half-open, shifting the origin),
    and (with ``check``) raises :class:`LayoutError` when an event falls outside
    the sensor (callers that bin right away can leave that to ``to_frames``).
    """
    from tmkt_data.formats import read_events

    rec = recording if recording is not None else read_events(index.source(spec), **index.read_options)
    ev = slice_recording(rec, spec.start_us, spec.end_us)
    crop = index.notes.get("crop")
    if crop is not None:
        x0, y0, x1, y1 = (int(v) for v in crop)
        keep = (ev["x"] >= x0) & (ev["x"] < x1) & (ev["y"] >= y0) & (ev["y"] < y1)
        ev = ev[keep].copy()
        ev["x"] -= x0
        ev["y"] -= y0
    w, h = index.sensor_size
    if check and ev.size and (int(ev["x"].max()) >= w or int(ev["y"].max()) >= h):
        raise LayoutError(
            f"{index.source(spec)}: events reach x={int(ev['x'].max())}, y={int(ev['y'].max())}, "
            f"outside the {w}x{h} sensor expected for {index.dataset}"
        )
    return ev
