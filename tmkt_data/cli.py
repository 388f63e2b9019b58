"""The ``tmkt-data`` command line: a thin Typer layer over the library.

User mistakes (a bad file, a wrong option) print one line and exit with code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tmkt_data.errors import TmktError

app = typer.Typer(
    name="tmkt-data",
    help="Prepare event-camera data: read raw recordings, bin them into frames.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`TmktError` into one red line on stderr and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TmktError as err:
            if _state["debug"]:
                raise
            err_console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


@app.command()
@user_errors
def inspect(
    path: Annotated[Path, typer.Argument(help="An event file (AEDAT 2/3.1/4, ATIS .bin, .npy/.npz, .h5, .mat).")],
    format: Annotated[str | None, typer.Option("--format", "-f", help="Force a format; detected if omitted.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Summarise an event file: format, sensor, events, duration, ON/OFF balance, events/s.

    Example: tmkt-data inspect user01_fluorescent.aedat --json
    """
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
        err_console.print("[red]error:[/red] some recordings did not read back identically")
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
