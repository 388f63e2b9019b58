"""One sample's frames for the frame store: read (or count straight from an AEDAT 2.0 file), filter,
bin, resize; used by :func:`tmkt_data.convert.convert_shard`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tmkt_data.binning import to_frames
from tmkt_data.errors import EventsError
from tmkt_data.filters import apply_filters
from tmkt_data.layouts import DatasetIndex, LayoutError, load_sample
from tmkt_data.layouts.base import SampleSpec
from tmkt_data.resize import resize_frames
from tmkt_data.store import file_sha256

if TYPE_CHECKING:
    from tmkt_data.convert import ConvertOptions


@dataclass
class _Binned:
    """Count frames of one sample and the facts recorded with them."""

    frames: np.ndarray
    n_saturated: int
    n_events: int
    n_binned: int
    duration_us: int
    sha256: str


def _bin_file_directly(
    index: DatasetIndex, spec: SampleSpec, options: ConvertOptions, count_dtype: np.dtype
) -> _Binned | None:
    """Frames counted straight from an AEDAT 2.0 file (:func:`aedat2.read_frames`), or None
    when that does not apply: another format, a time slice, a crop, event filters, or a file
    with special records, wraps or backward steps (those go through :func:`_bin_events`)."""
    from tmkt_data.formats import aedat2

    ro = index.read_options
    if ro.get("format") != "aedat2" or spec.start_us is not None or spec.end_us is not None:
        return None
    if options.filters:  # filters need the event array
        return None
    if index.notes.get("crop") is not None or set(ro) - {"format", "chip", "orientation"}:
        return None
    floats = count_dtype.kind == "f"
    res = aedat2.read_frames(
        index.source(spec),
        n_frames=options.frames,
        split_by=options.split_by,
        remainder=options.remainder,
        chip=ro.get("chip", "auto"),
        orientation=ro.get("orientation", "auto"),
        dtype=np.float32 if floats else np.int32,
    )
    if res is None or tuple(res.sensor_size) != tuple(index.sensor_size):
        return None
    frames, n_sat = res.frames, 0
    if not floats:  # int32 counts -> the integer dtype, as to_frames stores them
        maxv = int(np.iinfo(count_dtype).max)
        n_sat = int(np.count_nonzero(frames > maxv))
        if n_sat and count_dtype.kind == "u":
            np.minimum(frames, maxv, out=frames)  # saturate; int16 wraps in the cast, as in to_frames
        frames = frames.astype(count_dtype)
    return _Binned(frames, n_sat, res.n_events, res.n_binned, res.duration_us, res.metadata["sha256"])


def _bin_events(
    index: DatasetIndex,
    spec: SampleSpec,
    options: ConvertOptions,
    count_dtype: np.dtype,
    cache: dict[str, Any],
) -> _Binned:
    """Frames of one sample from its events: read (or reuse) the recording, slice, bin."""
    from tmkt_data.formats import read_events

    src = str(index.source(spec))
    if cache.get("path") != src:  # several slices of one recording decode it once
        cache.clear()
        cache.update(path=src, rec=read_events(src, **index.read_options))
    rec = cache["rec"]
    events = load_sample(index, spec, rec, check=False)  # to_frames checks the coordinates
    mode = {"n_time_bins" if options.split_by == "time" else "n_event_bins": options.frames}
    n_read = int(events.shape[0])
    if spec.start_us is not None and spec.end_us is not None:
        duration = int(spec.end_us - spec.start_us)
    else:
        duration = int(events["t"][-1] - events["t"][0]) if events.size else 0
    try:
        kept, sensor = apply_filters(events, index.sensor_size, options.event_filters())
        frames, n_sat = to_frames(
            kept,
            sensor,
            **mode,
            remainder=options.remainder,
            dtype=count_dtype,
            return_saturation=True,
        )
    except EventsError as err:
        w, h = index.sensor_size
        raise LayoutError(f"{src}: {err} (the {w}x{h} sensor expected for {index.dataset})") from None
    # "last" keeps every event left by the filters; "drop" loses the remainder, so count what
    # the frames hold
    n_binned = (
        int(kept.shape[0]) if options.remainder == "last" else int(round(float(frames.sum(dtype=np.float64))))
    )
    sha = rec.metadata.get("sha256") or file_sha256(src)  # readers hash what they read
    return _Binned(frames, int(n_sat), n_read, n_binned, duration, sha)


def sample_frames(
    index: DatasetIndex, spec: SampleSpec, options: ConvertOptions, cache: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Frames of one sample in the stored dtype, its counts and the source file's sha256.

    Counts: ``n_events`` (events of the sample, before any filter), ``n_binned``
    (events the frames hold before resizing, after the filters), ``n_saturated``
    (cells clipped by an integer dtype), ``duration_us`` (slice length, or
    first-to-last event time, before the filters).
    ``cache`` keeps the last recording read, so several time slices of one file
    (DVS Gesture, N-Omniglot) decode it once. Whole AEDAT 2.0 files are counted
    straight from their bytes when they allow it (the same frames, faster).
    """
    dtype = options.resolved_dtype()
    resized = options.size is not None and options.resize != "none"
    count_dtype = np.dtype(np.float32 if (resized or dtype.startswith("float")) else dtype)
    b = _bin_file_directly(index, spec, options, count_dtype)
    if b is None:
        b = _bin_events(index, spec, options, count_dtype, cache)
    frames = resize_frames(b.frames, options.size, options.resize) if resized else b.frames
    counts = {
        "n_events": b.n_events,
        "n_binned": b.n_binned,
        "n_saturated": b.n_saturated,
        "duration_us": b.duration_us,
        "source_sha256": b.sha256,
    }
    return frames.astype(dtype, copy=False), counts
