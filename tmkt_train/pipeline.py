"""End-to-end recipes: [synth] -> convert -> pair -> training runs -> results table.

A recipe (``pipelines/*.toml``) names every step with its options::

    [pipeline]  name, out (folder for everything the pipeline writes), description
    [synth]     optional: simulate the raw tree from an RGB source (the embedded demo);
                rgb_kind, rgb_root, options (RGB reader options), layout, format, per_class
                ({train = N, test = M}: the first N / M images of each class), limit (at most
                N images, spread evenly over classes and splits), and the simulator options
                (tmkt_data.synth.SIM_OPTIONS: motion, sensor, render, seed, threshold, c_on,
                c_off, sigma, eps, refractory_us, leak_rate_hz, shot_rate_hz, resample,
                saccade_side_px)
    [convert]   dataset, frames, split_by, remainder, size, resize, dtype, shard_samples, options,
                filters (a list of "name=value" event filters, applied in order)
    [pair]      rgb_kind, rgb_root, val_fraction or val_per_class, dvs_fraction or dvs_per_class,
                seed, instance, class_map, options, exclude_eval_sources (default true),
                split_array (the store's train/test array: "split" or an alternative "split_<name>")
    [train]     options shared by every run (any tmkt-train option)
    [[runs]]    name, method, seeds, plus per-run overrides of [train]

Each step is skipped when its output already exists with the same parameters:
the store's parameter hash (convert resumes or does nothing), the pairing
attributes, and each run's resolved ``config.toml`` with its completed epochs
(an incomplete run with the same config is resumed).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmkt_data.mapping import check_keys
from tmkt_train.config import ConfigError, config_to_toml, make_config, read_toml

SECTIONS = {"pipeline", "synth", "convert", "pair", "train", "runs"}
PAIR_KEYS = {"rgb_kind", "rgb_root", "val_fraction", "dvs_fraction", "seed", "instance", "class_map", "options",
             "grayscale", "drop_unmatched", "split_array", "val_per_class", "dvs_per_class",
             "exclude_eval_sources"}  # fmt: skip
SYNTH_KEYS = {"rgb_kind", "rgb_root", "options", "layout", "format", "per_class", "limit",  # + SIM_OPTIONS:
              "motion", "sensor", "render", "seed", "threshold", "c_on", "c_off", "sigma", "eps",
              "refractory_us", "leak_rate_hz", "shot_rate_hz", "resample", "saccade_side_px"}  # fmt: skip
RUN_KEYS = {"name", "method", "seeds"}


class PipelineError(ConfigError):
    """A recipe is malformed or a step's inputs are missing."""


@dataclass
class Recipe:
    path: Path
    name: str
    out: Path
    synth: dict[str, Any] | None
    convert: dict[str, Any]
    pair: dict[str, Any]
    train: dict[str, Any]
    runs: list[dict[str, Any]]
    description: str = ""
    jobs: int = 1  # training runs at a time (separate processes)
    threads: int | None = None  # torch threads per run (None: torch's default); fixes the numbers


def _check_steps(p: Path, data: dict[str, Any]) -> None:
    """Check the [synth] and [convert] values the way their steps will read them (one line each)."""
    from tmkt_data.convert import ConvertOptions
    from tmkt_data.layouts import LAYOUTS
    from tmkt_data.synth import SynthJob

    if data.get("synth") is not None:
        SynthJob.from_mapping(data["synth"], f"{p} [synth]")
    c = data["convert"]
    if c["dataset"] not in LAYOUTS:
        raise PipelineError(f"{p} [convert] dataset = {c['dataset']!r}: expected one of {', '.join(LAYOUTS)}")
    ConvertOptions.from_mapping({k: v for k, v in c.items() if k != "dataset"}, f"{p} [convert]")


def load_pipeline(path: str | Path, *, out: str | Path | None = None) -> Recipe:
    """Read and check a pipeline recipe."""
    p = Path(path)
    data = read_toml(p, PipelineError, "recipe not found")
    check_keys(data, SECTIONS, str(p), PipelineError)
    head = data.get("pipeline", {})
    check_keys(head, {"name", "out", "description", "jobs", "threads"}, f"{p} [pipeline]", PipelineError)
    for key in ("jobs", "threads"):
        v = head.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise PipelineError(f"{p} [pipeline] {key} = {v!r}: expected a positive integer")
    from tmkt_data.convert import CONVERT_OPTION_KEYS  # what ConvertOptions.from_mapping reads

    convert_keys = {"dataset", *CONVERT_OPTION_KEYS}
    for section, keys in (("convert", convert_keys), ("pair", PAIR_KEYS), ("synth", SYNTH_KEYS)):
        check_keys(data.get(section, {}), keys, f"{p} [{section}]", PipelineError)
    if "dataset" not in data.get("convert", {}):
        raise PipelineError(f"{p} [convert]: needs dataset")
    if "rgb_kind" not in data.get("pair", {}):
        raise PipelineError(f"{p} [pair]: needs rgb_kind")
    runs = data.get("runs", [])
    if not runs:
        raise PipelineError(f"{p}: no [[runs]]")
    make_config(data.get("train", {}))  # unknown training keys fail here, before any work
    _check_steps(p, data)  # so do bad [synth] and [convert] values: nothing runs before they are right
    for i, run in enumerate(runs):
        if "name" not in run or "method" not in run:
            raise PipelineError(f"{p} [[runs]] #{i + 1}: needs name and method")
        seeds = run.get("seeds", [0])
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds)
        ):
            raise PipelineError(
                f"{p} [[runs]] #{i + 1} seeds = {seeds!r}: expected a list of integers >= 0, like [0, 1, 2]"
            )
        make_config({**data.get("train", {}), **{k: v for k, v in run.items() if k not in RUN_KEYS}},
                    method=run["method"])  # fmt: skip
    name = head.get("name", p.stem)
    return Recipe(
        path=p,
        name=name,
        out=Path(out or head.get("out", f"runs/{name}")),
        synth=data.get("synth"),
        convert=data["convert"],
        pair=data["pair"],
        train=data.get("train", {}),
        runs=runs,
        description=head.get("description", ""),
        jobs=int(head.get("jobs", 1)),
        threads=head.get("threads"),
    )


def _say(msg: str, log: Callable[[str], None] | None) -> None:
    if log is not None:
        log(msg)


def synth_step(recipe: Recipe, raw: Path, log: Callable[[str], None] | None) -> None:
    """Simulate the raw tree unless one made with the same parameters is there."""
    from tmkt_data.synth import SynthJob

    s = dict(recipe.synth or {})
    want = {k: s.get(k) for k in sorted(SYNTH_KEYS)}
    stamp = raw / "pipeline_synth.json"
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        _say(f"synth: {raw} is up to date, skipped", log)
        return
    job = SynthJob.from_mapping(s, f"{recipe.path} [synth]")
    t0 = time.perf_counter()
    res = job.run(raw, overwrite=True)
    stamp.write_text(json.dumps(want))
    _say(f"synth: {res['images']} {job.rgb_kind} images -> {raw} in {time.perf_counter() - t0:.1f} s", log)


def convert_options(recipe: Recipe) -> Any:
    """The recipe's checked :class:`~tmkt_data.convert.ConvertOptions` (its ``[convert]`` table)."""
    from tmkt_data.convert import ConvertOptions

    table = {k: v for k, v in recipe.convert.items() if k != "dataset"}
    return ConvertOptions.from_mapping(table, f"{recipe.path} [convert]")


def convert_step(recipe: Recipe, raw: Path, store: Path, log: Callable[[str], None] | None) -> None:
    from tmkt_data.convert import convert

    opts = convert_options(recipe)
    t0 = time.perf_counter()
    res = convert(recipe.convert["dataset"], raw, store, opts, overwrite=True)
    if res.shards_done_before == res.shards_total:
        _say(f"convert: {store} is up to date, skipped", log)
    else:
        _say(
            f"convert: {res.n_samples} samples ({res.files_failed} failed), {res.events:,} events -> {store} "
            f"in {time.perf_counter() - t0:.1f} s",
            log,
        )


def pair_settings(recipe: Recipe, rgb_root: str | None) -> dict[str, Any]:
    """The [pair] table checked (each key as its ``tmkt-data pair`` flag) with defaults filled in
    (``val_fraction`` None when only ``val_per_class`` is given): what ``pairs/`` records as
    ``pipeline_settings``. ``rgb_root``, when given, replaces the recipe's."""
    from tmkt_data.pairing import PairSettings

    return PairSettings.from_mapping(recipe.pair, rgb_root=rgb_root).to_mapping()


def pair_step(store: Path, settings: dict[str, Any], log: Callable[[str], None] | None) -> str:
    """Pair the store unless its index was made with the same settings (:func:`pair_settings`);
    returns the pairing id."""
    from tmkt_data.pairing import PairSettings, pair_with_settings
    from tmkt_data.rgb import EMBEDDED_SOURCES
    from tmkt_data.store import read_group_attrs, verify_groups

    pair = PairSettings.from_mapping(settings)
    record = pair.to_mapping()
    done = read_group_attrs(store, "pairs")
    # same settings and rgb/, pairs/ intact (their checksums): else pairing again rewrites them
    if done is not None and done.get("pipeline_settings") == record and not verify_groups(store):
        _say(f"pair: {store}/pairs is up to date, skipped", log)
        return str(done["pairing_id"])
    if pair.rgb_kind not in EMBEDDED_SOURCES and pair.rgb_root in (None, "-"):
        raise PipelineError(f"pair: the {pair.rgb_kind} images are needed; pass --rgb-root FOLDER")
    t0 = time.perf_counter()
    report = pair_with_settings(store, pair, extra_attrs={"pipeline_settings": record})
    totals = report.split_counts
    _say(f"pair: {pair.rgb_kind} -> {store}/pairs {totals} in {time.perf_counter() - t0:.1f} s", log)
    return str(report.pairing_id)


def run_configs(
    recipe: Recipe,
    store: Path,
    pairing_id: str,
    overrides: dict[str, Any],
    seeds: list[int] | None = None,
) -> list[tuple[str, str, Any]]:
    """(run name, method, config) for every run and seed of the recipe (``seeds`` replaces every run's)."""
    out = []
    for run in recipe.runs:
        run_seeds = seeds if seeds is not None else run.get("seeds", [recipe.train.get("seed", 42)])
        for seed in run_seeds:
            values = {**recipe.train, **{k: v for k, v in run.items() if k not in RUN_KEYS}, **overrides}
            run_dir = recipe.out / "runs" / f"{run['name']}_seed{seed}"
            cfg = make_config(
                values, method=run["method"], seed=int(seed), store=str(store), out=str(run_dir)
            )
            cfg.extra = {"pairing_id": pairing_id, "pipeline": recipe.name, "run": run["name"]}
            out.append((run["name"], run["method"], cfg))
    return out


def train_step(cfg: Any, progress: bool, log: Callable[[str], None] | None) -> dict[str, Any]:
    """Train one run, or skip/resume it when its folder holds the same configuration."""
    from tmkt_train.trainer import fit, read_metrics, summarize

    out = Path(cfg.out)
    text = config_to_toml(cfg)
    same = (out / "config.toml").exists() and (out / "config.toml").read_text() == text
    rows = read_metrics(out / "metrics.jsonl") if same else []
    if same and len(rows) >= cfg.epochs:
        _say(f"train: {out} is complete, skipped", log)
        return summarize(rows[: cfg.epochs])
    resume = same and (out / "checkpoint.pt").exists()
    if out.exists() and not resume and ((out / "config.toml").exists() or (out / "checkpoint.pt").exists()):
        shutil.rmtree(out)  # a run of this pipeline made with other settings
    _say(f"train: {cfg.method} seed {cfg.seed} -> {out}" + (" (resuming)" if resume else ""), log)
    warn = (lambda m: _say(f"warning: {m}", log)) if log is not None else None
    return fit(cfg, resume=resume, progress=progress, warn=warn)


def run_pipeline(
    path: str | Path,
    *,
    raw_root: str | None = None,
    rgb_root: str | None = None,
    out: str | None = None,
    overrides: dict[str, Any] | None = None,
    only: list[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    seeds: list[int] | None = None,
    jobs: int | None = None,
) -> list[dict[str, Any]]:
    """Run a recipe end to end; returns one row per training run (method, seed, accuracies, wall time).

    ``jobs`` overrides the recipe's ``[pipeline] jobs`` (training runs at a time).

    ``seeds``, when given, replaces the seeds of every ``[[runs]]`` entry (e.g. one seed for a smoke run).
    """
    recipe = load_pipeline(path, out=out)
    if recipe.synth is None and not raw_root:
        raise PipelineError(f"{recipe.path}: this recipe reads a downloaded dataset; pass --raw-root FOLDER")
    names = [r["name"] for r in recipe.runs]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise PipelineError(
            f"--only {', '.join(unknown)}: no such run in {recipe.path} (runs: {', '.join(names)})"
        )
    recipe.out.mkdir(parents=True, exist_ok=True)
    raw = Path(raw_root) if raw_root else recipe.out / "raw"
    if recipe.synth is not None and not raw_root:
        synth_step(recipe, raw, log)
    store = recipe.out / "store.zarr"
    convert_step(recipe, raw, store, log)
    pairing_id = pair_step(store, pair_settings(recipe, rgb_root), log)
    todo = [(n, m, c) for n, m, c in run_configs(recipe, store, pairing_id, overrides or {}, seeds)
            if not only or n in only]  # fmt: skip
    summaries = train_many([c for _, _, c in todo], jobs or recipe.jobs, recipe.threads, progress, log)
    rows = [{"run": name, "method": method, "seed": cfg.seed, "out": cfg.out, **summary}
            for (name, method, cfg), summary in zip(todo, summaries, strict=True)]  # fmt: skip
    (recipe.out / "results.json").write_text(json.dumps(rows, indent=1))
    return rows


def _train_with_threads(
    cfg: Any, threads: int | None, progress: bool, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """One run in this process with ``threads`` torch threads; adds ``step_s`` (seconds)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    summary = train_step(cfg, progress, log)
    return {**summary, "step_s": round(time.perf_counter() - t0, 1)}


def train_many(
    cfgs: list[Any],
    jobs: int = 1,
    threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    on_result: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train (or skip, or resume) every configuration; summaries in the same order.

    ``jobs > 1`` runs that many at once in separate processes (no progress bars). A run's
    numbers depend on its number of torch threads, not on ``jobs``: give ``threads`` to make
    them the same however the runs are scheduled. ``on_result(i, summary)`` is called as
    run ``i`` finishes (a long study can save what it has).
    """
    out: list[dict[str, Any]] = []
    if jobs <= 1 or len(cfgs) <= 1:
        for i, cfg in enumerate(cfgs):
            out.append(_train_with_threads(cfg, threads, progress, log))
            if on_result is not None:
                on_result(i, out[-1])
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_with_threads, cfg, threads, False): i for i, cfg in enumerate(cfgs)}
        for fut in as_completed(futures):
            i = futures[fut]
            done[i] = fut.result()
            cfg = cfgs[i]
            _say(f"train: {cfg.method} seed {cfg.seed} -> {cfg.out}: done in {done[i]['step_s']:.0f} s", log)
            if on_result is not None:
                on_result(i, done[i])
    return [done[i] for i in range(len(cfgs))]


def aggregate(rows: list[dict[str, Any]], key: str = "test_acc_at_best") -> list[dict[str, Any]]:
    """Mean and standard deviation of ``key`` per run name, over seeds."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["run"], []).append(r)
    out = []
    for name, rs in by.items():
        vals = [r[key] for r in rs if r.get(key) is not None]
        out.append({
            "run": name,
            "method": rs[0]["method"],
            "seeds": [r["seed"] for r in rs],
            "mean": statistics.fmean(vals) if vals else None,
            "std": statistics.stdev(vals) if len(vals) > 1 else 0.0 if vals else None,
            "wall_s": sum(r.get("wall_s", 0.0) for r in rs),
            # "train": some seed's best epoch was selected on training accuracy (no validation samples)
            "selected_on": "train" if any(r.get("selected_on") == "train" for r in rs) else "val",
        })  # fmt: skip
    return out
