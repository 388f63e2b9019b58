"""``tmkt-data pair``: pair a store's DVS samples with RGB images (registered in :mod:`tmkt_data.cli`)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tmkt_data.cliutil import LazyProgress, console, err_console, parse_key_values, print_error, store_arg

_MAX_CLASS_ROWS = 60


def pair_command(
    store: Annotated[
        str, typer.Argument(help="A tmkt frame store (from tmkt-data convert; a folder or a URL).")
    ],
    rgb_kind: Annotated[
        str, typer.Argument(help="cifar10, cifar100, caltech101, mnist, omniglot, imagefolder, digits")
    ],
    rgb_root: Annotated[
        str, typer.Argument(help="The RGB dataset's folder; '-' or omitted for digits.")
    ] = "-",
    class_map: Annotated[
        Path | None,
        typer.Option("--class-map", help="TOML class map (DVS class = RGB class); replaces a shipped map."),
    ] = None,
    drop_unmatched: Annotated[
        bool, typer.Option("--drop-unmatched", help="Leave unmatched classes out instead of failing.")
    ] = False,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            "--val-fraction", help="Fraction of DVS train carved into val, per class (default 0.1)."
        ),
    ] = None,
    val_per_class: Annotated[
        int | None,
        typer.Option(
            "--val-per-class", help="Carve exactly N val samples per class (not with --val-fraction)."
        ),
    ] = None,
    dvs_fraction: Annotated[
        float,
        typer.Option("--dvs-fraction", help="Fraction of DVS train samples kept per class (at least 1)."),
    ] = 1.0,
    dvs_per_class: Annotated[
        int | None,
        typer.Option(
            "--dvs-per-class",
            help="Keep exactly N DVS train samples per class after val (nested in N; not with --dvs-fraction).",
        ),
    ] = None,
    exclude_eval_sources: Annotated[
        bool,
        typer.Option(
            "--exclude-eval-sources/--keep-eval-sources",
            help="Keep the RGB sources of DVS val/test samples out of the pools where the instance link "
            "is known (default), or keep them in (the reference's pools).",
        ),
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the val and fraction selections.")] = 0,
    instance: Annotated[
        bool,
        typer.Option("--instance", help="Also pair each recording with its source image; check orientation."),
    ] = False,
    grayscale: Annotated[
        bool, typer.Option("--grayscale", help="Encode ITU-R 601 luma instead of the HSV value.")
    ] = False,
    split: Annotated[
        str, typer.Option("--split", help="Store array giving train/test (split or split_<name>).")
    ] = "split",
    rgb_option: Annotated[
        list[str] | None,
        typer.Option(
            "--rgb-option", "-o", help="RGB reader option KEY=VALUE (labels=coarse, train_ratio=0.9)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Pair a store's DVS samples with same-class RGB images; write rgb/ and pairs/ into the store.

    Example: tmkt-data pair ncal.zarr caltech101 ~/caltech101 --dvs-fraction 0.2 --instance;
    scarce events: --val-per-class 2 --dvs-per-class 5
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from tmkt_data.pairing import PairSettings, pair_with_settings

    progress = LazyProgress(  # appears with the first task: an early error is one clean line
        TextColumn("[bold]encode[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    )
    task: dict[str, Any] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if "id" not in task:
            task["id"] = progress.add_task(stage, total=total)
        progress.update(task["id"], completed=done)

    settings = PairSettings(
        rgb_kind=rgb_kind,
        rgb_root=rgb_root,
        class_map=class_map,
        drop_unmatched=drop_unmatched,
        val_fraction=val_fraction,
        val_per_class=val_per_class,
        dvs_fraction=dvs_fraction,
        dvs_per_class=dvs_per_class,
        exclude_eval_sources=exclude_eval_sources,
        seed=seed,
        instance=instance,
        encode_mode="gray" if grayscale else "hsv_v",
        rgb_options=parse_key_values(rgb_option or [], "--rgb-option"),
        split_array=split,
    )
    with progress:
        report = pair_with_settings(store_arg(store), settings, on_progress=on_progress)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
        return
    print_report(report)


def print_report(report: Any) -> None:
    """Rich tables for a :class:`~tmkt_data.pairing.PairReport`."""
    r = report
    head = Table(title=f"pairs: {r.dvs_dataset} <- {r.rgb_kind} in {r.store}", show_header=False)
    head.add_row("RGB root", str(r.rgb_root or "(embedded)"))
    head.add_row(
        "RGB images stored",
        f"{r.rgb_images:,} (train {r.rgb_split_counts['train']:,}, test {r.rgb_split_counts['test']:,}), "
        f"{r.encode_mode}, {r.size[0]}x{r.size[1]}",
    )
    head.add_row("DVS splits", ", ".join(f"{sp} {n:,}" for sp, n in r.split_counts.items()))
    val = (
        f"val {r.val_per_class} per class"
        if r.val_per_class is not None
        else f"val fraction {r.val_fraction:g}"
    )
    train = (
        f"DVS {r.dvs_per_class} per class"
        if r.dvs_per_class is not None
        else f"DVS fraction {r.dvs_fraction:g}"
    )
    head.add_row("selection", f"seed {r.seed}, {val}, {train}")
    head.add_row("class map", (r.class_map or {}).get("source", "none (names)"))
    matched = sum(1 for m in r.class_mapping if m["rgb"])
    head.add_row("classes matched", f"{matched} of {len(r.class_mapping)}")
    if r.dvs_classes_dropped:
        head.add_row("DVS classes dropped", ", ".join(r.dvs_classes_dropped))
    if r.rgb_classes_unused:
        head.add_row("RGB classes unused", ", ".join(r.rgb_classes_unused))
    if r.eval_source_images is None:
        hygiene = "instance link unknown: nothing excluded"
    elif r.exclude_eval_sources:
        hygiene = f"{r.pool_excluded:,} RGB training images excluded (sources of DVS val/test samples)"
    else:
        hygiene = f"{r.eval_source_images:,} sources of DVS val/test samples kept in (--keep-eval-sources)"
    head.add_row("RGB pools", hygiene)
    if r.instance_rule:
        synth = r.instance_rule.startswith("synthetic store")
        head.add_row("instance link", "the synthetic store's source ids" if synth else r.instance_rule)
    if r.partners is not None:
        head.add_row(
            "instance partners",
            ", ".join(f"{sp} {v['paired']:,}/{v['paired'] + v['missing']:,}" for sp, v in r.partners.items()),
        )
    head.add_row("synthetic DVS", "yes" if r.synthetic else "no")
    head.add_row("pairing id", r.pairing_id)
    console.print(head)

    table = Table(title="per class")
    for col in ("DVS class", "RGB classes", "how", "train", "val", "test", "RGB pool", "excluded"):
        table.add_column(col, justify="left" if col in ("DVS class", "RGB classes", "how") else "right")
    rows = list(zip(r.class_mapping, r.per_class, strict=True))
    for m, c in rows[:_MAX_CLASS_ROWS]:
        table.add_row(
            m["dvs"],
            ", ".join(m["rgb"]) or "-",
            m["how"],
            *(f"{c[k]:,}" for k in ("train", "val", "test", "pool", "excluded")),
        )
    if len(rows) > _MAX_CLASS_ROWS:
        pools = sorted(c["pool"] for _, c in rows)
        table.caption = (
            f"{len(rows) - _MAX_CLASS_ROWS} more classes; pool sizes min {pools[0]:,}, "
            f"median {pools[len(pools) // 2]:,}, max {pools[-1]:,}"
        )
    console.print(table)

    if r.orientation and r.orientation.get("scores"):
        o = r.orientation
        ot = Table(title=f"orientation check ({o['n_pairs']} instance pairs)")
        ot.add_column("transform of the RGB image")
        ot.add_column("mean correlation", justify="right")
        for name, v in o["scores"].items():
            mark = " (best)" if name == o["best"] else ""
            shown = "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"
            ot.add_row(name + mark, shown)
        console.print(ot)
    for w in r.warnings:
        print_error(w, label="warning", style="yellow")
