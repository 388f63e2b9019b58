"""DVS-like synthetic events from still images (``docs/formats.md`` §6).

The output is **synthetic**: a model of a DVS pixel array looking at an image
that moves on a virtual monitor. It is never a real recording and is never to be
named as, or mixed with, a real dataset (N-MNIST, CIFAR10-DVS...). Every file
tree written here carries a ``synthetic.json`` with ``"synthetic": true``, the
description ``"DVS-like synthetic events"``, every parameter and the seed.

Model, per recording:

1. **Intensity.** The source image (``H x W`` grey or ``H x W x 3`` RGB, uint8
   sRGB or float in [0, 1]) is resized to ``render_size`` in sRGB space (as a
   display scaler would; ``resample``, default bicubic, clipped to [0, 1]),
   then linearised (sRGB EOTF) and reduced to Rec. 709 luminance ``I`` in [0, 1].
   Outside the image the monitor shows ``background`` (linear luminance). The
   pixel sees ``L = log(I + eps)``.
2. **Motion.** The rendered image (one render pixel = one sensor pixel) is
   placed centred on the sensor and displaced by ``(dx(t), dy(t))`` sensor
   pixels. Each sensor pixel integrates the luminance over its area; at a
   1:1 scale with a sub-pixel shift, area resampling equals bilinear
   interpolation, which is what is computed. The exact transform from source
   pixels to sensor pixels is in :func:`pixel_transform`.

   * ``saccade``: three straight moves of ``saccade_us`` each (N-MNIST-like,
     ~300 ms) along an equilateral triangle of side ``saccade_side_px``
     (down-right, up-right, left, back to the start; centroid at the sensor
     centre), each with a minimum-jerk profile (speed zero at both ends). Read
     off the real N-MNIST samples (event centroids and ON/OFF centroid offsets
     per 20 ms, event shares per saccade ~35/31/34 %), so approximate.
   * ``rcls``: repeated closed-loop smooth motion (CIFAR10-DVS-like): a circle
     of radius ``rcls_radius_px``, ``rcls_cycles`` turns of ``rcls_period_us``
     each (the real trajectory is unverified).
   * ``static``: no motion for ``static_us`` (for tests and noise studies: with
     noise off it makes no events).

   ``L`` is sampled at ``sample_rate_hz`` (>= 1 kHz); an interval where some
   pixel's ``|dL|`` exceeds ``max_delta_log`` (default: the smaller mean
   threshold) is split into up to ``max_substeps`` equal sub-steps along the path.
3. **Pixel.** ``L_ref`` starts at ``L(0)``. Thresholds ``C_on, C_off ~ N(c_on,
   sigma), N(c_off, sigma)`` per pixel, clamped to ``>= c_min``, drawn once per
   recording from the recording's seeded generator. Between two samples ``L`` is
   linear in time; every time ``L - L_ref`` reaches ``C_on`` one ON event is
   emitted and ``L_ref += C_on`` (exactly one threshold, never snapped to ``L``);
   likewise OFF with ``C_off``. A pixel crossing k thresholds in one step emits
   k events. The event time is the linearly interpolated crossing time, rounded
   to the nearest integer microsecond.
4. **Refractory period** (``refractory_us``, 0 = off, the default): an event
   less than ``refractory_us`` after the pixel's last *emitted* event is
   dropped, but ``L_ref`` still advances by its threshold (so the reference
   keeps following ``L`` in whole-threshold steps, no burst at the end of the
   period, no snapping).
5. **Leak** (``leak_rate_hz``, off by default): ``L_ref`` drifts down by
   ``leak_rate_hz * C_on`` per second (v2e's model), so a still pixel emits ON
   events at about ``leak_rate_hz``. The drift is linear in time, so crossing
   times stay exactly interpolated.
6. **Shot noise** (``shot_rate_hz``, off by default): independent Poisson
   events per pixel at that rate over the recording, polarity 50/50, uniform
   times; they do not move ``L_ref`` and ignore the refractory period.

Known gaps: no photoreceptor low-pass, LCD refresh artefacts, latency, jitter
or bias-dependent noise; real N-MNIST digits were MNIST digits on an LCD, these
are whatever images are given.

Timestamps count from the start of the motion (t = 0), not from the first event.

Calibration (defaults; ``tests/test_synth.py`` states and checks the ranges):
the 1,797 scikit-learn digits at 28x28 on 34x34 with saccades give 4,084
events per sample (real N-MNIST files: 2,723-5,028, mean 4,164), a 294 ms span
(real 302-311 ms), ON fraction 0.508 (real 0.498), std x ~5.1 px (real 5.35),
std y ~8.9 px (real 6.1: the 8x8 digits fill the frame height, MNIST digits a
20x20 box in 28x28). In the real files ON events trail the motion (the ON
centroid lies behind the OFF centroid), as for a dark digit on a bright screen
or an inverted polarity bit; this model, given white-on-black digits, puts ON
at the leading edges. Nothing here flips polarity.

Files: :func:`write_synth_tree` (recordings in memory) and
:func:`synthesize_tree` (streams, for the command line) write a tree for
``tmkt-data convert`` (``folder`` or ``nmnist`` layout) with ATIS ``.bin`` or
AEDAT 2.0 files and ``synthetic.json`` at the root.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numba
import numpy as np

from tmkt_data.errors import TmktError
from tmkt_data.events import EVENT_DTYPE

__all__ = [
    "DESCRIPTION",
    "FILE_FORMATS",
    "LAYOUTS",
    "METADATA_FILE",
    "MOTIONS",
    "SIM_OPTIONS",
    "SIM_VERSION",
    "SimParams",
    "SynthError",
    "TreeWriter",
    "check_output",
    "crossing_events",
    "motion_path",
    "params_from_options",
    "parse_per_class",
    "parse_size",
    "pixel_transform",
    "render_luminance",
    "sample_rng",
    "simulate_dataset",
    "simulate_image",
    "synthesize_tree",
    "threshold_maps",
    "write_synth_tree",
]

#: Version of the simulator model; bump when the same parameters would give other events.
SIM_VERSION = "1.0"
DESCRIPTION = "DVS-like synthetic events"
#: File name of the metadata written at the tree root (the ``folder`` layout reads it first).
METADATA_FILE = "synthetic.json"
MOTIONS = ("saccade", "rcls", "static")
LAYOUTS = ("folder", "nmnist")
#: file format -> file extension
FILE_FORMATS = {"atis_bin": ".bin", "aedat2": ".aedat"}
RESAMPLE = ("bicubic", "bilinear", "area", "nearest", "lanczos")
#: AEDAT 2.0 files are written for a DVS128 in this orientation, which is what
#: ``tmkt_data.formats.aedat2.read`` (and so ``convert``) uses by default for DVS128,
#: so the events read back are exactly the simulated ones.
AEDAT2_CHIP = "dvs128"
AEDAT2_ORIENTATION = "spikingjelly"

_NEVER = -(1 << 62)


class SynthError(TmktError, ValueError):
    """Bad simulator input: a parameter, an image, a layout or an output path."""


@dataclass(frozen=True)
class SimParams:
    """Every parameter of the simulator (all recorded in the metadata).

    Attributes:
        c_on, c_off: mean ON/OFF log-intensity thresholds. With ``eps`` they set
            the event count; 0.25 and ``eps`` 0.24 give the real N-MNIST samples'
            mean count (~4,160) for sklearn digits at 28x28 on 34x34 (see
            ``tests/test_synth.py`` for the calibration ranges).
        sigma: standard deviation of the per-pixel threshold mismatch.
        c_min: lower clamp of a pixel's threshold.
        refractory_us: refractory period after an emitted event (0 = off); see
            the module docstring (``L_ref`` advances during it).
        leak_rate_hz: leak ON events per pixel per second (0 = off).
        shot_rate_hz: shot-noise events per pixel per second (0 = off).
        eps: offset in ``log(I + eps)``, ``I`` linear luminance in [0, 1]; it
            stands for the monitor's black level, lens flare and dark current, and
            limits the contrast (calibrated with ``c_on``/``c_off``).
        motion: ``"saccade"``, ``"rcls"`` or ``"static"``.
        sensor_size: (W, H) of the sensor.
        render_size: (W, H) in sensor pixels that the whole source image covers.
        resample: how the source image is resized to ``render_size`` (in sRGB space).
        background: linear luminance of the monitor around the image.
        saccade_us: duration of each of the three saccades (105 ms: with the
            minimum-jerk profile the events then span ~296 ms, the real samples'
            span 302-311 ms).
        saccade_side_px: side of the equilateral saccade triangle, vertices
            (-s/2, -h/3), (0, 2h/3), (s/2, -h/3) with h = s sqrt(3)/2, sensor pixels
            (x right, y down).
        rcls_radius_px, rcls_period_us, rcls_cycles: the ``rcls`` circle.
        static_us: duration of a ``static`` recording.
        sample_rate_hz: base sampling rate of ``L`` (>= 1000).
        max_delta_log: largest ``|dL|`` of any pixel per step before the step is
            subdivided (None: ``min(c_on, c_off)``).
        max_substeps: most sub-steps per base step.
        seed: base seed; sample ``i`` of a data set uses ``SeedSequence(seed, spawn_key=(i,))``.
    """

    c_on: float = 0.25
    c_off: float = 0.25
    sigma: float = 0.03
    c_min: float = 0.01
    refractory_us: int = 0
    leak_rate_hz: float = 0.0
    shot_rate_hz: float = 0.0
    eps: float = 0.24
    motion: str = "saccade"
    sensor_size: tuple[int, int] = (34, 34)
    render_size: tuple[int, int] = (28, 28)
    resample: str = "bicubic"
    background: float = 0.0
    saccade_us: int = 105_000
    saccade_side_px: float = 5.0
    rcls_radius_px: float = 4.0
    rcls_period_us: int = 250_000
    rcls_cycles: int = 4
    static_us: int = 100_000
    sample_rate_hz: float = 1000.0
    max_delta_log: float | None = None
    max_substeps: int = 32
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`SynthError` (one line) for the first invalid parameter."""

        def bad(name: str, expected: str) -> SynthError:
            return SynthError(f"synth parameter {name}={getattr(self, name)!r}: expected {expected}")

        for name in ("c_on", "c_off", "eps"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise bad(name, "a positive number")
        if not (math.isfinite(self.c_min) and self.c_min > 0):
            raise bad("c_min", "a positive number (thresholds are clamped to >= c_min)")
        for name in ("sigma", "leak_rate_hz", "shot_rate_hz", "saccade_side_px", "rcls_radius_px"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise bad(name, "a number >= 0")
        if not (isinstance(self.refractory_us, int | np.integer) and self.refractory_us >= 0):
            raise bad("refractory_us", "an integer >= 0 (0 = off)")
        if self.motion not in MOTIONS:
            raise bad("motion", f"one of {', '.join(MOTIONS)}")
        if self.resample not in RESAMPLE:
            raise bad("resample", f"one of {', '.join(RESAMPLE)}")
        for name in ("sensor_size", "render_size"):
            v = getattr(self, name)
            if not (len(v) == 2 and all(isinstance(k, int | np.integer) and k >= 1 for k in v)):
                raise bad(name, "(width, height) with positive integers")
        if not (math.isfinite(self.background) and 0.0 <= self.background <= 1.0):
            raise bad("background", "a linear luminance in [0, 1]")
        for name in ("saccade_us", "rcls_period_us", "static_us", "rcls_cycles", "max_substeps"):
            v = getattr(self, name)
            if not (isinstance(v, int | np.integer) and v >= 1):
                raise bad(name, "a positive integer")
        if not (math.isfinite(self.sample_rate_hz) and self.sample_rate_hz >= 1000.0):
            raise bad("sample_rate_hz", "a rate >= 1000 Hz")
        if self.max_delta_log is not None and not (
            math.isfinite(self.max_delta_log) and self.max_delta_log > 0
        ):
            raise bad("max_delta_log", "None or a positive number")
        if not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise bad("seed", "an integer >= 0")

    @property
    def duration_us(self) -> int:
        """Length of the simulated motion."""
        if self.motion == "saccade":
            return 3 * int(self.saccade_us)
        if self.motion == "rcls":
            return int(self.rcls_cycles) * int(self.rcls_period_us)
        return int(self.static_us)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["sensor_size"] = [int(v) for v in self.sensor_size]
        d["render_size"] = [int(v) for v in self.render_size]
        d["max_delta_log_used"] = self.resolved_max_delta_log()
        return d

    def resolved_max_delta_log(self) -> float:
        return float(min(self.c_on, self.c_off) if self.max_delta_log is None else self.max_delta_log)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# --------------------------------------------------------------------------- options (command line, recipes)

#: What a command line or a recipe may set (:func:`params_from_options`): ``threshold`` (mean ON and
#: OFF threshold, overridden by ``c_on`` / ``c_off``), ``sensor`` and ``render`` (sizes, see
#: :func:`parse_size`), and the :class:`SimParams` fields of the same name.
SIM_OPTIONS = (
    "threshold",
    "c_on",
    "c_off",
    "sigma",
    "eps",
    "refractory_us",
    "leak_rate_hz",
    "shot_rate_hz",
    "motion",
    "saccade_side_px",
    "sensor",
    "render",
    "resample",
    "seed",
)


def _count(value: Any) -> int | None:
    """A non-negative integer from an int or a digit string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value) if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_size(value: Any, what: str = "size") -> tuple[int, int]:
    """``34`` or ``"34"`` -> (34, 34); ``[W, H]``, ``"W,H"`` or ``"WxH"`` -> (W, H) (sensor pixels).

    Raises:
        SynthError: anything else, or a size below 1.
    """
    if isinstance(value, str):
        parts: list[Any] = value.replace("x", ",").split(",")
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        parts = [value]
    vals = [_count(p) for p in parts]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or any(v is None or v < 1 for v in vals):
        raise SynthError(f"{what} {value!r}: expected S or W,H with positive integers")
    return int(vals[0]), int(vals[1])  # type: ignore[arg-type]


def parse_per_class(value: Any, what: str = "per_class") -> dict[str, int] | None:
    """Recordings per class and split: None -> None (all); ``N`` or ``"N"`` -> both splits N;
    ``{"train": N, "test": M}`` or ``"train=N,test=M"`` -> that mapping (a split left out keeps all
    its images; see :func:`tmkt_data.rgb.per_class_indices`).

    Raises:
        SynthError: a key other than train/test, or a count that is not an integer >= 0.
    """
    if value is None:
        return None
    if isinstance(value, str) and "=" in value:
        items: dict[str, Any] = {}
        for part in value.split(","):
            key, _, v = part.partition("=")
            items[key.strip()] = v
        value = items
    if not isinstance(value, dict):
        n = _count(value)
        if n is None:
            raise SynthError(f"{what} {value!r}: expected N or train=N,test=M with integers >= 0")
        return {"train": n, "test": n}
    out: dict[str, int] = {}
    for key, v in value.items():
        n = _count(v)
        if key not in ("train", "test") or n is None:
            raise SynthError(f"{what} {key}={v}: expected train=N and/or test=M with integers >= 0")
        out[str(key)] = n
    if not out:
        raise SynthError(f"{what} {value!r}: expected train=N and/or test=M with integers >= 0")
    return out


def params_from_options(options: dict[str, Any]) -> SimParams:
    """Validated :class:`SimParams` from command-line or recipe options (keys of :data:`SIM_OPTIONS`).

    A value of None keeps the default. ``threshold`` sets ``c_on`` and ``c_off``
    unless they are given; ``sensor`` and ``render`` go through :func:`parse_size`.

    Raises:
        SynthError: an unknown key or an invalid value (one line naming it).
    """
    unknown = sorted(set(options) - set(SIM_OPTIONS))
    if unknown:
        raise SynthError(
            f"simulator option(s) {', '.join(unknown)}: expected some of {', '.join(SIM_OPTIONS)}"
        )
    kw: dict[str, Any] = {}
    for name in ("c_on", "c_off"):
        v = options.get(name)
        if v is None:
            v = options.get("threshold")
        if v is not None:
            kw[name] = v
    for name, field in (("sensor", "sensor_size"), ("render", "render_size")):
        if options.get(name) is not None:
            kw[field] = parse_size(options[name], name)
    for name in SIM_OPTIONS:
        if name not in ("threshold", "c_on", "c_off", "sensor", "render") and options.get(name) is not None:
            kw[name] = options[name]
    params = SimParams(**kw)
    params.validate()
    return params


# --------------------------------------------------------------------------- image -> luminance


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB EOTF on values in [0, 1]."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _as_unit_float(img: Any) -> np.ndarray:
    """Image as float64 sRGB values in [0, 1], shape (H, W) or (H, W, 3)."""
    a = np.asarray(img)
    ok = (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))) and a.shape[0] >= 1 and a.shape[1] >= 1
    if not ok:
        raise SynthError(f"image of shape {a.shape}: expected (H, W) grey or (H, W, 3) RGB")
    if a.ndim == 3:  # (H, W, 1) is grey, an alpha channel is ignored
        a = a[:, :, 0] if a.shape[2] == 1 else a[:, :, :3]
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float64)
        if not np.all(np.isfinite(f)) or f.min() < 0.0 or f.max() > 1.0:
            raise SynthError("float image has values outside [0, 1]: expected sRGB values in [0, 1]")
        return f
    raise SynthError(f"image of dtype {a.dtype}: expected uint8 (0-255) or float in [0, 1]")


def render_luminance(img: Any, render_size: tuple[int, int], resample: str = "bicubic") -> np.ndarray:
    """Source image -> linear luminance (float64, shape (H_r, W_r)) at ``render_size`` (W_r, H_r).

    The resize is done on the sRGB-encoded values (float, per channel; Pillow
    antialiases when shrinking), clipped to [0, 1], then linearised and mixed to
    Rec. 709 luminance ``0.2126 R + 0.7152 G + 0.0722 B``.
    """
    from PIL import Image

    f = _as_unit_float(img)
    wr, hr = int(render_size[0]), int(render_size[1])
    chans = [f] if f.ndim == 2 else [f[:, :, k] for k in range(3)]
    if (f.shape[1], f.shape[0]) != (wr, hr):
        method = {
            "bicubic": Image.Resampling.BICUBIC,
            "bilinear": Image.Resampling.BILINEAR,
            "area": Image.Resampling.BOX,
            "nearest": Image.Resampling.NEAREST,
            "lanczos": Image.Resampling.LANCZOS,
        }[resample]
        chans = [
            np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((wr, hr), method), np.float64)
            for c in chans
        ]
    chans = [_srgb_to_linear(np.clip(c, 0.0, 1.0)) for c in chans]
    if len(chans) == 1:
        return np.ascontiguousarray(chans[0])
    return np.ascontiguousarray(0.2126 * chans[0] + 0.7152 * chans[1] + 0.0722 * chans[2])


def pixel_transform(params: SimParams, source_shape: tuple[int, ...]) -> dict[str, Any]:
    """The exact source-pixel -> sensor-pixel mapping of one recording (plain JSON).

    Continuous coordinates, pixel (i, j) covering [i, i+1) x [j, j+1), origin
    top-left: ``X = offset_x + dx(t) + u * scale_x``, ``Y = offset_y + dy(t) + v * scale_y``
    for a source point (u, v) and sensor point (X, Y).
    """
    hs, ws = int(source_shape[0]), int(source_shape[1])
    w, h = params.sensor_size
    wr, hr = params.render_size
    return {
        "source_size": [ws, hs],
        "render_size": [int(wr), int(hr)],
        "scale": [wr / ws, hr / hs],
        "offset_px": [(w - wr) / 2.0, (h - hr) / 2.0],
        "formula": "X = offset_x + dx(t) + u * scale_x; Y = offset_y + dy(t) + v * scale_y "
        "(continuous coordinates from the top-left corner; (dx, dy) is the trajectory)",
        "resize": f"{params.resample} in sRGB space, then linear luminance",
        "sensor_sampling": "area (equal to bilinear at 1:1 scale) at each sample time",
    }


# --------------------------------------------------------------------------- motion


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau * tau)


def saccade_vertices(side: float) -> np.ndarray:
    """The four (dx, dy) path vertices (start, after saccade 1, 2, 3 = start) of the equilateral
    triangle of side ``side`` whose centroid is at the origin (x right, y down)."""
    a = side / 2.0
    h = side * math.sqrt(3.0) / 2.0
    return np.array([[-a, -h / 3.0], [0.0, 2.0 * h / 3.0], [a, -h / 3.0], [-a, -h / 3.0]])


def motion_path(params: SimParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample times (us, float64) and displacements ``dx, dy`` (sensor pixels) of the trajectory."""
    total = float(params.duration_us)
    n = int(math.ceil(total * params.sample_rate_hz / 1e6)) + 1
    t = np.linspace(0.0, total, n)
    if params.motion == "saccade":
        v = saccade_vertices(float(params.saccade_side_px))
        seg = np.minimum((t // params.saccade_us).astype(np.int64), 2)
        tau = np.clip((t - seg * params.saccade_us) / params.saccade_us, 0.0, 1.0)
        s = _min_jerk(tau)
        dx = v[seg, 0] + (v[seg + 1, 0] - v[seg, 0]) * s
        dy = v[seg, 1] + (v[seg + 1, 1] - v[seg, 1]) * s
    elif params.motion == "rcls":
        phi = 2.0 * np.pi * t / float(params.rcls_period_us)
        r = float(params.rcls_radius_px)
        dx, dy = r * np.cos(phi), r * np.sin(phi)
    else:
        dx = np.zeros_like(t)
        dy = np.zeros_like(t)
    return t, np.ascontiguousarray(dx), np.ascontiguousarray(dy)


@functools.lru_cache(maxsize=8)
def _cached_path(params: SimParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`motion_path`, computed once per parameter set (read-only arrays)."""
    out = motion_path(params)
    for a in out:
        a.flags.writeable = False
    return out


def trajectory_description(params: SimParams) -> dict[str, Any]:
    """Plain-JSON description of the trajectory (type, geometry, speed, duration)."""
    d: dict[str, Any] = {"type": params.motion, "duration_us": params.duration_us, "units": "sensor pixels"}
    if params.motion == "saccade":
        side = float(params.saccade_side_px)
        d.update(
            saccades=3,
            saccade_us=int(params.saccade_us),
            shape="equilateral triangle: down-right, up-right, left",
            side_px=side,
            vertices_px=saccade_vertices(side).tolist(),
            profile="minimum jerk per saccade: s = 10 tau^3 - 15 tau^4 + 6 tau^5",
            peak_speed_px_per_s=1.875 * side / (params.saccade_us / 1e6),
            geometry="approximate, read off the real N-MNIST samples (unverified)",
        )
    elif params.motion == "rcls":
        r = float(params.rcls_radius_px)
        d.update(
            shape="circle dx = r cos(2 pi t / P), dy = r sin(2 pi t / P)",
            radius_px=r,
            period_us=int(params.rcls_period_us),
            cycles=int(params.rcls_cycles),
            speed_px_per_s=2.0 * np.pi * r / (params.rcls_period_us / 1e6),
            geometry="CIFAR10-DVS-like closed loop (the real trajectory is unverified)",
        )
    return d


# --------------------------------------------------------------------------- kernels


@numba.njit(nogil=True, cache=True)
def _render_log(img, pad, ox, oy, dx, dy, eps, out):  # pragma: no cover - compiled
    """``out[y, x] = log(I + eps)``: I is ``img`` (the rendered image surrounded by
    ``pad`` pixels of background) displaced by (dx, dy) and sampled over each
    sensor pixel's area (bilinear weights, exact at 1:1 scale)."""
    h, w = out.shape
    fu0 = -ox - dx
    i0 = int(math.floor(fu0))
    wx = fu0 - i0
    i0 += pad
    fv0 = -oy - dy
    j0 = int(math.floor(fv0))
    wy = fv0 - j0
    j0 += pad
    # the fractional parts are the same for every pixel: one displacement per frame
    w00 = (1.0 - wy) * (1.0 - wx)
    w01 = (1.0 - wy) * wx
    w10 = wy * (1.0 - wx)
    w11 = wy * wx
    for y in range(h):
        r0 = img[j0 + y]
        r1 = img[j0 + y + 1]
        for x in range(w):
            c = i0 + x
            val = w00 * r0[c] + w01 * r0[c + 1] + w10 * r1[c] + w11 * r1[c + 1]
            out[y, x] = math.log(val + eps)


@numba.njit(nogil=True, cache=True)
def _crossings(
    l0, l1, t0, t1, ref, c_on, c_off, last, refr, leak, xs_of, ys_of, buf, n, k_start
):  # pragma: no cover
    """Process one linear step (t0, l0) -> (t1, l1) of pixels ``k_start..`` (flat arrays).

    ``leak`` is the downward drift of ``L_ref`` per us in units of ``C_on``; it is
    applied as ``L' = L + leak * C_on * t``. Events go to ``buf`` (int64 (cap, 4):
    t, x, y, p) from row ``n``. A pixel's state (``ref``, ``last``) is written only
    once all its events fit, so when ``buf`` is full the function returns
    ``(n, k)`` with pixel ``k`` untouched: the caller grows ``buf`` and calls again
    from ``k``. Returns ``(n, len(l0))`` when done.
    """
    cap = buf.shape[0]
    dt = t1 - t0
    npx = l0.shape[0]
    for k in range(k_start, npx):
        a = l0[k]
        b = l1[k]
        if leak != 0.0:
            a += leak * c_on[k] * t0
            b += leak * c_on[k] * t1
        r = ref[k]
        lst = last[k]
        con = c_on[k]
        coff = c_off[k]
        m = n
        # ON: L rises through r + con, r + 2 con, ...; OFF: L falls through r - coff, ...
        # (sign * (b - r) and r + sign * step are exact, so both directions share one loop)
        pol = -1
        if b - r >= con:
            pol, sign, step = 1, 1.0, con
        elif r - b >= coff:
            pol, sign, step = 0, -1.0, coff
        if pol >= 0:
            while sign * (b - r) >= step:
                r += sign * step
                frac = (r - a) / (b - a)
                if frac < 0.0:
                    frac = 0.0
                elif frac > 1.0:
                    frac = 1.0
                ti = np.int64(math.floor(t0 + dt * frac + 0.5))
                if refr == 0 or ti - lst >= refr:
                    if m >= cap:
                        return n, k
                    buf[m, 0] = ti
                    buf[m, 1] = xs_of[k]
                    buf[m, 2] = ys_of[k]
                    buf[m, 3] = pol
                    m += 1
                    lst = ti
        ref[k] = r
        last[k] = lst
        n = m
    return n, npx


@numba.njit(nogil=True, cache=True)
def _grow(buf, n):  # pragma: no cover - compiled
    nb = np.empty((buf.shape[0] * 2, 4), dtype=np.int64)
    nb[:n] = buf[:n]
    return nb


@numba.njit(nogil=True, cache=True)
def _simulate_kernel(
    img, pad, ox, oy, eps, w, h, times, dxs, dys, c_on, c_off, refr, leak, max_dl, max_sub, cap
):  # pragma: no cover - compiled
    """Whole recording: render ``L`` along the path (with adaptive sub-steps), emit crossings.

    Returns (events int64 (n, 4): t, x, y, p in emission order, number of rendered
    samples).
    """
    npx = w * h
    prev = np.empty((h, w))
    nxt = np.empty((h, w))
    sub = np.empty((h, w))
    _render_log(img, pad, ox, oy, dxs[0], dys[0], eps, prev)
    ref = prev.ravel().copy()
    last = np.full(npx, _NEVER, dtype=np.int64)
    xs_of = np.empty(npx, dtype=np.int64)
    ys_of = np.empty(npx, dtype=np.int64)
    for k in range(npx):
        xs_of[k] = k % w
        ys_of[k] = k // w
    cf_on = c_on.ravel()
    cf_off = c_off.ravel()
    buf = np.empty((max(cap, 16), 4), dtype=np.int64)
    n = 0
    rendered = 1
    pf = prev.ravel()
    for i in range(times.shape[0] - 1):
        _render_log(img, pad, ox, oy, dxs[i + 1], dys[i + 1], eps, nxt)
        rendered += 1
        nf = nxt.ravel()
        mx = 0.0
        for k in range(npx):
            d = abs(nf[k] - pf[k])
            if d > mx:
                mx = d
        nsub = 1
        if mx > max_dl:
            nsub = min(int(math.ceil(mx / max_dl)), max_sub)
        ta = times[i]
        for j in range(1, nsub + 1):
            if j < nsub:
                f = j / nsub
                sx = dxs[i] + f * (dxs[i + 1] - dxs[i])
                sy = dys[i] + f * (dys[i + 1] - dys[i])
                _render_log(img, pad, ox, oy, sx, sy, eps, sub)
                rendered += 1
                tb = times[i] + f * (times[i + 1] - times[i])
                tgt = sub.ravel()
            else:
                tb = times[i + 1]
                tgt = nf
            k = 0
            while k < npx:
                n, k = _crossings(
                    pf, tgt, ta, tb, ref, cf_on, cf_off, last, refr, leak, xs_of, ys_of, buf, n, k
                )
                if k < npx:
                    buf = _grow(buf, n)
            pf[:] = tgt
            ta = tb
    return buf[:n].copy(), rendered


def crossing_events(
    t: Sequence[float],
    logs: np.ndarray,
    c_on: np.ndarray,
    c_off: np.ndarray,
    *,
    refractory_us: int = 0,
    leak_rate_hz: float = 0.0,
    ref0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The pixel model alone on given log intensities (for checks and other front ends).

    Args:
        t: sample times (us), increasing, length N.
        logs: ``L`` at those times, shape (N, H, W) (or (N, P) for P pixels on one row).
        c_on, c_off: per-pixel thresholds, shape (H, W) (or (P,)).
        refractory_us, leak_rate_hz: as in :class:`SimParams`.
        ref0: initial ``L_ref`` (default ``logs[0]``).

    Returns:
        (events sorted by t with x = column, y = row, final ``L_ref``).
    """
    t = np.asarray(t, dtype=np.float64)
    logs = np.asarray(logs, dtype=np.float64)
    if logs.ndim == 2:
        logs = logs[:, None, :]
    if logs.ndim != 3 or logs.shape[0] != t.shape[0] or t.shape[0] < 1:
        raise SynthError(
            f"logs of shape {logs.shape} and {t.shape[0]} times: expected (N, H, W) with N = len(t)"
        )
    if np.any(np.diff(t) <= 0):
        raise SynthError("sample times must increase strictly")
    _, h, w = logs.shape
    con = np.ascontiguousarray(np.broadcast_to(np.asarray(c_on, np.float64).reshape(-1), (h * w,)))
    coff = np.ascontiguousarray(np.broadcast_to(np.asarray(c_off, np.float64).reshape(-1), (h * w,)))
    if np.any(con <= 0) or np.any(coff <= 0):
        raise SynthError("thresholds must be positive")
    ref = (logs[0] if ref0 is None else np.asarray(ref0, np.float64)).reshape(-1).copy()
    last = np.full(h * w, _NEVER, dtype=np.int64)
    xs_of = np.tile(np.arange(w, dtype=np.int64), h)
    ys_of = np.repeat(np.arange(h, dtype=np.int64), w)
    buf = np.empty((16, 4), dtype=np.int64)
    n = 0
    leak = float(leak_rate_hz) * 1e-6
    for i in range(t.shape[0] - 1):
        l0 = np.ascontiguousarray(logs[i].reshape(-1))
        l1 = np.ascontiguousarray(logs[i + 1].reshape(-1))
        k = 0
        while k < h * w:
            n, k = _crossings(
                l0,
                l1,
                t[i],
                t[i + 1],
                ref,
                con,
                coff,
                last,
                int(refractory_us),
                leak,
                xs_of,
                ys_of,
                buf,
                n,
                k,
            )
            if k < h * w:
                buf = _grow(buf, n)
    return _to_events(buf[:n]), ref.reshape(h, w)


def _to_events(rows: np.ndarray) -> np.ndarray:
    ev = np.empty(rows.shape[0], dtype=EVENT_DTYPE)
    ev["t"] = rows[:, 0]
    ev["x"] = rows[:, 1]
    ev["y"] = rows[:, 2]
    ev["p"] = rows[:, 3]
    order = np.argsort(ev["t"], kind="stable")
    return ev[order]


# --------------------------------------------------------------------------- one image


def threshold_maps(params: SimParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (C_on, C_off) maps of shape (H, W), fixed for one recording."""
    w, h = params.sensor_size
    c_on = np.maximum(rng.normal(params.c_on, params.sigma, (h, w)), params.c_min)
    c_off = np.maximum(rng.normal(params.c_off, params.sigma, (h, w)), params.c_min)
    return c_on, c_off


def _shot_noise(params: SimParams, rng: np.random.Generator) -> np.ndarray:
    w, h = params.sensor_size
    lam = params.shot_rate_hz * params.duration_us / 1e6
    counts = rng.poisson(lam, h * w)
    n = int(counts.sum())
    pix = np.repeat(np.arange(h * w), counts)
    rows = np.empty((n, 4), dtype=np.int64)
    rows[:, 0] = rng.integers(0, params.duration_us + 1, n)
    rows[:, 1] = pix % w
    rows[:, 2] = pix // w
    rows[:, 3] = rng.integers(0, 2, n)
    return rows


def simulate_image(
    img: Any, params: SimParams, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Simulate one recording of a still image moving on a virtual monitor.

    Args:
        img: (H, W) grey or (H, W, 3) RGB image, uint8 sRGB or float sRGB in [0, 1].
        params: simulator parameters.
        rng: the recording's generator (threshold mismatch, shot noise); an int
            seeds a new one; None uses ``params.seed``.

    Returns:
        (events, meta): canonical events sorted by t (t in us from the start of
        the motion, p in {0, 1}) and plain-JSON facts (counts, duration, ON
        fraction, threshold means, samples rendered, pixel transform).
    """
    params.validate()
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(params.seed if rng is None else rng)
    lum = render_luminance(img, params.render_size, params.resample)
    w, h = (int(v) for v in params.sensor_size)
    wr, hr = (int(v) for v in params.render_size)
    t, dx, dy = _cached_path(params)
    c_on, c_off = threshold_maps(params, rng)
    ox, oy = (w - wr) / 2.0, (h - hr) / 2.0
    # background border wide enough for every sample position of the sensor
    reach = max(abs(ox), abs(oy), abs(w - ox - wr), abs(h - oy - hr)) + float(
        max(np.abs(dx).max(), np.abs(dy).max())
    )
    pad = int(math.ceil(reach)) + 2
    padded = np.pad(lum, pad, mode="constant", constant_values=float(params.background))
    rows, rendered = _simulate_kernel(
        padded,
        pad,
        ox,
        oy,
        float(params.eps),
        w,
        h,
        t,
        dx,
        dy,
        c_on,
        c_off,
        int(params.refractory_us),
        float(params.leak_rate_hz) * 1e-6,
        params.resolved_max_delta_log(),
        int(params.max_substeps),
        8192,
    )
    n_signal = rows.shape[0]
    if params.shot_rate_hz > 0:
        rows = np.concatenate([rows, _shot_noise(params, rng)])
    ev = _to_events(rows)
    n = ev.shape[0]
    on = int(np.count_nonzero(ev["p"]))
    meta = {
        "events": n,
        "signal_events": int(n_signal),
        "shot_events": int(n - n_signal),
        "on_fraction": on / n if n else None,
        "first_us": int(ev["t"][0]) if n else None,
        "last_us": int(ev["t"][-1]) if n else None,
        "c_on_mean": float(c_on.mean()),
        "c_off_mean": float(c_off.mean()),
        "samples_rendered": int(rendered),
        "pixel_transform": pixel_transform(params, np.asarray(img).shape),
    }
    return ev, meta


# --------------------------------------------------------------------------- data sets


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """Generator of sample ``index`` (independent of worker count and of ``limit``)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def simulate_dataset(
    images: Sequence[Any],
    labels: Sequence[int] | None = None,
    ids: Sequence[str] | None = None,
    params: SimParams | None = None,
    workers: int | None = None,
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Simulate every image in parallel threads (the kernels release the GIL).

    Returns (events per image, meta per image); each meta also holds ``index``,
    ``source_id`` and ``label``. Image ``i`` always uses :func:`sample_rng`
    ``(params.seed, i)``, so results do not depend on ``workers``.
    """
    params = SimParams() if params is None else params
    params.validate()
    n = len(images)
    if labels is not None and len(labels) != n:
        raise SynthError(f"{len(labels)} labels for {n} images: expected one label per image")
    if ids is not None and len(ids) != n:
        raise SynthError(f"{len(ids)} ids for {n} images: expected one id per image")
    workers = max(1, int(workers or os.cpu_count() or 1))

    def one(i: int) -> tuple[np.ndarray, dict[str, Any]]:
        ev, meta = simulate_image(images[i], params, sample_rng(params.seed, i))
        meta["index"] = i
        meta["source_id"] = str(ids[i]) if ids is not None else str(i)
        meta["label"] = int(labels[i]) if labels is not None else None
        return ev, meta

    if workers == 1 or n < 2:
        out = [one(i) for i in range(n)]
    else:
        out = [one(0)]  # compiles (or loads the cached kernels) once before the threads start
        with ThreadPoolExecutor(max_workers=workers) as pool:
            out += list(pool.map(one, range(1, n)))
    return [o[0] for o in out], [o[1] for o in out]


# --------------------------------------------------------------------------- files

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
    writer = TreeWriter(
        out_raw,
        class_names,
        params,
        layout=layout,
        file_format=file_format,
        with_split=splits is not None,
        source=source,
        overwrite=overwrite,
    )
    try:
        for i in range(n):
            shape = tuple(source_shapes[i]) if source_shapes is not None else (0, 0)
            writer.add(events_per_sample[i], labels[i], ids[i], splits[i] if splits else None, shape)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


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
    writer = TreeWriter(
        out_raw,
        class_names,
        params,
        layout=layout,
        file_format=file_format,
        with_split=splits is not None,
        source=source,
        overwrite=overwrite,
    )
    workers = max(1, int(workers or os.cpu_count() or 1))
    sim_s = 0.0
    spans: list[int] = []
    try:
        pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            for a in range(0, n, max(1, int(chunk))):
                b = min(n, a + max(1, int(chunk)))
                t0 = time.perf_counter()

                def one(i: int) -> tuple[np.ndarray, dict[str, Any]]:
                    return simulate_image(images[i], params, sample_rng(params.seed, seeds[i]))

                if pool is None or a == 0:
                    first = [one(a)]  # compiles (or loads the cached kernels) before threads start
                    rest = list(pool.map(one, range(a + 1, b))) if pool else [one(i) for i in range(a + 1, b)]
                    res = first + rest
                else:
                    res = list(pool.map(one, range(a, b)))
                sim_s += time.perf_counter() - t0
                for i, (ev, meta) in zip(range(a, b), res, strict=True):
                    shape = tuple(meta["pixel_transform"]["source_size"][::-1])
                    writer.add(ev, labels[i], ids[i], splits[i] if splits else None, shape)
                    if ev.shape[0]:
                        spans.append(int(ev["t"][-1] - ev["t"][0]))
                if progress is not None:
                    progress(b, n)
        finally:
            if pool is not None:
                pool.shutdown()
    except BaseException:
        writer.abort()
        raise
    out = writer.finish()
    out["seconds_simulate"] = sim_s
    out["duration_us_mean"] = float(np.mean(spans)) if spans else None
    return out


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
    text = json.dumps(head, indent=1, default=_json_default)
    rows = ",\n  ".join(json.dumps(r, default=_json_default) for r in meta["samples"]["rows"])
    cols = json.dumps(meta["samples"]["columns"])
    return f'{text[:-2]},\n "samples": {{"columns": {cols}, "rows": [\n  {rows}\n ]}}\n}}\n'


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
