"""Regenerate docs/results.md: does the transfer beat training on events alone? Measured.

One command runs the whole study on a pipeline recipe (default: the transfer benchmark
``pipelines/transfer.toml``, which needs no download) and writes the page and its plots::

    python benchmarks/run_results.py                      # search, main, ablation, variant, scarcity, report
    python benchmarks/run_results.py --stages search      # only the learning-rate search
    python benchmarks/run_results.py --report-only        # rewrite the page from finished runs

Stages (finished runs are skipped, so an interrupted study resumes):

* ``search``: every method gets the same learning-rate grid, trained with a search seed
  that is not one of the evaluation seeds; the choice is the grid point with the best
  validation accuracy (never test). The recipe must hold the chosen rates (checked).
* ``main``: the recipe's runs through the pipeline itself (the four methods x its seeds),
  so ``tmkt-train pipeline RECIPE`` reproduces these numbers.
* ``ablation``: ``tmkt`` variants on the first ``--ablation-seeds`` seeds.
* ``variant``: a ``tmkt`` variant treated as a method of its own (``SEARCHED``): the same
  learning-rate grid and search seed as the four methods, chosen on validation, then every
  recipe seed, so it can be compared with them on equal terms.
* ``scarcity``: ``scratch``, ``tmkt``, ``finetune`` and the searched variants (after the
  ``variant`` stage; ``--scarcity-arms`` to choose) at other numbers of event training samples
  per class, each a copy of the store paired again (nested selections), with the number of
  passes per epoch scaled so every point gets the main runs' optimizer-step budget.

Test accuracy is always read at the best-validation epoch. Results: the study folder's
``study.json`` (every run: stage, name, method, seed, accuracies, final training accuracy).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("scratch", "finetune", "sliding", "tmkt")
ABLATIONS: dict[str, dict[str, Any]] = {
    "-MAG": {"mag": False},
    "-MRP": {"mrp": False},
    "-CKA": {"cka": False},
    "step weights off": {"step_weights": False},
    "shared head": {"shared_head": True},
    "r_m=0.3": {"r_m": 0.3},
    "r_m=0.7": {"r_m": 0.7},
    "r_m=0.7 renormalised": {"r_m": 0.7, "mixup_normalized": True},
    "BN recalibrated": {"bn_recalibrate": True},
}
#: tmkt variants that get their own learning-rate search and every seed (stage ``variant``)
SEARCHED: dict[str, tuple[str, dict[str, Any]]] = {"tmkt shared head": ("tmkt", {"shared_head": True})}
COMPARISONS = (("tmkt", "scratch"), ("tmkt", "sliding"), ("tmkt", "finetune"), ("sliding", "scratch"),
               ("finetune", "scratch"))  # fmt: skip


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def _rm(recipe: Any, method: str) -> dict[str, Any]:
    """The recipe's [[runs]] entry of ``method`` (its overrides of [train])."""
    from tmkt_train.pipeline import RUN_KEYS

    for run in recipe.runs:
        if run["method"] == method:
            return {k: v for k, v in run.items() if k not in RUN_KEYS}
    raise SystemExit(f"{recipe.path}: no [[runs]] entry with method {method!r}")


def _run_seeds(recipe: Any) -> list[int]:
    return [int(s) for s in recipe.runs[0].get("seeds", [recipe.train.get("seed", 42)])]


def _steps_per_epoch(n_train: int, batch: int, repeat: int, drop_last: bool) -> int:
    n = n_train * repeat
    return n // batch if drop_last else -(-n // batch)


def _metrics(out: str | Path) -> list[dict[str, Any]]:
    path = Path(out) / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _row(stage: str, name: str, cfg: Any, summary: dict[str, Any], **extra: Any) -> dict[str, Any]:
    m = _metrics(cfg.out)
    return {"stage": stage, "name": name, "method": cfg.method, "seed": cfg.seed, "out": cfg.out,
            "lr": cfg.resolved_lr(), "steps": sum(r.get("samples", 0) for r in m) // cfg.batch_size,
            **extra, **summary,
            "curve_train": [r.get("train_acc") for r in m], "curve_val": [r.get("val_acc") for r in m],
            "c_t": [r.get("c_t") for r in m]}  # fmt: skip


class Study:
    """The recipe, its store and pairing, and the helpers every stage uses."""

    def __init__(self, args: argparse.Namespace) -> None:
        from tmkt_train.pipeline import load_pipeline

        self.args = args
        self.recipe = load_pipeline(args.recipe, out=args.work)
        self.out = self.recipe.out
        self.store = self.out / "store.zarr"
        self.jobs = args.jobs or self.recipe.jobs
        self.rows_path = self.out / "study.json"
        self.rows: list[dict[str, Any]] = (
            json.loads(self.rows_path.read_text()) if self.rows_path.exists() else []
        )

    def save(self, rows: list[dict[str, Any]]) -> None:
        keys = {(r["stage"], r["name"], r["seed"]) for r in rows}
        self.rows = [r for r in self.rows if (r["stage"], r["name"], r["seed"]) not in keys] + rows
        self.rows_path.write_text(json.dumps(self.rows, indent=1))

    def prepare(self) -> str:
        """synth -> convert -> pair as the pipeline does; returns the pairing id."""
        from tmkt_train.pipeline import convert_step, pair_settings, pair_step, synth_step

        self.out.mkdir(parents=True, exist_ok=True)
        raw = self.out / "raw"
        if self.recipe.synth is not None:
            synth_step(self.recipe, raw, print)
        convert_step(self.recipe, raw, self.store, print)
        return pair_step(self.store, pair_settings(self.recipe, None), print)

    def config(self, method: str, seed: int, out: Path, store: Path, pairing_id: str, **kw: Any) -> Any:
        from tmkt_train.config import make_config

        values = {**self.recipe.train, **_rm(self.recipe, method), **kw}
        cfg = make_config(values, method=method, seed=seed, store=str(store), out=str(out))
        cfg.extra = {"pairing_id": pairing_id, "pipeline": self.recipe.name, "study": out.parent.name}
        return cfg

    def train(self, stage: str, plan: list[tuple[str, Any, dict[str, Any]]]) -> list[dict[str, Any]]:
        from tmkt_train.pipeline import train_many

        print(f"{stage}: {len(plan)} runs, {self.jobs} at a time", flush=True)

        def save_one(i: int, summary: dict[str, Any]) -> None:  # a long stage keeps what it has
            name, cfg, extra = plan[i]
            self.save([_row(stage, name, cfg, summary, **extra)])

        sums = train_many([c for _, c, _ in plan], self.jobs, self.recipe.threads, False, print, save_one)
        return [_row(stage, name, cfg, s, **extra) for (name, cfg, extra), s in zip(plan, sums, strict=True)]


def _search(st: Study, stage: str, name: str, method: str, pairing_id: str, **kw: Any) -> float:
    """Train ``method`` (with ``kw``) on the learning-rate grid with the search seed; the rate with
    the best validation accuracy (ties: the smaller rate)."""
    plan = []
    for lr in st.args.lr_grid:
        out = st.out / stage / f"{_slug(name)}_lr{lr:g}_seed{st.args.search_seed}"
        cfg = st.config(method, st.args.search_seed, out, st.store, pairing_id, lr=lr, **kw)
        plan.append((f"{name} lr={lr:g}", cfg, {"grid_lr": lr}))
    rows = st.train(stage, plan)
    return max(rows, key=lambda r: (r["val_acc_at_best"] or 0.0, -r["grid_lr"]))["grid_lr"]


def stage_search(st: Study, pairing_id: str) -> dict[str, float]:
    """Same learning-rate grid for every method, search seed, chosen on validation accuracy."""
    chosen = {m: _search(st, "search", m, m, pairing_id) for m in METHODS}
    print("search: chosen learning rates " + ", ".join(f"{m} {v:g}" for m, v in chosen.items()))
    return chosen


def check_recipe(st: Study, chosen: dict[str, float]) -> None:
    from tmkt_train.config import make_config

    wrong = []
    for method, lr in chosen.items():
        have = make_config({**st.recipe.train, **_rm(st.recipe, method)}, method=method).resolved_lr()
        if not math.isclose(have, lr):
            wrong.append(f"{method}: recipe lr {have:g}, search chose {lr:g}")
    if wrong:
        raise SystemExit(f"{st.recipe.path}: set the searched learning rates first ({'; '.join(wrong)})")


def stage_main(st: Study) -> None:
    from tmkt_train.pipeline import run_pipeline

    rows = run_pipeline(st.recipe.path, out=st.out, progress=False, jobs=st.jobs)
    cfgs = {(r["run"], r["seed"]): r for r in rows}
    from tmkt_train.config import make_config

    out = []
    for (name, seed), r in cfgs.items():
        cfg = make_config({**st.recipe.train, **_rm(st.recipe, r["method"])}, method=r["method"], seed=seed,
                          out=r["out"])  # fmt: skip
        summary = {k: v for k, v in r.items() if k not in ("run", "method", "seed", "out")}
        out.append(_row("main", name, cfg, summary))
    st.save(out)


def stage_variant(st: Study, pairing_id: str) -> None:
    """Each ``SEARCHED`` variant: its own search on the common grid, then every recipe seed."""
    for name, (method, kw) in SEARCHED.items():
        lr = _search(st, "variant_search", name, method, pairing_id, **kw)
        print(f"variant: {name} chose lr {lr:g}")
        plan = []
        for seed in _run_seeds(st.recipe):
            out = st.out / "variant" / f"{_slug(name)}_seed{seed}"
            cfg = st.config(method, seed, out, st.store, pairing_id, lr=lr, **kw)
            plan.append((name, cfg, {"kw": kw, "chosen_lr": lr}))
        st.train("variant", plan)


def stage_ablation(st: Study, pairing_id: str) -> None:
    seeds = _run_seeds(st.recipe)[: st.args.ablation_seeds]
    plan = []
    variants = {k: v for k, v in ABLATIONS.items() if not st.args.variants or k in st.args.variants}
    for seed in seeds:  # seed-major: a study cut short has every variant on its first seeds
        for name, kw in variants.items():
            out = st.out / "ablation" / f"{_slug(name)}_seed{seed}"
            plan.append(
                (f"tmkt {name}", st.config("tmkt", seed, out, st.store, pairing_id, **kw), {"kw": kw})
            )
    st.train("ablation", plan)


def stage_scarcity(st: Study) -> None:
    from tmkt_train.pipeline import pair_settings, pair_step

    base = pair_settings(st.recipe, None)
    n0 = int(base["dvs_per_class"])
    train = st.recipe.train
    repeat0 = int(train.get("train_repeat", 1))
    batch = int(train["batch_size"])
    drop = bool(train.get("drop_last", True))
    import zarr

    n_classes = len(zarr.open_group(str(st.store), mode="r").attrs["classes"])
    steps0 = _steps_per_epoch(n0 * n_classes, batch, repeat0, drop) * int(train["epochs"])
    seeds = _run_seeds(st.recipe)[: st.args.scarcity_seeds]
    plan = []
    for n in st.args.per_class:
        if n == n0:
            continue  # the main runs are this point of the curve
        store = st.out / "scarcity" / f"n{n}" / "store.zarr"
        if not store.exists():
            store.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(st.store, store, ignore=shutil.ignore_patterns("rgb", "pairs", "*.lock"))
        pid = pair_step(store, {**base, "dvs_per_class": n}, print)
        repeat = max(1, round(repeat0 * n0 / n))
        spe = _steps_per_epoch(n * n_classes, batch, repeat, drop)
        epochs = max(1, math.ceil(steps0 / spe))
        for arm in st.args.scarcity_arms:
            method, kw = _arm(st, arm)
            for seed in seeds:
                out = store.parent / "runs" / f"{_slug(arm)}_seed{seed}"
                cfg = st.config(method, seed, out, store, pid, train_repeat=repeat, epochs=epochs, **kw)
                plan.append((f"{arm} n={n}", cfg, {"per_class": n, "arm": arm}))
    st.train("scarcity", plan)


def _arm(st: Study, arm: str) -> tuple[str, dict[str, Any]]:
    """The method and settings of a scarcity arm: one of ``METHODS`` (the recipe's learning rate)
    or a ``SEARCHED`` variant (the learning rate its ``variant`` stage chose)."""
    if arm in METHODS:
        return arm, {}
    method, kw = SEARCHED[arm]
    chosen = {r.get("chosen_lr") for r in st.rows if r["stage"] == "variant" and r["name"] == arm}
    if len(chosen) != 1:
        raise SystemExit(f"scarcity arm {arm!r}: run the variant stage first (--stages variant)")
    return method, {**kw, "lr": chosen.pop()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(ROOT / "pipelines" / "transfer.toml"))
    ap.add_argument("--work", help="Study folder (default: the recipe's [pipeline] out).")
    ap.add_argument("--stages", default="search,main,ablation,variant,scarcity,report")
    ap.add_argument("--jobs", type=int, help="Training runs at a time (default: the recipe's).")
    ap.add_argument("--lr-grid", type=float, nargs="+", default=[0.001, 0.003, 0.01, 0.03, 0.1])
    ap.add_argument("--search-seed", type=int, default=0)
    ap.add_argument("--ablation-seeds", type=int, default=3, help="The first N of the recipe's seeds.")
    ap.add_argument("--scarcity-seeds", type=int, default=3, help="The first N of the recipe's seeds.")
    ap.add_argument("--per-class", type=int, nargs="+", default=[1, 2, 5, 10, 25])
    ap.add_argument("--scarcity-arms", nargs="+", default=["scratch", "tmkt", "finetune", *SEARCHED],
                    choices=[*METHODS, *SEARCHED], help="Methods and variants of the scarcity stage.")  # fmt: skip
    ap.add_argument(
        "--variants", nargs="+", choices=list(ABLATIONS), help="Only these ablations (default: all)."
    )
    ap.add_argument("--report", default=str(ROOT / "docs" / "results.md"))
    ap.add_argument("--verdict", default=str(ROOT / "docs" / "results_verdict.md"),
                    help="Markdown file with the written verdict, inserted into the page.")  # fmt: skip
    ap.add_argument("--report-only", action="store_true", help="Only rewrite the page from study.json.")
    args = ap.parse_args()
    stages = ["report"] if args.report_only else args.stages.split(",")
    st = Study(args)
    t0 = time.perf_counter()
    if set(stages) - {"report"}:
        pairing_id = st.prepare()
        if "search" in stages:
            check_recipe(st, stage_search(st, pairing_id))
        if "main" in stages:
            stage_main(st)
        if "ablation" in stages:
            stage_ablation(st, pairing_id)
        if "variant" in stages:
            stage_variant(st, pairing_id)
        if "scarcity" in stages:  # after variant: its arms include the searched variants
            stage_scarcity(st)
    if "report" in stages:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results_report import write_report

        write_report(st, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
