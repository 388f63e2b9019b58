"""``tmkt-data synth``: DVS-like synthetic events from still images (registered in :mod:`tmkt_data.cli`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tmkt_data.cliutil import console, err_console, parse_key_values


def synth_command(
    rgb_kind: Annotated[
        str,
        typer.Argument(
            help="digits, digitpairs, mnist, cifar10, cifar100, caltech101, omniglot, imagefolder"
        ),
    ],
    rgb_root: Annotated[
        str, typer.Argument(help="The RGB dataset's folder; '-' for digits, digitpairs (built in).")
    ],
    out_raw: Annotated[Path, typer.Argument(help="Folder to create: the event tree for tmkt-data convert.")],
    motion: Annotated[
        str, typer.Option("--motion", help="saccade (3 x ~100 ms, N-MNIST-like), rcls (closed loop), static.")
    ] = "saccade",
    sensor: Annotated[str, typer.Option("--sensor", help="Sensor size S or W,H.")] = "34",
    render: Annotated[
        str, typer.Option("--render", help="Size S or W,H (sensor pixels) the whole image covers.")
    ] = "28",
    layout: Annotated[
        str, typer.Option("--layout", help="folder (convert 'folder', keeps the synthetic marker) or nmnist.")
    ] = "folder",
    file_format: Annotated[
        str, typer.Option("--format", help="atis_bin (.bin, sensor <= 256x240) or aedat2 (.aedat, 128x128).")
    ] = "atis_bin",
    seed: Annotated[int, typer.Option("--seed", help="Seed of threshold mismatch and noise.", min=0)] = 0,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="At most N images, spread evenly over classes and splits.", min=1),
    ] = None,
    per_class: Annotated[
        str | None,
        typer.Option(
            "--per-class",
            help="Images per class and split, first in source order: N, or train=N,test=M "
            "(a split left out keeps all).",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Threads (default: one per core).")] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Mean ON and OFF threshold C (default 0.25).")
    ] = None,
    c_on: Annotated[
        float | None, typer.Option("--c-on", help="Mean ON threshold (overrides --threshold).")
    ] = None,
    c_off: Annotated[
        float | None, typer.Option("--c-off", help="Mean OFF threshold (overrides --threshold).")
    ] = None,
    sigma: Annotated[
        float | None, typer.Option("--sigma", help="Threshold mismatch std (default 0.03).")
    ] = None,
    eps: Annotated[float | None, typer.Option("--eps", help="Offset in log(I + eps) (default 0.24).")] = None,
    refractory_us: Annotated[
        int, typer.Option("--refractory-us", help="Refractory period in us (0 = off).", min=0)
    ] = 0,
    leak_hz: Annotated[float, typer.Option("--leak-hz", help="Leak events per pixel per s (0 = off).")] = 0.0,
    shot_hz: Annotated[
        float, typer.Option("--shot-hz", help="Shot-noise events per pixel per s (0 = off).")
    ] = 0.0,
    saccade_side_px: Annotated[
        float | None,
        typer.Option("--saccade-side-px", help="Side of the saccade triangle in sensor pixels (default 5)."),
    ] = None,
    resample: Annotated[
        str, typer.Option("--resample", help="Image resize: bicubic, bilinear, area, nearest, lanczos.")
    ] = "bicubic",
    rgb_option: Annotated[
        list[str] | None,
        typer.Option(
            "--rgb-option", "-o", help="RGB reader option KEY=VALUE (train_ratio=0.9, labels=coarse)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing OUT_RAW.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Simulate DVS-like events for still images and write an event tree (marked synthetic).

    Example: tmkt-data synth digits - digits_dvs --motion saccade --sensor 34 --render 28

    Example: tmkt-data synth digitpairs - pairs_dvs --sensor 34,18 --render 32,16 --per-class train=30,test=5
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tmkt_data.synth import SynthJob

    t_start = time.perf_counter()
    job = SynthJob.from_mapping({  # every value checked before any image is read
        "rgb_kind": rgb_kind, "rgb_root": rgb_root, "options": parse_key_values(rgb_option or [], "--rgb-option"),
        "layout": layout, "format": file_format, "per_class": per_class, "limit": limit, "threshold": threshold,
        "c_on": c_on, "c_off": c_off, "sigma": sigma, "eps": eps, "refractory_us": refractory_us,
        "leak_rate_hz": leak_hz, "shot_rate_hz": shot_hz, "motion": motion, "saccade_side_px": saccade_side_px,
        "sensor": sensor, "render": render, "resample": resample, "seed": seed,
    })  # fmt: skip
    progress = Progress(
        TextColumn("[bold]synth[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=as_json or not sys.stderr.isatty(),
    )
    task: dict[str, Any] = {}
    with progress:
        res = job.run(
            out_raw,
            workers=workers,
            overwrite=overwrite,
            on_start=lambda n: task.update(id=progress.add_task("synth", total=n)),
            progress=lambda done, total: progress.update(task["id"], completed=done),
        )
    _print_summary(job, res, time.perf_counter() - t_start, as_json)


def _print_summary(job: Any, res: dict[str, Any], elapsed: float, as_json: bool) -> None:
    """What was written: one JSON object, or a table and the convert command to run next."""
    files = res["files"]
    summary = {
        "out": res["path"],
        "synthetic": True,
        "samples": res["samples"],
        "files": files,
        "skipped_empty": len(res["skipped_empty"]),
        "events": res["events"],
        "events_per_sample": res["events"] / files if files else 0.0,
        "duration_ms_mean": (res["duration_us_mean"] or 0.0) / 1000.0,
        "on_fraction": res["on_fraction"],
        "seconds_simulate": round(res["seconds_simulate"], 3),
        "seconds_total": round(elapsed, 3),
        "motion": job.params.motion,
        "sensor": list(job.params.sensor_size),
        "layout": job.layout,
        "format": job.file_format,
        "seed": job.params.seed,
    }
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    table = Table(title="DVS-like synthetic events (not a real recording)", show_header=False)
    for k, v in summary.items():
        if isinstance(v, float):
            v = f"{v:,.4g}"
        elif isinstance(v, int) and not isinstance(v, bool):
            v = f"{v:,}"
        table.add_row(k, str(v))
    console.print(table)
    hint = f"tmkt-data convert {job.layout} {res['path']} OUT.zarr"
    if job.layout == "folder":
        w, h = job.params.sensor_size
        hint += f" -o sensor_size=[{w},{h}]"
    console.print(f"next: {hint}", highlight=False)
