"""Simulator parameters (``docs/formats.md`` §6, model version :data:`SIM_VERSION`) and the
options a command line or recipe may set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tmkt_data.errors import TmktError
from tmkt_data.sizes import as_count as _count
from tmkt_data.sizes import parse_size_wh

#: Version of the simulator model; bump when the same parameters would give other events.
SIM_VERSION = "1.0"
MOTIONS = ("saccade", "rcls", "static")
RESAMPLE = ("bicubic", "bilinear", "area", "nearest", "lanczos")


class SynthError(TmktError, ValueError):
    """Bad simulator input: a parameter, an image, a layout or an output path."""


@dataclass(frozen=True)
class SimParams:
    """Every parameter of the simulator (all recorded in the metadata); the model they
    parametrise is ``docs/formats.md`` §6 (version :data:`SIM_VERSION`).

    Attributes:
        c_on, c_off: mean ON/OFF thresholds of ``L = log(I + eps)`` (§6.3; calibrated
            with ``eps``, §6.6).
        sigma: standard deviation of the per-pixel threshold mismatch.
        c_min: lower clamp of a pixel's threshold.
        refractory_us: refractory period after an emitted event, us (0 = off; §6.4).
        leak_rate_hz: leak ON events per pixel per second (0 = off; §6.4).
        shot_rate_hz: shot-noise events per pixel per second (0 = off; §6.4).
        eps: offset in ``log(I + eps)``, ``I`` linear luminance in [0, 1] (§6.1).
        motion: ``"saccade"``, ``"rcls"`` or ``"static"`` (§6.2).
        sensor_size: (W, H) of the sensor, pixels.
        render_size: (W, H) in sensor pixels that the whole source image covers.
        resample: how the source image is resized to ``render_size`` (in sRGB space).
        background: linear luminance of the monitor around the image, in [0, 1].
        saccade_us: duration of each of the three saccades, us.
        saccade_side_px: side of the equilateral saccade triangle, sensor pixels.
        rcls_radius_px, rcls_period_us, rcls_cycles: the ``rcls`` circle (pixels, us, turns).
        static_us: duration of a ``static`` recording, us.
        sample_rate_hz: base sampling rate of ``L``, Hz (>= 1000).
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
        """Length of the simulated motion, us."""
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


#: What a command line or a recipe may set (:func:`params_from_options`): ``threshold`` (mean ON and
#: OFF threshold, overridden by ``c_on`` / ``c_off``), ``sensor`` and ``render`` (sizes, see
#: :func:`~tmkt_data.sizes.parse_size_wh`), and the :class:`SimParams` fields of the same name.
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
    unless they are given; ``sensor`` and ``render`` (W, H) go through
    :func:`~tmkt_data.sizes.parse_size_wh`.

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
            kw[field] = parse_size_wh(options[name], name, error=SynthError)
    for name in SIM_OPTIONS:
        if name not in ("threshold", "c_on", "c_off", "sensor", "render") and options.get(name) is not None:
            kw[name] = options[name]
    params = SimParams(**kw)
    params.validate()
    return params
