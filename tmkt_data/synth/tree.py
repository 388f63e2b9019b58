"""Files: a tree for ``tmkt-data convert`` with ``synthetic.json`` at its root (``docs/formats.md`` §6.5).

:func:`write_synth_tree` (recordings in memory) and :func:`synthesize_tree` (simulates and writes as
it goes, for the command line) share one streaming driver over :class:`TreeWriter`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.jsonutil import json_default
from tmkt_data.synth.motion import trajectory_description
from tmkt_data.synth.params import SIM_VERSION, SimParams, SynthError
from tmkt_data.synth.simulate import simulate_chunks

DESCRIPTION = "DVS-like synthetic events"
#: File name of the metadata written at the tree root (the ``folder`` layout reads it first).
METADATA_FILE = "synthetic.json"
LAYOUTS = ("folder", "nmnist")
#: file format -> file extension
FILE_FORMATS = {"atis_bin": ".bin", "aedat2": ".aedat"}
#: AEDAT 2.0 files are written for a DVS128 in this orientation, which is what
#: ``tmkt_data.formats.aedat2.read`` (and so ``convert``) uses by default for DVS128,
#: so the events read back are exactly the simulated ones.
AEDAT2_CHIP = "dvs128"
AEDAT2_ORIENTATION = "spikingjelly"

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Columns of the per-sample rows in the metadata's ``samples`` table.
SAMPLE_COLUMNS = ("file", "source_id", "label", "split", "events", "on_events", "source_w", "source_h")


def _safe_name(s: str) -> str:
    name = _SAFE.sub("_", str(s)).strip("._")
    if not name:
        raise SynthError(f"sample id {s!r} gives an empty file name")
    return name


def check_output(
    layout: str, file_format: str, sensor_size: tuple[int, int], class_names: Sequence[str] | None = None
) -> None:
    """Raise :class:`SynthError` early when the layout/format cannot hold this output."""
    w, h = int(sensor_size[0]), int(sensor_size[1])
    if layout not in LAYOUTS:
        raise SynthError(f"layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if file_format not in FILE_FORMATS:
        raise SynthError(f"file format {file_format!r}: expected one of {', '.join(FILE_FORMATS)}")
    if file_format == "atis_bin" and (w > 256 or h > 240):
        raise SynthError(
            f"sensor {w}x{h} cannot be stored as ATIS .bin (x < 256, and y < 240 since row 240 marks "
            "timestamp overflows): use a smaller sensor, or aedat2 with a 128x128 sensor"
        )
    if file_format == "aedat2" and (w, h) != (128, 128):
        raise SynthError(
            f"sensor {w}x{h} cannot be stored as AEDAT 2.0: the writer targets a DVS128, expected a 128x128 sensor"
        )
    if layout == "nmnist":
        if file_format != "atis_bin":
            raise SynthError("the nmnist layout holds ATIS .bin files: use file format atis_bin")
        if (w, h) != (34, 34):
            raise SynthError(f"the nmnist layout reads a 34x34 sensor, got {w}x{h}: use a 34x34 sensor")
        if class_names is not None and [str(c) for c in class_names] != [str(d) for d in range(10)]:
            raise SynthError(
                f"the nmnist layout needs the ten classes '0'..'9', got {list(class_names)[:12]}: "
                "use the folder layout"
            )


class TreeWriter:
    """Writes recordings one by one into a hidden temporary tree, renamed into place by :meth:`finish`.

    An interrupted run leaves only ``.<name>.tmp-*`` next to ``out`` (removed by
    :meth:`abort`), never a tree that looks complete. See :func:`write_synth_tree`
    for the layouts.
    """

    def __init__(
        self,
        out_raw: str | os.PathLike[str],
        class_names: Sequence[str],
        params: SimParams,
        *,
        layout: str = "folder",
        file_format: str = "atis_bin",
        with_split: bool = True,
        source: dict[str, Any] | None = None,
        overwrite: bool = False,
    ):
        params.validate()
        self.classes = [str(c) for c in class_names]
        check_output(layout, file_format, params.sensor_size, self.classes if layout == "nmnist" else None)
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise SynthError("class names must be given and unique")
        for c in self.classes:
            if _SAFE.search(c) or c in (".", "..") or c.startswith("."):
                raise SynthError(f"class name {c!r} is not a plain folder name (letters, digits, . _ -)")
        if layout == "nmnist" and not with_split:
            raise SynthError("the nmnist layout needs a train/test split per sample")
        self.out = Path(out_raw)
        if self.out.exists() and not overwrite:
            raise SynthError(f"{self.out}: already exists; choose another path or overwrite it")
        if not self.out.parent.is_dir():
            raise SynthError(f"{self.out.parent}: parent folder does not exist")
        self.params = params
        self.layout = layout
        self.file_format = file_format
        self.with_split = with_split
        self.source = dict(source or {})
        self.ext = FILE_FORMATS[file_format]
        self.rows: list[list[Any]] = []
        self.skipped: list[str] = []
        self.used: set[str] = set()
        self.total = 0
        self.on_total = 0
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        if layout == "nmnist":
            for folder in ("Train", "Test"):
                for d in self.classes:
                    (self.tmp / folder / d).mkdir(parents=True)
        elif with_split:
            for folder in ("train", "test"):
                (self.tmp / folder).mkdir()

    def add(
        self, events: np.ndarray, label: int, source_id: str, split: str | None, source_shape: tuple[int, ...]
    ) -> str | None:
        """Write one recording; returns its path relative to the tree (None: no events, not written)."""
        from tmkt_data.formats import aedat2, atis_bin

        lab = int(label)
        if not 0 <= lab < len(self.classes):
            raise SynthError(f"sample {source_id!r} has label {lab}, expected 0..{len(self.classes) - 1}")
        if self.with_split and split not in ("train", "test"):
            raise SynthError(f"sample {source_id!r} has split {split!r}, expected 'train' or 'test'")
        cls = self.classes[lab]
        if self.layout == "nmnist":
            rel_dir = f"{'Train' if split == 'train' else 'Test'}/{cls}"
        elif self.with_split:
            rel_dir = f"{split}/{cls}"
        else:
            rel_dir = cls
        rel = f"{rel_dir}/{_safe_name(source_id)}{self.ext}"
        if rel in self.used:
            raise SynthError(f"two samples map to the same file {rel} (source ids must be unique)")
        self.used.add(rel)
        n = int(events.shape[0])
        on = int(np.count_nonzero(events["p"])) if n else 0
        shape = tuple(int(v) for v in source_shape)
        if n == 0:
            self.skipped.append(str(source_id))
            self.rows.append([None, str(source_id), lab, split, 0, 0, shape[1], shape[0]])
            return None
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        w, h = (int(v) for v in self.params.sensor_size)
        if self.file_format == "atis_bin":
            atis_bin.write(path, events, (w, h))
        else:
            aedat2.write(path, events, (w, h), chip=AEDAT2_CHIP, orientation=AEDAT2_ORIENTATION)
        self.rows.append([rel, str(source_id), lab, split, n, on, shape[1], shape[0]])
        self.total += n
        self.on_total += on
        return rel

    def metadata(self) -> dict[str, Any]:
        meta = synth_metadata(
            self.params,
            layout=self.layout,
            file_format=self.file_format,
            source=self.source,
            classes=self.classes,
        )
        meta["samples"] = {"columns": list(SAMPLE_COLUMNS), "rows": self.rows}
        meta["skipped_empty"] = list(self.skipped)
        meta["totals"] = {
            "samples": len(self.rows),
            "files": len(self.rows) - len(self.skipped),
            "events": self.total,
            "on_fraction": self.on_total / self.total if self.total else None,
        }
        return meta

    def finish(self) -> dict[str, Any]:
        """Write the metadata file and rename the tree into place; returns the totals."""
        try:
            if self.total == 0:
                raise SynthError("every sample has zero events: nothing to write (no motion or no contrast?)")
            if self.layout == "folder" and self.with_split and not any((self.tmp / "train").iterdir()):
                raise SynthError("no training sample has events: the folder layout would find no class")
            meta = self.metadata()
            (self.tmp / METADATA_FILE).write_text(_metadata_text(meta), encoding="utf-8")
            old = None
            if self.out.exists():
                old = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:8]}"
                self.out.rename(old)
            self.tmp.rename(self.out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            self.abort()
            raise
        return {"path": str(self.out), **meta["totals"], "skipped_empty": meta["skipped_empty"]}

    def abort(self) -> None:
        """Remove the temporary tree."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def _split_list(split: str | Sequence[str] | None, n: int) -> list[str] | None:
    if split is None:
        return None
    if isinstance(split, str):
        return [split] * n
    out = [str(s) for s in split]
    if len(out) != n:
        raise SynthError(f"{len(out)} split entries for {n} samples: expected one per sample")
    return out


def _new_writer(
    out_raw: str | os.PathLike[str],
    class_names: Sequence[str],
    params: SimParams,
    layout: str,
    file_format: str,
    splits: list[str] | None,
    source: dict[str, Any] | None,
    overwrite: bool,
) -> TreeWriter:
    return TreeWriter(
        out_raw,
        class_names,
        params,
        layout=layout,
        file_format=file_format,
        with_split=splits is not None,
        source=source,
        overwrite=overwrite,
    )


def _write_tree(
    writer: TreeWriter,
    recordings: Iterator[tuple[np.ndarray, tuple[int, ...]]],
    labels: Sequence[int],
    ids: Sequence[str],
    splits: list[str] | None,
) -> dict[str, Any]:
    """The one streaming path: add recording ``i`` (events, source image shape (H, W)) as it comes,
    then :meth:`TreeWriter.finish`; any error (or interrupt) removes the temporary tree."""
    try:
        for i, (events, shape) in enumerate(recordings):
            writer.add(events, labels[i], ids[i], splits[i] if splits else None, shape)
    except BaseException:
        close = getattr(recordings, "close", None)
        if close is not None:  # a generator: stop its simulation threads first
            close()
        writer.abort()
        raise
    return writer.finish()


def write_synth_tree(
    out_raw: str | os.PathLike[str],
    events_per_sample: Sequence[np.ndarray],
    labels: Sequence[int],
    class_names: Sequence[str],
    split: str | Sequence[str] | None,
    ids: Sequence[str],
    layout: str = "folder",
    file_format: str = "atis_bin",
    params: SimParams | None = None,
    *,
    source: dict[str, Any] | None = None,
    source_shapes: Sequence[tuple[int, ...]] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write simulated recordings as a tree ``tmkt-data convert`` reads, plus ``synthetic.json``.

    Layouts:

    * ``folder``: ``<out>/train/<class>/<id><ext>`` and ``<out>/test/<class>/<id><ext>``
      when ``split`` is given (per sample, or one string for all; both split
      folders are created, so the layout takes them as the official split even
      when one is empty); ``<out>/<class>/<id><ext>`` when ``split`` is None
      (the layout then splits each class itself). ``convert("folder", out, ...)``
      copies ``synthetic.json`` into the store's attrs (``synthetic``,
      ``source_metadata``). A class without any written sample has no folder, so
      the layout does not list it (it numbers classes in ASCII order of names).
    * ``nmnist``: ``<out>/Train/<digit>/<id>.bin`` and ``<out>/Test/<digit>/<id>.bin``
      (all twenty digit folders exist); ATIS, 34x34, classes '0'..'9'.

    ``<id>`` is the source id with every character outside ``A-Za-z0-9._-``
    replaced by ``_``. ``.bin`` is ATIS 40-bit; ``.aedat`` is AEDAT 2.0 for a
    DVS128 in the ``spikingjelly`` orientation (the reader's default for DVS128,
    so reading back gives exactly these events). Samples without events are not
    written (readers refuse empty files); they are listed under ``skipped_empty``.

    ``synthetic.json`` holds ``"synthetic": true``, the description, simulator
    version, every parameter, the seed, trajectory, pixel model, source and a
    ``samples`` table (file, source id, label, split, events, ON events, source
    image size). The tree is written under a hidden temporary name and renamed
    into place at the end. An existing ``out`` is an error unless ``overwrite``.

    Returns the totals (path, samples, files, events, ON fraction, skipped ids).
    """
    params = SimParams() if params is None else params
    n = len(events_per_sample)
    if len(labels) != n or len(ids) != n:
        raise SynthError(f"{n} event arrays, {len(labels)} labels, {len(ids)} ids: expected equal lengths")
    if source_shapes is not None and len(source_shapes) != n:
        raise SynthError(f"{len(source_shapes)} source shapes for {n} samples: expected one per sample")
    splits = _split_list(split, n)
    if splits is not None:
        bad = sorted(set(splits) - {"train", "test"})
        if bad:
            raise SynthError(f"split value(s) {bad}: expected 'train' or 'test'")
    writer = _new_writer(out_raw, class_names, params, layout, file_format, splits, source, overwrite)
    recordings = (
        (events_per_sample[i], tuple(source_shapes[i]) if source_shapes is not None else (0, 0))
        for i in range(n)
    )
    return _write_tree(writer, recordings, labels, ids, splits)


def synthesize_tree(
    images: Sequence[Any],
    labels: Sequence[int],
    class_names: Sequence[str],
    split: str | Sequence[str] | None,
    ids: Sequence[str],
    out_raw: str | os.PathLike[str],
    params: SimParams | None = None,
    *,
    layout: str = "folder",
    file_format: str = "atis_bin",
    workers: int | None = None,
    source: dict[str, Any] | None = None,
    overwrite: bool = False,
    chunk: int = 512,
    progress: Any = None,
    indices: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Simulate every image and write the tree as it goes (memory: one chunk of recordings).

    Same tree and metadata as :func:`simulate_dataset` followed by
    :func:`write_synth_tree` (image ``i`` uses :func:`sample_rng` ``(seed, i)``, or
    ``(seed, indices[i])`` when ``indices`` gives each image's position in the full
    source, so a subset of a source simulates each image exactly as the whole source does).
    ``progress(done, total)`` is called after each chunk. Returns the totals plus
    ``seconds_simulate`` and ``duration_us_mean`` (mean first-to-last event span).
    """
    params = SimParams() if params is None else params
    params.validate()
    n = len(images)
    if len(labels) != n or len(ids) != n:
        raise SynthError(f"{n} images, {len(labels)} labels, {len(ids)} ids: expected equal lengths")
    splits = _split_list(split, n)
    seeds = list(range(n)) if indices is None else [int(i) for i in indices]
    if len(seeds) != n:
        raise SynthError(f"{n} images, {len(seeds)} indices: expected one source index per image")
    writer = _new_writer(out_raw, class_names, params, layout, file_format, splits, source, overwrite)
    stats: dict[str, Any] = {"seconds": 0.0, "spans": []}
    recordings = _simulated(images, params, seeds, workers, chunk, progress, stats)
    out = _write_tree(writer, recordings, labels, ids, splits)
    out["seconds_simulate"] = stats["seconds"]
    out["duration_us_mean"] = float(np.mean(stats["spans"])) if stats["spans"] else None
    return out


def _simulated(
    images: Sequence[Any],
    params: SimParams,
    seeds: Sequence[int],
    workers: int | None,
    chunk: int,
    progress: Any,
    stats: dict[str, Any],
) -> Iterator[tuple[np.ndarray, tuple[int, ...]]]:
    """(events, source image shape) of each image in order, simulated a chunk at a time; adds the
    simulation seconds and each written recording's first-to-last event span to ``stats`` and calls
    ``progress(done, total)`` once a chunk is written."""
    n = len(images)
    done = 0
    with contextlib.closing(simulate_chunks(images, params, seeds, workers=workers, chunk=chunk)) as chunks:
        for res, seconds in chunks:
            stats["seconds"] += seconds
            for ev, meta in res:
                yield ev, tuple(meta["pixel_transform"]["source_size"][::-1])
                if ev.shape[0]:
                    stats["spans"].append(int(ev["t"][-1] - ev["t"][0]))
            done += len(res)
            if progress is not None:
                progress(done, n)


def synth_metadata(
    params: SimParams,
    *,
    layout: str,
    file_format: str,
    source: dict[str, Any] | None,
    classes: Sequence[str],
) -> dict[str, Any]:
    """The plain-JSON record of a synthetic tree (without the per-sample table)."""
    fmt: dict[str, Any] = {"name": file_format}
    if file_format == "aedat2":
        fmt.update(chip=AEDAT2_CHIP, orientation=AEDAT2_ORIENTATION)
    w, h = (int(v) for v in params.sensor_size)
    wr, hr = (int(v) for v in params.render_size)
    return {
        "synthetic": True,
        "description": DESCRIPTION,
        "notice": "Simulated from still images by tmkt_data.synth; not a real event-camera recording "
        "and not a recording of any published event dataset.",
        "simulator": "tmkt_data.synth",
        "simulator_version": SIM_VERSION,
        "seed": int(params.seed),
        "seeding": "sample i (source order) uses numpy SeedSequence(seed, spawn_key=(i,))",
        "params": params.to_json(),
        "sensor_size": [w, h],
        "trajectory": trajectory_description(params),
        "pixel_transform": {
            "formula": "X = offset_x + dx(t) + u * render_w / source_w; "
            "Y = offset_y + dy(t) + v * render_h / source_h "
            "(continuous coordinates from the top-left corner, source point (u, v), sensor point (X, Y))",
            "offset_px": [(w - wr) / 2.0, (h - hr) / 2.0],
            "render_size": [wr, hr],
            "source_size": "per sample: columns source_w, source_h of the samples table",
            "resize": f"{params.resample} on sRGB values, clipped to [0, 1], then linear Rec. 709 luminance",
            "sensor_sampling": "pixel-area average of the displaced image (bilinear weights, exact at 1:1)",
            "background": params.background,
        },
        "pixel_model": {
            "log": "L = log(I + eps), I linear luminance in [0, 1]",
            "thresholds": "per pixel N(c_on or c_off, sigma) clamped >= c_min, drawn once per recording",
            "events": "one per threshold crossing; L_ref moves by exactly one threshold (never snaps to L)",
            "timestamps": "linear interpolation between samples, rounded to the nearest integer us",
            "refractory": "an event within refractory_us of the pixel's last emitted event is dropped; "
            "L_ref still advances by the threshold",
            "leak": "L_ref drifts down by leak_rate_hz * C_on per second (ON events)",
            "shot_noise": "independent Poisson events, 50/50 polarity, uniform times; do not move L_ref",
            "time_origin": "t = 0 at the start of the motion",
        },
        "known_gaps": [
            "no photoreceptor low-pass filter",
            "no LCD refresh artefacts",
            "no latency, timestamp jitter or bias-dependent noise",
        ],
        "layout": layout,
        "file_format": fmt,
        "source": dict(source or {}),
        "classes": list(classes),
        "created_unix": int(time.time()),
    }


def _metadata_text(meta: dict[str, Any]) -> str:
    """JSON text of the metadata: indented, with one line per sample row."""
    head = {k: v for k, v in meta.items() if k != "samples"}
    text = json.dumps(head, indent=1, default=json_default)
    rows = ",\n  ".join(json.dumps(r, default=json_default) for r in meta["samples"]["rows"])
    cols = json.dumps(meta["samples"]["columns"])
    return f'{text[:-2]},\n "samples": {{"columns": {cols}, "rows": [\n  {rows}\n ]}}\n}}\n'
