"""Training configuration: one dataclass, TOML recipes, command-line overrides.

Every training option lives here with its default; ``docs/training-defaults.md``
lists each one with its meaning, units and source (the TMKT method, He et al.'s
reference code and flag, or our choice). A recipe file may set any of them
(unknown keys are an error), flags and ``--set KEY=VALUE`` override the recipe,
and the resolved configuration is written to ``RUN_DIR/config.toml``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tmkt_data.errors import TmktError

METHODS = ("scratch", "finetune", "sliding", "tmkt")
DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")  # what --device documents


class ConfigError(TmktError, ValueError):
    """A recipe or option is invalid (unknown key, wrong type, impossible value)."""


@dataclass
class TrainConfig:
    """Every training option; ``docs/training-defaults.md`` gives each one's meaning, units and source.

    Units: learning rate per step, epochs, probabilities and ratios in [0, 1], angles in degrees.
    """

    store: str = ""
    out: str = ""
    method: str = "tmkt"
    model: str = "vgg_snn"
    epochs: int = 300
    batch_size: int = 120  # global: summed over DDP processes
    lr: float | None = None  # None: 5e-3 * batch_size / 1024 (reference)
    weight_decay: float = 0.01  # AdamW, decoupled
    decay_1d: bool = False  # weight decay on 1-D parameters too (BN, biases, c_t); reference: no
    warmup_epochs: int = 5  # linear warm-up, then cosine to 0 (per step)
    drop_last: bool = True  # drop the last incomplete training batch (reference); eval keeps all
    train_repeat: int = 1  # passes over the DVS training samples per epoch (ours: fewer evaluations)
    window_shards: int = 8  # shards' worth of samples a reader worker decodes together (memory; not mixing)
    seed: int = 42
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: bool = False  # bf16 autocast on CUDA
    compile: bool = False
    num_workers: int = 2  # DataLoader worker processes
    time_steps: int | None = None  # must equal the store's T when given
    # neuron
    tau: float = 2.0  # LIF time constant (steps)
    v_threshold: float = 0.5
    surrogate: str = "qgate"  # qgate, sigmoid, atan
    # classification loss
    loss: str = "tet"  # tet or ce (CE on the time-averaged output)
    lambda_tet: float = 1e-3  # TET's pull of the outputs towards the threshold
    shared_head: bool = False  # one head for both streams (reference: one per stream)
    # Time-step Mixup
    r_m: float = 0.5  # expected share of event frames in a mixed sequence
    r_m_schedule: str = "constant"  # constant, linear, cubic
    r_m_start: float = 0.0
    r_m_end: float = 0.5
    mixup_normalized: bool = False  # switch step renormalised over 1..T (>= 1 event frame)
    # auxiliary objectives
    mag: bool = True
    mrp: bool = True
    cka: bool = True
    step_weights: bool = True  # learnable sigma(c_t) weighting CKA and the DVS term per step
    lambda_cka: float = 0.5
    lambda_mag: float = 0.1
    lambda_mrp: float = 0.1
    mrp_loss: str = "mse"  # mse or bce
    cka_features: str = "membrane"  # CKA input: membrane potential (reference) or spikes
    # batch norm: re-estimate the running statistics on the DVS training data before each evaluation
    bn_recalibrate: bool = False
    # finetune: share of the epochs spent on RGB before switching to DVS
    finetune_rgb_fraction: float = 0.5
    # inputs
    dvs_norm: str = "none"  # none, clip, log1p, max
    crop_padding: int = 4  # random crop after zero padding (pixels; 0: off)
    hflip: bool = False
    rotate_deg: float = 0.0  # random rotation up to this angle (degrees; 0: off)
    # bookkeeping
    max_steps_per_epoch: int | None = None  # for smoke tests and benchmarks
    tensorboard: bool = False  # also write the metrics to RUN_DIR/tensorboard/ (extra "tensorboard")
    extra: dict[str, Any] = field(default_factory=dict)  # kept with the run, not read by the trainer

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else 5e-3 * self.batch_size / 1024

    def validate(self) -> TrainConfig:
        """Raise :class:`ConfigError` on an impossible combination; returns self."""
        if self.method not in METHODS:
            raise ConfigError(f"method {self.method!r}: expected one of {', '.join(METHODS)}")
        for name in ("epochs", "batch_size", "train_repeat", "window_shards"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} = {getattr(self, name)}: expected a positive integer")
        for name in ("num_workers", "warmup_epochs", "crop_padding"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} = {getattr(self, name)}: expected an integer >= 0")
        if not DEVICE_RE.fullmatch(self.device):
            raise ConfigError(f"device = {self.device!r}: expected auto, cpu, cuda or cuda:N")
        for name in ("r_m", "r_m_start", "r_m_end", "finetune_rgb_fraction"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0) or math.isnan(v):
                raise ConfigError(f"{name} = {v}: expected a value in [0, 1]")
        for name in ("lr", "weight_decay", "lambda_tet", "lambda_cka", "lambda_mag", "lambda_mrp"):
            v = getattr(self, name)
            if (
                v is not None
                and not (math.isfinite(v) and v >= 0)
                or (name == "lr" and v is not None and v <= 0)
            ):
                raise ConfigError(
                    f"{name} = {v}: expected a finite {'positive' if name == 'lr' else 'non-negative'} number"
                )
        choices = {
            "loss": ("tet", "ce"),
            "r_m_schedule": ("constant", "linear", "cubic"),
            "mrp_loss": ("mse", "bce"),
            "dvs_norm": ("none", "clip", "log1p", "max"),
            "surrogate": ("qgate", "sigmoid", "atan"),
            "cka_features": ("membrane", "spikes"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} = {getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        return self


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Check a recipe value against the field's type (ints may stand for floats)."""
    default = _FIELDS[name].default
    if value is None:
        return None
    kind = type(default) if default is not None and default is not dataclasses.MISSING else None
    if name in ("lr",):
        kind = float
    if name in ("time_steps", "max_steps_per_epoch"):
        kind = int
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} = {value!r}: expected true or false")
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind is dict and isinstance(value, dict):
        return value
    if kind is None:
        return value
    raise ConfigError(f"{name} = {value!r}: expected a {kind.__name__}")


def read_toml(p: Path, error: type[Exception], not_found: str) -> dict[str, Any]:
    """The TOML file ``p``; a missing file is ``error("<p>: <not_found>")``, bad TOML
    ``error("<p>: not valid TOML (...)")`` (the training and the pipeline recipes)."""
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise error(f"{p}: {not_found}") from None
    except tomllib.TOMLDecodeError as err:
        raise error(f"{p}: not valid TOML ({err})") from None


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a TOML recipe; the training options may sit at top level or under ``[train]``."""
    data = read_toml(Path(path), ConfigError, "recipe file not found")
    return dict(data.get("train", data))


def make_config(recipe: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Build a validated :class:`TrainConfig` from recipe values, then overrides (None = not given)."""
    values: dict[str, Any] = {}
    for source in (recipe or {}, {k: v for k, v in overrides.items() if v is not None}):
        for key, value in source.items():
            if key not in _FIELDS:
                close = [n for n in _FIELDS if n.split("_")[0] == key.split("_")[0]]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"unknown option {key!r}{hint}")
            values[key] = _coerce(key, value)
    return TrainConfig(**values).validate()


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to TOML")


def config_to_toml(cfg: TrainConfig) -> str:
    """The resolved configuration as a TOML ``[train]`` table (None values are left out)."""
    lines = ["# resolved tmkt-train configuration", "[train]"]
    extra = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.name == "extra":
            extra = v
            continue
        if v is not None:
            lines.append(f"{f.name} = {_toml_value(v)}")
    lines.append(f"# lr resolved to {cfg.resolved_lr()!r}")
    if extra:
        lines.append("[train.extra]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in extra.items())
    return "\n".join(lines) + "\n"


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["r_m=0.3", "mag=false"]`` -> ``{"r_m": 0.3, "mag": False}`` (values parsed as TOML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value  # a bare word: a string
    return out
