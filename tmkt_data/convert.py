"""Dataset tree -> frame store: one dask task per shard, resumable, parameter-keyed.

The job: scan the layout, fix the sample order (sorted ids) and the store's
parameters, then convert every shard that has no completion record. Each task
reads its samples, bins them with the Numba kernels (which release the GIL),
resizes, writes one whole shard and its record. Killing the process at any
point and running the same command again finishes the job; a finished shard is
never redone, and a different parameter set is refused rather than mixed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data import mapping
from tmkt_data.errors import TmktError
from tmkt_data.filters import EventFilter, filtered_sensor_size, parse_filters
from tmkt_data.layouts import DatasetIndex, scan
from tmkt_data.layouts.base import SampleSpec
from tmkt_data.outputs import cannot_write, check_writable
from tmkt_data.resize import RESIZE_METHODS
from tmkt_data.sample_binning import sample_frames
from tmkt_data.sizes import parse_size_hw
from tmkt_data.store import (
    StoreError,
    StoreGeometry,
    check_shards,
    create_store,
    damaged_metadata,
    file_sha256,
    finalize_store,
    is_store,
    made_as,
    open_store,
    params_hash,
    rebuild_root,
    remove_store,
    repair_frames_metadata,
    root_damaged,
    sample_row,
    store_lock,
    write_shard,
)
from tmkt_data.store.location import RemotePath, check_bucket, is_url, store_location

COUNT_DTYPES = ("uint8", "uint16", "int16", "float32")
FLOAT_DTYPES = ("float16", "float32")


class ConvertError(TmktError, ValueError):
    """A conversion cannot start or was stopped by a bad file with ``on_error="fail"``."""


@dataclass(frozen=True)
class ConvertOptions:
    """Every parameter that shapes the stored frames (all recorded in the store).

    Attributes:
        frames: number of frames T per sample.
        split_by: ``"time"`` (equal durations) or ``"number"`` (equal event counts).
        remainder: ``"last"`` (spikingjelly: the last frame keeps the rest) or
            ``"drop"`` (tonic: the remainder is dropped).
        size: output (H, W) or None to keep the sensor size.
        resize: how frames reach ``size``, ``"bilinear"`` or ``"area"``; ``"none"`` only
            without a size (refused with one: the frames would keep the sensor size).
        dtype: stored dtype or ``"auto"`` (uint16 counts without resize,
            float16 with resize).
        shard_samples: samples per shard file (None: chosen from the frame size).
        layout_options: options passed to the layout's ``scan``.
        filters: event filters run in order on each sample's events before binning,
            ``"denoise=US"``, ``"refractory=US"``, ``"crop=X0,Y0,W,H"``, ``"downsample=F"``
            (:mod:`tmkt_data.filters`); crop and downsample change the binned sensor size.
    """

    frames: int = 10
    split_by: str = "number"
    remainder: str = "last"
    size: tuple[int, int] | None = None
    resize: str = "bilinear"
    dtype: str = "auto"
    shard_samples: int | None = None
    layout_options: dict[str, Any] = field(default_factory=dict)
    filters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.filters, str):  # one spec given as a plain string
            object.__setattr__(self, "filters", (self.filters,))
        else:
            object.__setattr__(self, "filters", tuple(self.filters))

    def event_filters(self) -> tuple[EventFilter, ...]:
        """The parsed filters (raises :class:`~tmkt_data.filters.FilterError` for a bad spec)."""
        return parse_filters(self.filters)

    def resolved_dtype(self) -> str:
        resized = self.size is not None and self.resize != "none"
        if self.dtype == "auto":
            return "float16" if resized else "uint16"
        allowed = FLOAT_DTYPES if resized else COUNT_DTYPES + ("float16",)
        if self.dtype not in allowed:
            raise ConvertError(
                f"dtype {self.dtype!r} cannot hold {'resized' if resized else 'count'} frames; "
                f"expected auto or one of {', '.join(allowed)}"
            )
        return self.dtype

    def validate(self, where: str = "") -> None:
        """Raise :class:`ConvertError` (one line) for the first invalid value; ``where`` names a
        recipe table (``"r.toml [convert]"``), else the values are named by their command-line flags."""

        def name(key: str) -> str:
            return option_name(key, where)

        if isinstance(self.frames, bool) or not isinstance(self.frames, int | np.integer) or self.frames < 1:
            raise ConvertError(f"{name('frames')} {self.frames!r}: expected a positive number of frames")
        if self.split_by not in ("time", "number"):
            raise ConvertError(f"{name('split_by')} {self.split_by!r}: expected time or number")
        if self.remainder not in ("drop", "last"):
            raise ConvertError(f"{name('remainder')} {self.remainder!r}: expected drop or last")
        if self.resize not in RESIZE_METHODS:
            raise ConvertError(
                f"{name('resize')} {self.resize!r}: expected one of {', '.join(RESIZE_METHODS)}"
            )
        if self.size is not None:
            parse_size_hw(self.size, name("size"), error=ConvertError)
            if self.resize == "none":  # the frames would keep the sensor size that the store says is size
                raise ConvertError(
                    f"{name('resize')} 'none' with {name('size')} {list(self.size)!r}: expected a resize "
                    "method (bilinear or area) with a size, or no size to keep the sensor size"
                )
        if self.shard_samples is not None and (
            isinstance(self.shard_samples, bool)
            or not isinstance(self.shard_samples, int | np.integer)
            or self.shard_samples < 1
        ):
            raise ConvertError(f"{name('shard_samples')} {self.shard_samples!r}: expected a positive number")
        if not isinstance(self.dtype, str):
            raise ConvertError(f"{name('dtype')} {self.dtype!r}: expected auto or a dtype name")
        self.resolved_dtype()
        self.event_filters()

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "") -> ConvertOptions:
        """Checked options from a recipe's ``[convert]`` table (less ``dataset``) or the command
        line's values: keys of :data:`CONVERT_OPTION_KEYS`, a missing or None value keeps the
        default. ``size`` is ``S``, ``"H,W"`` or ``[H, W]``; ``options`` a table of layout options
        (``sensor_size``, ``train_ratio`` checked here); ``filters`` a list of ``"name=value"``.

        ``where`` names the table in errors (``"r.toml [convert]"``); empty, the values are named
        by their flags (``--frames``, ``--option``), as ``tmkt-data convert`` spells them.

        Raises:
            ConvertError, LayoutError, FilterError: an unknown key or a bad value, one line.
        """
        from tmkt_data.layouts import check_layout_options

        def name(key: str) -> str:
            return option_name(key, where)

        mapping.check_keys(table, CONVERT_OPTION_KEYS, where or "convert options", ConvertError)
        kw = {k: v for k, v in table.items() if v is not None}
        for key in ("split_by", "remainder", "resize", "dtype"):
            if key in kw and not isinstance(kw[key], str):
                raise ConvertError(f"{name(key)} {kw[key]!r}: expected a string")
        if "size" in kw:
            kw["size"] = parse_size_hw(kw["size"], name("size"), error=ConvertError)
        filters = kw.pop("filters", ())
        if isinstance(filters, str):
            filters = [filters]
        if not isinstance(filters, list | tuple) or not all(isinstance(f, str) for f in filters):
            raise ConvertError(
                f'{name("filters")} {filters!r}: expected a list of strings like "denoise=5000"'
            )
        layout = kw.pop("options", {})
        if not isinstance(layout, Mapping):
            raise ConvertError(f"{name('options')} {layout!r}: expected a table of layout options")
        opts = cls(
            **kw,
            layout_options=check_layout_options(layout, lambda key: name(f"options.{key}")),
            filters=tuple(filters),
        )
        opts.validate(where)
        return opts


#: What :meth:`ConvertOptions.from_mapping` reads: a recipe's ``[convert]`` keys but ``dataset``.
CONVERT_OPTION_KEYS = (
    "frames",
    "split_by",
    "remainder",
    "size",
    "resize",
    "dtype",
    "shard_samples",
    "options",
    "filters",
)
_FLAGS = {"options": "--option", "filters": "--filter"}


def option_name(key: str, where: str = "") -> str:
    """How errors name a conversion option: ``"r.toml [convert] frames ="`` in a recipe table
    ``where``, else the command-line flag (``"--frames"``, ``"--option sensor_size"``)."""
    return mapping.option_name(key, where, _FLAGS)


@dataclass(frozen=True)
class ShardJob:
    """Everything one task needs; plain data so it travels to dask.distributed workers."""

    store: str | RemotePath  # a URL's RemotePath carries its connection settings to the workers
    shard: int
    key: str
    samples: tuple[SampleSpec, ...]
    index: DatasetIndex
    options: ConvertOptions
    on_error: str


def default_shard_samples(n_samples: int, frame_shape: tuple[int, ...], itemsize: int) -> int:
    """Samples per shard: at most ~16 MiB of raw frames per shard (at most 256 samples), and
    at least 16 shards when the dataset allows (so every core of a machine gets tasks), but no
    fewer than 8 samples per shard (per-task overhead). Depends only on the data, never on
    the number of workers, so a resumed run keeps the same shards."""
    per_sample = int(np.prod(frame_shape)) * itemsize
    by_size = max(8, min(256, (16 << 20) // max(1, per_sample)))
    by_count = max(8, -(-n_samples // 16))
    return int(min(by_size, by_count))


def convert_shard(job: ShardJob) -> dict[str, Any]:
    """Convert and write one shard; returns counts for progress and the summary."""
    t_start = time.perf_counter()
    opts = job.options
    shape = frame_shape(job.index, opts)
    frames = np.zeros((len(job.samples), *shape), dtype=opts.resolved_dtype())
    rows: list[dict[str, Any]] = []
    cache: dict[str, Any] = {}
    n_events = 0
    for i, spec in enumerate(job.samples):
        src = job.index.source(spec)
        row = sample_row(
            spec.sample_id, spec.label, spec.split, source_path=spec.path, alt_splits=dict(spec.alt_splits)
        )
        try:
            row["source_bytes"] = src.stat().st_size
            frames[i], counts = sample_frames(job.index, spec, opts, cache)
            row.update(counts, valid=True)
            n_events += counts["n_events"]
        except Exception as err:  # every per-file failure is recorded
            reason = str(err) if isinstance(err, TmktError) else f"{src}: {type(err).__name__}: {err}"
            if job.on_error == "fail":
                raise ConvertError(f"conversion stopped on a bad file: {reason}") from None
            row["failure"] = reason
            try:
                row["source_sha256"] = file_sha256(src)
            except OSError:
                pass
        rows.append(row)
    write_shard(store_location(job.store), job.shard, frames, rows, job.key)
    return {
        "shard": job.shard,
        "files": len(rows),
        "failed": sum(1 for r in rows if "failure" in r),
        "events": n_events,
        "seconds": time.perf_counter() - t_start,
    }


def frame_shape(index: DatasetIndex, options: ConvertOptions) -> tuple[int, int, int, int]:
    """(T, 2, H, W) of the stored frames (the sensor after the filters, or the resize size)."""
    w, h = filtered_sensor_size(options.event_filters(), index.sensor_size)
    if options.size is not None and options.resize != "none":
        h, w = options.size
    return (options.frames, 2, int(h), int(w))


def store_params(index: DatasetIndex, options: ConvertOptions) -> dict[str, Any]:
    """Every parameter that shapes the store's contents (hashed into its key)."""
    from tmkt_data import __version__
    from tmkt_data.store import STORE_FORMAT_VERSION

    opts = asdict(options)
    opts["dtype"] = options.resolved_dtype()
    opts["size"] = list(options.size) if options.size else None
    filters = options.event_filters()
    extra: dict[str, Any] = {}
    if filters:  # canonical specs, in order: another filter list is another store
        opts["filters"] = [f.spec for f in filters]
        extra["filtered_sensor_size"] = list(filtered_sensor_size(filters, index.sensor_size))
    else:  # absent, so stores made without filters keep their parameter hash
        del opts["filters"]
    return {
        "dataset": index.dataset,
        "conversion": opts,
        "sensor_size": list(index.sensor_size),
        **extra,
        "read_options": index.read_options,
        "split_info": index.split_info,
        "layout_notes": index.notes,
        "tmkt_version": __version__,
        "store_format_version": STORE_FORMAT_VERSION,
    }


def index_hash(index: DatasetIndex) -> str:
    """Hash of the sample list (ids, files, labels, splits, slices): detects a changed raw tree."""
    names = [f.name for f in fields(SampleSpec)]  # asdict's dicts, without its deep copies
    samples = [{name: getattr(s, name) for name in names} for s in index.samples]
    return params_hash({"samples": samples, "classes": index.classes})


@dataclass
class ConvertResult:
    """What a conversion did: the store, shard and file counts, time, failures."""

    store: Path
    n_samples: int
    shards_total: int
    shards_done_before: int
    files_converted: int
    files_failed: int
    events: int
    seconds: float
    failures: list[dict[str, str]]
    #: shards whose record or file was damaged or missing (one line each), converted again
    repaired: list[str] = field(default_factory=list)
    #: metadata found damaged and written again from the parameters (one line each: the root
    #: ``zarr.json``, ``frames/zarr.json``)
    rebuilt: list[str] = field(default_factory=list)


def prepare_store(
    index: DatasetIndex, out: Path, options: ConvertOptions, *, overwrite: bool
) -> tuple[StoreGeometry, str, set[int], dict[int, str], list[str]]:
    """Create the store or check an existing one; returns its geometry, key, the finished shards
    (record and file intact), the damaged ones (what is wrong), which are converted again, and the
    metadata written again (one line each: a damaged root ``zarr.json`` or ``frames/zarr.json``)."""
    params = store_params(index, options)
    sample_list_hash = index_hash(index)
    key = params_hash({"params": params, "index": sample_list_hash})
    shape = frame_shape(index, options)
    dtype = options.resolved_dtype()
    shard = options.shard_samples or default_shard_samples(
        len(index.samples), shape, np.dtype(dtype).itemsize
    )
    geo = StoreGeometry(len(index.samples), shape, dtype, shard)
    attrs = {
        "dataset": index.dataset,
        "classes": list(index.classes),
        "params": params,
        "params_hash": key,
        "index_hash": sample_list_hash,
        "tmkt_version": params["tmkt_version"],
        "split_info": index.split_info,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if "source_metadata" in index.notes:
        attrs["source_metadata"] = index.notes["source_metadata"]
        attrs["synthetic"] = bool(index.notes["source_metadata"].get("synthetic", False))
    if out.exists():
        if not is_store(out):
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            else:
                raise ConvertError(f"{out}: exists and is not a tmkt store; choose another output path")
        elif root_damaged(out):  # the attributes cannot be trusted: the frames array and the records decide
            if made_as(out, geo, key):
                rebuild_root(out, geo, attrs)
                checked = check_shards(out, geo.n_shards, key, upgrade=True)
                rebuilt = ["file zarr.json (the store's attributes) crc32c mismatch, rebuilt"]
                return geo, key, checked.done, checked.damaged, rebuilt
            if not overwrite:
                raise ConvertError(
                    f"{out}/zarr.json: damaged (crc32c mismatch), and the store's frames or records were "
                    "made with other parameters or another sample list; "
                    "use --overwrite to replace it or choose another path"
                )
            remove_store(out)
        else:
            group = open_store(out, require_complete=False)
            same = group.attrs.get("params_hash") == key and group.attrs.get("shard_samples") == shard
            if same:
                checked = check_shards(out, geo.n_shards, key, upgrade=True)
                return geo, key, checked.done, checked.damaged, repair_frames_metadata(out, geo)
            if not overwrite:
                old = group.attrs.get("params", {}).get("conversion", {})
                raise ConvertError(
                    f"{out}: holds frames made with other parameters or another sample list "
                    f"(stored frames={old.get('frames')}, split_by={old.get('split_by')}, "
                    f"remainder={old.get('remainder')}, size={old.get('size')}, "
                    f"filters={old.get('filters', [])}); "
                    "use --overwrite to replace it or choose another path"
                )
            remove_store(out)
    create_store(out, geo, attrs)
    return geo, key, set(), {}, []


def run_shards(
    jobs: list[ShardJob],
    *,
    workers: int | None,
    scheduler: str | None,
    on_result: Callable[[dict[str, Any]], None],
) -> None:
    """Run shard jobs on dask: local threads, or a dask.distributed cluster at ``scheduler``."""
    import dask

    if not jobs:
        return
    # traverse=False: a job is one opaque argument (dask would otherwise walk every SampleSpec)
    tasks = [dask.delayed(convert_shard, pure=False)(dask.delayed(job, traverse=False)) for job in jobs]
    if scheduler:
        from distributed import Client, as_completed

        try:
            client = Client(scheduler, timeout="10s") if isinstance(scheduler, str) else scheduler
        except OSError as err:
            raise ConvertError(f"cannot reach dask scheduler {scheduler}: {err}") from None
        try:
            futures = client.compute(tasks)
            for fut in as_completed(futures):
                on_result(fut.result())
        finally:
            if isinstance(scheduler, str):
                client.close()
        return
    from dask.callbacks import Callback

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if isinstance(result, dict) and "shard" in result:
                on_result(result)

    with _Progress():
        dask.compute(*tasks, scheduler="threads", num_workers=workers or None)


def check_output_place(raw_root: str | Path, out: str | Path) -> None:
    """Refuse, before any work, a store that cannot be written (:func:`~tmkt_data.outputs.check_writable`)
    or that lies inside the raw tree (the next scan would read it as a class folder); on object
    storage, one whose bucket is missing or cannot be reached."""
    if is_url(out):
        remote = store_location(out)
        check_bucket(remote)
        damage = damaged_metadata(remote) if remote.exists() else None
        if damage is not None:
            raise ConvertError(f"{remote}: damaged store ({damage}); delete it or choose another output path")
        return
    raw, store = Path(raw_root).resolve(), Path(out).resolve()
    if store == raw or raw in store.parents:
        raise ConvertError(
            f"{store}: the store is inside the raw tree {raw}, where a later scan would read it as data; "
            "expected an output path outside the raw tree"
        )
    check_writable(store)
    damage = damaged_metadata(store) if store.is_dir() else None
    if damage is not None:
        raise ConvertError(f"{store}: damaged store ({damage}); delete it or choose another output path")


@contextmanager
def _writing(out: Path) -> Iterator[None]:
    """An ``OSError`` while the store is written (a full disk) is one line; the shards already
    recorded stay, so running the same command again resumes."""
    try:
        yield
    except OSError as err:
        if err.errno is None or isinstance(err, BrokenPipeError):  # a connection, not the file system
            raise
        raise cannot_write(out, err, resumable=True) from None


def convert(
    dataset: str,
    raw_root: str | Path,
    out: str | Path,
    options: ConvertOptions,
    *,
    workers: int | None = None,
    scheduler: Any = None,
    on_error: str = "skip",
    overwrite: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> ConvertResult:
    """Convert the dataset tree at ``raw_root`` into the store ``out`` (resuming if possible).

    Args:
        dataset: layout name (``tmkt_data.layouts.LAYOUTS``).
        raw_root: the dataset's folder.
        out: the store path.
        options: binning/resize/dtype parameters.
        workers: threads for the local scheduler (None: one per core).
        scheduler: a dask.distributed address (``tcp://host:8786``) or Client.
        on_error: ``skip`` (record the failure, go on) or ``fail`` (stop).
        overwrite: replace a store made with other parameters.
        on_result: called with each finished shard's counts (progress).
        on_start: called with (files to convert, total files) before work starts.
    """
    if on_error not in ("skip", "fail"):
        raise ConvertError(f"--on-error {on_error!r}: expected skip or fail")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConvertError(f"--workers {workers!r}: expected a positive number of threads")
    options.validate()
    check_output_place(raw_root, out)
    t0 = time.perf_counter()
    index = scan(dataset, raw_root, **options.layout_options)
    if not index.samples:
        raise ConvertError(f"{index.root}: no samples found for dataset {dataset}")
    filtered_sensor_size(options.event_filters(), index.sensor_size)  # a crop must fit the sensor
    out = store_location(out).resolve()
    with _writing(out), store_lock(out, "tmkt-data convert"):  # one writer at a time
        geo, key, done, damaged, rebuilt = prepare_store(index, out, options, overwrite=overwrite)
        index_light = replace(index, samples=[])
        jobs = []
        for k in range(geo.n_shards):
            if k in done:
                continue
            a, b = geo.shard_range(k)
            jobs.append(
                ShardJob(
                    str(out) if isinstance(out, Path) else out,
                    k,
                    key,
                    tuple(index.samples[a:b]),
                    index_light,
                    options,
                    on_error,
                )
            )
        todo_files = sum(len(j.samples) for j in jobs)
        if on_start is not None:
            on_start(todo_files, geo.n_samples)
        totals = {"files": 0, "failed": 0, "events": 0}

        def _collect(res: dict[str, Any]) -> None:
            for name in totals:
                totals[name] += res[name]
            if on_result is not None:
                on_result(res)

        run_shards(jobs, workers=workers, scheduler=scheduler, on_result=_collect)
        group = finalize_store(out, {"conversion_seconds": round(time.perf_counter() - t0, 3)})
        failures = list(group.attrs.get("failures", []))
        return ConvertResult(
            store=out,
            n_samples=geo.n_samples,
            shards_total=geo.n_shards,
            shards_done_before=len(done),
            files_converted=totals["files"] - totals["failed"],
            files_failed=len(failures),
            events=totals["events"],
            seconds=time.perf_counter() - t0,
            failures=failures,
            repaired=[damaged[k] for k in sorted(damaged)],
            rebuilt=rebuilt,
        )


__all__ = ["ConvertError", "ConvertOptions", "ConvertResult", "StoreError", "convert", "convert_shard"]
