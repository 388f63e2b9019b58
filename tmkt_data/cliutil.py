"""What both command lines share: the Typer app, consoles, one-line user errors, KEY=VALUE options.

Text printed by the command lines holds user input (paths, class folders, recipe keys), so the
consoles here print it as it is: rich markup and emoji codes are off (``rec[old].bin``, a class
folder ``[cls]`` and ``[[runs]]`` stay whole). Styled labels are :class:`rich.text.Text` parts.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.text import Text
from typer.core import TyperGroup

from tmkt_data.errors import TmktError

try:  # Typer carries its own copy of click since 0.2x; before, it used click itself
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older Typer
    from click import exceptions as cx

_NO_ARGS_HELP = getattr(cx, "NoArgsIsHelpError", ())  # click >= 8.2 (an empty tuple matches nothing)


def make_console(*, stderr: bool = False) -> Console:
    """A console that prints strings as they are: no markup, no ``:emoji:`` codes."""
    return Console(stderr=stderr, markup=False, emoji=False)


console = make_console()
err_console = make_console(stderr=True)


def print_error(message: object, *, label: str = "error", style: str = "red") -> None:
    """One line ``label: message`` on stderr; only the label is styled, the message is printed as is."""
    err_console.print(Text.assemble((f"{label}:", style), " ", str(message)), soft_wrap=True)


class LazyProgress(Progress):
    """A rich progress bar that shows nothing until its first task.

    rich ends a bar that stops off a terminal with an empty line (a transient one with nothing
    else), so an error raised before any work, or under a transient bar in a log, would start
    with a blank line.
    """

    def start(self) -> None:  # deferred to the first add_task
        pass

    def add_task(self, *args: Any, **kwargs: Any) -> TaskID:
        task = super().add_task(*args, **kwargs)
        super().start()  # once: a started display ignores it
        return task

    def stop(self) -> None:
        if not self.live.is_started:
            return
        if self.live.transient and not self.console.is_interactive:
            self.live.stop()  # without rich's empty line: a transient bar printed nothing here
            return
        super().stop()


class OptionError(TmktError, ValueError):
    """A command-line option is malformed."""


class OneLineUsageErrors(TyperGroup):
    """A command group whose usage errors (unknown option, missing or malformed argument) are one
    ``error:`` line on stderr with exit code 2, like the commands' own errors, instead of a panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except _NO_ARGS_HELP as err:
            err.ctx.get_help()  # Typer prints its help itself
            sys.exit(err.exit_code)
        except cx.UsageError as err:
            hint = f" (see {err.ctx.command_path} --help)" if err.ctx is not None else ""
            print_error(err.format_message().replace("\n", " ") + hint)
            sys.exit(2)
        except cx.ClickException as err:
            print_error(err.format_message())
            sys.exit(err.exit_code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def make_app(name: str, help: str) -> tuple[typer.Typer, dict[str, bool]]:
    """A Typer app with a ``--debug`` flag; returns the app and its state (``state["debug"]``)."""
    app = typer.Typer(
        name=name,
        help=help,
        cls=OneLineUsageErrors,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
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
    """Decorator: tmkt errors (and ``extra`` types) become one red line on stderr and exit code 2.

    With ``--debug`` the traceback is printed instead of the line; the exit code stays 2.
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (TmktError, *extra) as err:
                if state["debug"]:
                    traceback.print_exception(err, file=sys.stderr)
                else:
                    print_error(err)
                raise typer.Exit(2) from None

        return wrapper

    return deco


def store_arg(text: str) -> Path | str:
    """A store named on the command line: a URL as given (``s3://bucket/c10.zarr``), else a Path."""
    from tmkt_data.store.location import is_url

    return text if is_url(text) else Path(text)


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
