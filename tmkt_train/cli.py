"""The ``tmkt-train`` command line: ``fit`` and ``eval``, thin over :mod:`tmkt_train.trainer`.

User mistakes (a store without ``pairs/``, a checkpoint of another model, a
recipe with an unknown key, a wrong time-step count) print one line and exit
with code 2, leaving every existing file as it was.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape  # help text is rich markup: escape() keeps its brackets
from rich.table import Table

from tmkt_data.cliutil import console, err_console, make_app, print_error, store_arg
from tmkt_data.cliutil import user_errors as _user_errors

app, _state = make_app(
    "tmkt-train",
    "Train spiking networks on a paired tmkt store with Time-step Mixup (TMKT) and its baselines.",
)
user_errors = _user_errors(_state, extra=(FloatingPointError,))  # a NaN loss names its term


@app.command()
@user_errors
def fit(
    store: Annotated[
        str, typer.Argument(help="A store with pairs/ (tmkt-data convert + pair): a folder, or a URL.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder: metrics, checkpoints, curves.")],
    method: Annotated[str | None, typer.Option(help="scratch, finetune, sliding or tmkt.")] = None,
    model: Annotated[str | None, typer.Option(help="vgg_snn, resnet18, scnn or demo.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Global batch size.")] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default 5e-3 x batch / 1024).")
    ] = None,
    r_m: Annotated[
        float | None, typer.Option("--r-m", help="Expected event-frame ratio of the mixup.")
    ] = None,
    time_steps: Annotated[int | None, typer.Option("--time-steps", help="Must equal the store's T.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="bf16 autocast on CUDA.")] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    no_mag: Annotated[bool, typer.Option("--no-mag", help="Ablation: without MAG.")] = False,
    no_mrp: Annotated[bool, typer.Option("--no-mrp", help="Ablation: without MRP.")] = False,
    no_cka: Annotated[bool, typer.Option("--no-cka", help="Ablation: without CKA.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="DataLoader worker processes.")] = None,
    tensorboard: Annotated[
        bool | None,
        typer.Option(
            "--tensorboard/--no-tensorboard",
            help="Also write the metrics to RUN_DIR/tensorboard/ (needs the tensorboard extra).",
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML recipe holding any option.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any option as KEY=VALUE (repeatable).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue from RUN_DIR/checkpoint.pt with the settings of RUN_DIR/config.toml "
            "(options given may change only epochs, device, workers, amp, compile, tensorboard).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train one run. Flags override the recipe; the resolved config goes to RUN_DIR/config.toml.

    Example: tmkt-train fit ncal.zarr --out runs/tmkt --method tmkt --model vgg_snn --epochs 300
    """
    from tmkt_train.config import load_recipe, make_config, parse_assignments
    from tmkt_train.runfolder import resume_config
    from tmkt_train.trainer import fit as run_fit

    recipe = load_recipe(config) if config else {}
    recipe.update(parse_assignments(set_ or []))
    flags = dict(
        store=str(store_arg(store)),
        out=str(out),
        method=method,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        r_m=r_m,
        time_steps=time_steps,
        device=device,
        amp=amp,
        compile=compile,
        seed=seed,
        num_workers=workers,
        tensorboard=tensorboard,
    )
    for name, off in (("mag", no_mag), ("mrp", no_mrp), ("cka", no_cka)):
        if off:
            flags[name] = False
    # a resumed run continues with its own config.toml; what is given here may change only MID_RUN options
    given = {**recipe, **{k: v for k, v in flags.items() if v is not None}}
    cfg = resume_config(out, given) if resume else make_config(recipe, **flags)

    def on_epoch(row: dict) -> None:
        acc = " ".join(
            f"{k.split('_')[0]} {100 * row[k]:.2f}%"
            for k in ("train_acc", "val_acc", "test_acc")
            if row.get(k) is not None
        )
        console.print(
            f"epoch {row['epoch'] + 1}/{cfg.epochs}  loss {row['loss'].get('total', float('nan')):.4f}  {acc}  "
            f"{row['samples_per_s']:,.0f} samples/s  data-wait {100 * row['data_wait_fraction']:.1f}%"
        )

    summary = run_fit(
        cfg,
        resume=resume,
        progress=not quiet,
        on_epoch=None if quiet else on_epoch,
        warn=lambda m: print_error(m, label="warning", style="yellow"),
    )
    console.print(json.dumps(summary))


@app.command("eval")
@user_errors
def eval_(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint.pt or best.pt of a run.")],
    store: Annotated[str, typer.Argument(help="The paired store to evaluate on (a folder, or a URL).")],
    split: Annotated[str, typer.Option(help="train, val or test (from the store's pairing index).")] = "test",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
) -> None:
    """Accuracy of a checkpoint (top-1, top-5, per class) as one JSON object.

    Example: tmkt-train eval runs/tmkt/best.pt ncal.zarr --split test
    """
    from tmkt_train.trainer import evaluate_checkpoint

    res = evaluate_checkpoint(checkpoint, store_arg(store), split=split, device=device, batch_size=batch_size)
    sys.stdout.write(json.dumps(res) + "\n")


@app.command()
@user_errors
def pipeline(
    recipe: Annotated[Path, typer.Argument(help="A pipeline recipe, e.g. pipelines/demo.toml.")],
    raw_root: Annotated[str | None, typer.Option("--raw-root", help="The event dataset's folder.")] = None,
    rgb_root: Annotated[str | None, typer.Option("--rgb-root", help="The RGB dataset's folder.")] = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Folder for everything (default: the recipe's).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override every run's epochs.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a training option, KEY=VALUE.")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help=escape("Run only these [[runs]] names."))
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", min=1, help="Training runs at a time (default: the recipe's).")
    ] = None,
) -> None:
    """Run a recipe end to end (convert, pair, train, evaluate), skipping finished steps; print a results table.

    Example: tmkt-train pipeline pipelines/ncaltech101.toml --raw-root ~/N-Caltech101 --rgb-root ~/caltech101
    """
    from tmkt_train.config import parse_assignments
    from tmkt_train.pipeline import aggregate, load_pipeline, run_pipeline

    overrides = parse_assignments(set_ or [])
    if epochs is not None:
        overrides["epochs"] = epochs
    t0 = time.perf_counter()
    rows = run_pipeline(
        recipe, raw_root=raw_root, rgb_root=rgb_root, out=out, overrides=overrides, only=only, jobs=jobs,
        progress=not quiet, log=lambda m: err_console.print(m, highlight=False),
    )  # fmt: skip
    rec = load_pipeline(recipe, out=out)
    print_results_table(aggregate(rows), f"{rec.name}: test accuracy at the best-validation epoch")
    print_paired(rows)
    console.print(
        f"store: {rec.out / 'store.zarr'}   runs and curves: {rec.out / 'runs'}/*/curves.png   "
        f"results: {rec.out / 'results.json'}   total {time.perf_counter() - t0:.0f} s"
    )


def print_results_table(rows: list[dict[str, Any]], title: str) -> None:
    """One line per run name: method, seeds, mean +- std test accuracy, summed wall time.

    A run whose best epoch was selected on training accuracy (no validation samples) is marked
    ``*`` and a note under the table says so.
    """
    table = Table(title=title)
    for col in ("run", "method", "seeds", "test accuracy", "wall time"):
        table.add_column(col, justify="left" if col in ("run", "method") else "right")
    on_train = False
    for r in rows:
        acc = "-" if r["mean"] is None else f"{100 * r['mean']:.2f}%"
        if r["mean"] is not None and len(r["seeds"]) > 1:
            acc += f" +- {100 * r['std']:.2f}"
        mark = " *" if r.get("selected_on") == "train" else ""
        on_train = on_train or bool(mark)
        table.add_row(
            r["run"] + mark, r["method"], ",".join(map(str, r["seeds"])), acc, f"{r['wall_s']:.0f} s"
        )
    console.print(table)
    if on_train:
        console.print("* no validation samples: the epoch was selected on training accuracy", highlight=False)


def print_paired(rows: list[dict[str, Any]]) -> None:
    """tmkt against each baseline, seed by seed, with a 95 % interval and a one-line reading."""
    from tmkt_train.stats import paired_difference, reading

    for base in ("scratch", "sliding", "finetune"):
        d = paired_difference(rows, "tmkt", base, by="method")
        if d is not None:
            console.print(f"{d.text()}: {reading(d)}", highlight=False, markup=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
