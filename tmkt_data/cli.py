"""The ``tmkt-data`` command line: a thin Typer layer over the library.

User mistakes (a bad file, a wrong option) print one line and exit with code 2;
``--debug`` shows the traceback instead (still exit code 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from tmkt_data.cliutil import (
    LazyProgress,
    console,
    err_console,
    make_app,
    parse_key_values,
    print_error,
    store_arg,
)
from tmkt_data.cliutil import user_errors as _user_errors
from tmkt_data.convert import ConvertError

app, _state = make_app("tmkt-data", "Prepare event-camera data: read raw recordings, bin them into frames.")
user_errors = _user_errors(_state)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


@app.command()
@user_errors
def inspect(
    path: Annotated[
        str,
        typer.Argument(
            help="An event file (AEDAT 2/3.1/4, ATIS .bin, .npy/.npz, .h5, .mat), or a store (a folder, or "
            "a URL such as s3://bucket/c10.zarr)."
        ),
    ],
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="Force a format; detected if omitted.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Summarise an event file (format, sensor, events, duration, ON/OFF, events/s) or a store.

    Example: tmkt-data inspect user01_fluorescent.aedat --json
    """
    path = store_arg(path)
    if isinstance(path, str) or path.is_dir() and (path / "zarr.json").exists():  # a store (or damaged)
        _inspect_store(path, as_json)
        return
    from tmkt_data.formats import read_events

    rec = read_events(path, format=format)
    info = rec.summary()
    if as_json:
        sys.stdout.write(json.dumps(info) + "\n")
        return
    table = Table(title=str(path), show_header=False)
    for key, value in info.items():
        if key != "path":
            table.add_row(key, _fmt(value))
    console.print(table)


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo recordings.")] = Path("demo_out"),
    frames: Annotated[int, typer.Option("--frames", help="Time bins per recording.", min=1)] = 10,
) -> None:
    """Write small recordings in every supported format, read them back, bin them, summarise."""
    from tmkt_data.demo import run_demo

    rows = run_demo(out, n_frames=frames)
    table = Table(title=f"tmkt demo: {len(rows)} recordings in {out}")
    for col in ("file", "format", "sensor", "events", "duration s", "ON %", "frames", "kept", "round trip"):
        table.add_column(col, justify="left" if col in ("file", "format") else "right")
    for r in rows:
        table.add_row(
            r["file"],
            r["format"],
            f"{r['sensor_size'][0]}x{r['sensor_size'][1]}",
            f"{r['events']:,}",
            f"{r['duration_s']:.3f}",
            f"{100 * r['on_fraction']:.1f}",
            "x".join(str(s) for s in r["frames_shape"]),
            f"{r['binned_events']:,}",
            "ok" if r["round_trip"] else "MISMATCH",
        )
    console.print(table)
    if not all(r["round_trip"] for r in rows):
        print_error("some recordings did not read back identically")
        raise typer.Exit(1)


def _inspect_store(path: Path, as_json: bool) -> None:
    from tmkt_data.store import store_summary

    info = store_summary(path)
    if as_json:
        sys.stdout.write(json.dumps(info) + "\n")
        return
    table = Table(title=f"store {path}", show_header=False)
    for key in (
        "dataset",
        "samples",
        "valid_samples",
        "frame_shape",
        "dtype",
        "classes",
        "splits",
        "events",
        "shards",
        "frames_bytes_on_disk",
        "compression_ratio",
        "synthetic",
        "tmkt_version",
    ):
        table.add_row(key, _fmt(info[key]))
    table.add_row("filters", " then ".join(info["filters"]) or "none")
    table.add_row("conversion", json.dumps(info["conversion"]))
    table.add_row("failures", _fmt(len(info["failures"])))
    console.print(table)


@app.command()
@user_errors
def convert(
    dataset: Annotated[
        str, typer.Argument(help="cifar10dvs, ncaltech101, nmnist, dvsgesture, nomniglot, cepdvs, folder")
    ],
    raw_root: Annotated[Path, typer.Argument(help="The dataset's folder as downloaded and unpacked.")],
    out_store: Annotated[
        str,
        typer.Argument(
            help="The Zarr v3 store to write (or resume): a folder, or a URL (s3://bucket/x.zarr)."
        ),
    ],
    frames: Annotated[int, typer.Option("--frames", "-T", help="Frames per sample.")] = 10,
    split_by: Annotated[
        str, typer.Option("--split-by", help="time (equal durations) or number (equal counts).")
    ] = "number",
    remainder: Annotated[
        str, typer.Option("--remainder", help="last: spikingjelly (keep all); drop: tonic.")
    ] = "last",
    size: Annotated[str | None, typer.Option("--size", help="Resize frames to S or H,W.")] = None,
    resize: Annotated[
        str, typer.Option("--resize", help="How frames reach --size: bilinear or area.")
    ] = "bilinear",
    dtype: Annotated[
        str, typer.Option("--dtype", help="auto, uint8, uint16, int16, float16, float32.")
    ] = "auto",
    shard_samples: Annotated[
        int | None, typer.Option("--shard-samples", help="Samples per shard file.")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Threads (default: one per core).")] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="dask.distributed address, tcp://host:8786.")
    ] = None,
    on_error: Annotated[
        str, typer.Option("--on-error", help="skip: record bad files and go on; fail: stop.")
    ] = "skip",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a store made with other parameters.")
    ] = False,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Layout option KEY=VALUE (repeatable).")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="Event filter before binning, applied in the order given (repeatable): denoise=US, "
            "refractory=US, crop=X0,Y0,W,H, downsample=F.",
        ),
    ] = None,
) -> None:
    """Convert a dataset tree into a frame store; run it again to resume after an interruption.

    Example: tmkt-data convert cifar10dvs ~/CIFAR10DVS c10.zarr --frames 10 --split-by number --size 48
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from tmkt_data.convert import ConvertOptions
    from tmkt_data.convert import convert as run_convert

    opts = ConvertOptions.from_mapping({  # a bad option is one line before any work
        "frames": frames, "split_by": split_by, "remainder": remainder, "size": size, "resize": resize,
        "dtype": dtype, "shard_samples": shard_samples, "options": parse_key_values(option or [], "--option"),
        "filters": list(filters or ()),
    })  # fmt: skip
    progress = LazyProgress(  # appears with the first task: an early error is one clean line
        TextColumn("[bold]convert[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    state = {"task": None, "t0": 0.0, "files": 0, "events": 0}

    def on_start(todo: int, total: int) -> None:
        import time

        state["t0"] = time.perf_counter()
        if todo < total:
            err_console.print(f"resuming: {total - todo} of {total} samples already converted")
        state["task"] = progress.add_task("convert", total=todo, rate="")

    def on_result(res: dict) -> None:
        import time

        state["files"] += res["files"]
        state["events"] += res["events"]
        dt = max(time.perf_counter() - state["t0"], 1e-9)
        rate = f"{state['files'] / dt:,.1f} files/s  {state['events'] / dt / 1e6:,.2f} Mev/s"
        progress.update(state["task"], advance=res["files"], rate=rate)

    with progress:
        result = run_convert(
            dataset,
            raw_root,
            out_store,
            opts,
            workers=workers,
            scheduler=scheduler,
            on_error=on_error,
            overwrite=overwrite,
            on_result=on_result,
            on_start=on_start,
        )
    _print_convert_summary(result)
    if result.files_failed:
        raise typer.Exit(1)


def _print_convert_summary(result) -> None:
    from tmkt_data.store import store_summary

    info = store_summary(result.store)
    table = Table(title=f"{info['dataset']} -> {result.store}")
    splits = sorted(info["splits"])
    table.add_column("class")
    for sp in splits:
        table.add_column(sp, justify="right")
    for cls, counts in info["per_class"].items():
        table.add_row(cls, *(str(counts.get(sp, 0)) for sp in splits))
    console.print(table)
    ratio = info["compression_ratio"]
    console.print(
        f"samples {info['samples']:,} ({info['valid_samples']:,} valid), events {info['events']:,}, "
        f"frames {'x'.join(map(str, info['frame_shape']))} {info['dtype']}, "
        f"on disk {info['store_bytes_on_disk'] / 1e6:,.2f} MB"
        + (f" (compression {ratio:.1f}x)" if ratio else "")
        + f", shards {info['shards']} ({result.shards_done_before} already done"
        + (f", {len(result.repaired)} damaged and converted again" if result.repaired else "")
        + f"), time {result.seconds:.1f} s"
    )
    for line in [*result.rebuilt, *result.repaired]:
        print_error(f"{result.store}: {line}", label="repaired", style="yellow")
    if result.failures:
        fail = Table(title=f"{len(result.failures)} failed files", title_style="red")
        fail.add_column("sample")
        fail.add_column("reason")
        for f in result.failures:
            fail.add_row(f["sample_id"], f["reason"])
        console.print(fail)


@app.command()
@user_errors
def verify(store: Annotated[str, typer.Argument(help="A tmkt store (a folder, or a URL).")]) -> None:
    """Re-check every file of a store against its checksums (frames shards, per-sample arrays, rgb/ and
    pairs/) and decode every shard; exit 1 on any damage, each line naming the fix."""
    from tmkt_data.store import unchecked_parts, verify_store

    store = store_arg(store)

    problems = verify_store(store)
    if problems:
        for line in problems:
            print_error(f"{store}: {line}", label="corrupt")
        raise typer.Exit(1)
    old = unchecked_parts(store)
    console.print(f"{store}: ok" + (f" ({', '.join(old)} without checksums: sha256 only)" if old else ""))


@app.command()
@user_errors
def show(
    store: Annotated[str, typer.Argument(help="A tmkt store (a folder, or a URL).")],
    index: Annotated[int, typer.Argument(help="Sample index.")],
    out: Annotated[
        Path, typer.Option("--out", help="Picture to write: .png (strip) or .gif (animation).")
    ] = Path("frames.png"),
) -> None:
    """Render one sample's frames, ON and OFF in two colours, so a person can look at it."""
    from tmkt_data.render import save_frames_image
    from tmkt_data.store import open_store

    g = open_store(store_arg(store))
    n = g["frames"].shape[0]
    if not 0 <= index < n:
        raise ConvertError(f"sample index {index} is outside the store's 0..{n - 1}")
    frames = np.asarray(g["frames"][index])
    label = g.attrs["classes"][int(g["labels"][index])]
    save_frames_image(frames, out)
    console.print(f"sample {index} ({label}, {str(g['sample_id'][index])}) -> {out}")


def _register_thin_commands() -> None:
    """Commands whose option parsing lives in their own modules."""
    from tmkt_data.cli_pair import pair_command
    from tmkt_data.cli_synth import synth_command

    app.command("pair")(user_errors(pair_command))
    app.command("synth")(user_errors(synth_command))


_register_thin_commands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
