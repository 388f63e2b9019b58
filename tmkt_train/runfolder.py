"""A run folder is as safe as a store: one writer, a resume that continues the same run, no write
before every check has passed.

- **One writer**: ``fit`` holds ``RUN/run.lock`` (pid, host, start time; the protocol of a
  store's lock, :func:`tmkt_data.store.lock.hold_lock`) while it runs. A second ``fit`` into
  the same folder is refused with the holder's pid; the lock of a process that is gone (same
  host) is taken over.
- **Resume continues the same run**: its settings are the run's own ``config.toml``; options
  given with ``--resume`` may change only :data:`MID_RUN` (e.g. more epochs). The store must
  be the one the run was trained on: the same path, pairing index (``pairing_id``) and
  conversion parameters (``params_hash``), as the checkpoint records them.
- **No write before the checks**: a run that is refused leaves its folder as it was (a folder
  made only to hold the lock is removed again).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from tmkt_data.store.lock import hold_lock
from tmkt_train.build import StoreInfo
from tmkt_train.checkpoint import check_checkpoint, load_checkpoint
from tmkt_train.config import ConfigError, TrainConfig, config_to_toml, load_recipe, make_config
from tmkt_train.errors import TrainError

#: Options a resumed run may change: they alter neither the model, the data nor the schedule's shape.
MID_RUN = ("epochs", "device", "num_workers", "amp", "compile", "tensorboard")
#: Not settings: the run's places (``store`` is checked against the checkpoint instead) and an
#: assertion about the store (``time_steps`` must equal its T).
_NOT_SETTINGS = ("store", "out", "time_steps")


class RunLockedError(TrainError):
    """Another live process is training into the run folder."""


@contextmanager
def run_folder(out: str | Path, *, lock: bool = True) -> Iterator[Path]:
    """Hold ``RUN/run.lock`` (when ``lock``) for the duration of the block; yields the folder.

    When the block fails and the folder was made for the lock and is empty again, it is removed.

    Raises:
        RunLockedError: another live process holds the lock.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out}: a file, expected a run folder")
    created = not out.exists()
    try:
        with ExitStack() as stack:
            if lock:
                stack.enter_context(hold_lock(out / "run.lock", str(out), "tmkt-train fit", RunLockedError))
            yield out
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def write_config(out: Path, cfg: TrainConfig) -> None:
    """``RUN/config.toml``, the resolved configuration (written atomically)."""
    path = out / "config.toml"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(config_to_toml(cfg))
    tmp.replace(path)


def saved_config(out: Path) -> TrainConfig:
    """The configuration in ``RUN/config.toml``."""
    path = out / "config.toml"
    if not path.is_file():
        raise TrainError(f"{out}: no config.toml to resume from")
    try:
        return make_config(load_recipe(path))
    except ConfigError as err:
        raise TrainError(f"{path}: {err}") from None


def check_same_settings(cfg: TrainConfig, saved: TrainConfig, out: Path) -> None:
    """Refuse a resumed configuration that differs from the run's in anything but :data:`MID_RUN`."""
    for f in fields(TrainConfig):
        if f.name in MID_RUN or f.name in _NOT_SETTINGS:
            continue
        new, old = getattr(cfg, f.name), getattr(saved, f.name)
        if f.name == "lr":
            new, old = cfg.resolved_lr(), saved.resolved_lr()
        if new != old:
            raise TrainError(
                f"{f.name} = {new!r}: {out} was trained with {f.name} = {old!r} ({out / 'config.toml'}); "
                f"a resumed run may change only {', '.join(MID_RUN)}: start a new --out for other settings"
            )


def resume_config(out: str | Path, given: dict[str, Any]) -> TrainConfig:
    """The configuration of ``fit --resume``: ``RUN/config.toml`` with the options given (None: not given).

    Raises:
        TrainError: no run to resume, or a given option other than :data:`MID_RUN` that differs.
    """
    out = Path(out)
    require_checkpoint(out)
    saved = saved_config(out)
    cfg = make_config(load_recipe(out / "config.toml"), **given)
    check_same_settings(cfg, saved, out)
    return cfg


def require_checkpoint(out: Path) -> Path:
    path = out / "checkpoint.pt"
    if not path.exists():
        raise TrainError(f"{out}: no checkpoint.pt to resume from")
    return path


def check_new_run(out: Path) -> None:
    """A new run may not start in a folder that holds one."""
    if (out / "checkpoint.pt").exists():
        raise TrainError(f"{out}: holds a run already; pass --resume to continue it or choose another --out")


def resume_checkpoint(cfg: TrainConfig, info: StoreInfo, map_location: Any) -> dict[str, Any]:
    """The checkpoint to resume from, after checking the settings, the checkpoint and the store.

    Raises:
        TrainError: no checkpoint, settings that differ from ``config.toml``, a damaged
            checkpoint, or a checkpoint of another model, method or store.
    """
    out = Path(cfg.out)
    path = require_checkpoint(out)
    check_same_settings(cfg, saved_config(out), out)
    ckpt = load_checkpoint(path, map_location=map_location)
    check_checkpoint(ckpt, cfg.model, len(info.classes), info.T, str(path))
    meta = ckpt.get("meta", {})
    if meta.get("method", cfg.method) != cfg.method:
        raise TrainError(f"{path}: checkpoint has method = {meta['method']!r}, this run needs {cfg.method!r}")
    check_same_store(meta, info, cfg.store, out)
    return ckpt


def check_same_store(meta: dict[str, Any], info: StoreInfo, store: str, out: Path) -> None:
    """Refuse a store other than the one the checkpoint was trained on (path, pairing, conversion)."""
    if meta.get("store") is not None and Path(meta["store"]) != Path(info.path):
        raise TrainError(
            f"{store}: {out} was trained on {meta['store']}; resume it on that store or start a new --out"
        )
    for key, have, what in (
        ("pairing_id", info.pairing_id, "pairing index"),
        ("store_params_hash", info.params_hash, "conversion parameters"),
    ):
        want = meta.get(key)
        if want is not None and want != have:
            raise TrainError(
                f"{store}: its {what} ({key} {have}) is not the one {out} was trained with ({want}); "
                "the store was converted or paired again since: start a new --out"
            )
