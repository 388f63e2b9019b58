"""The ``tmkt-train`` command line (training arrives with the trainer issue)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tmkt-train",
    help="Train spiking networks on a tmkt store with Time-step Mixup and its baselines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """Training is not implemented yet; this program only prints its help."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def main() -> None:
    """Console-script entry point."""
    app()
