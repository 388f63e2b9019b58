"""What both command lines share: the Typer app, one-line user errors, KEY=VALUE options."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

import typer
from rich.console import Console

from tmkt_data.errors import TmktError

err_console = Console(stderr=True)


class OptionError(TmktError, ValueError):
    """A command-line option is malformed."""


def make_app(name: str, help: str) -> tuple[typer.Typer, dict[str, bool]]:
    """A Typer app with a ``--debug`` flag; returns the app and its state (``state["debug"]``)."""
    app = typer.Typer(
        name=name, help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
    )
    state = {"debug": False}

    @app.callback()
    def _root(
        debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    ) -> None:
        state["debug"] = debug

    return app, state


def user_errors(
    state: dict[str, bool], extra: tuple[type[BaseException], ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: tmkt errors (and ``extra`` types) become one red line on stderr and exit code 2."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (TmktError, *extra) as err:
                if state["debug"]:
                    raise
                err_console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None

        return wrapper

    return deco


def parse_key_values(items: list[str], flag: str) -> dict[str, Any]:
    """``["k=1", "name=abc", "size=[34,34]"]`` -> ``{"k": 1, "name": "abc", "size": [34, 34]}`` (JSON, else text)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise OptionError(f"{flag} {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out
