"""Printing for the CLI: rich tables for people, JSON for scripts (``--json``), and the one error
path every command's failure goes through (:func:`fail`), with the exit codes docs/cli.md lists.

Every command imports this module, so it imports nothing heavy itself: rich when something is
printed, the SDK client (and httpx) when a command first uses ``ctx.client``. An error of the SDK
or of httpx can only exist once its module was imported, so :func:`fail` recognises them by
looking in ``sys.modules`` rather than by importing them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from cairn.sdk.client import ApiError, CannotReach, Client


def get_console() -> Console:
    """The one rich console (stdout), made on first use (importing rich costs tens of ms) and kept
    as this module's ``console`` (which a test may replace)."""
    made = globals().get("console")
    if made is None:
        from rich.console import Console

        made = globals()["console"] = Console()
    return made


def __getattr__(name: str) -> Any:
    if name == "console":  # `from cairn.cli.output import console`, as commands have always done
        return get_console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _is(err: BaseException, module: str, name: str) -> bool:
    """``isinstance(err, module.name)`` without importing ``module``: an instance of a class from
    a module that was never imported cannot exist."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(err, getattr(loaded, name))

EXIT_REFUSED = 1  # the API said no, or a file or value given is wrong
EXIT_USAGE = 2  # click's own: unknown option, missing argument
EXIT_UNREACHABLE = 3  # no answer from the gateway at all


class Ctx:
    """What every command gets: the client, the output mode and whether to show tracebacks."""

    def __init__(self, url: str | None, as_json: bool, *, debug: bool = False, token: str | None = None) -> None:
        self.url = url
        self.as_json = as_json
        self.debug = debug
        self.token = token
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from cairn.sdk.client import Client

            self._client = Client(self.url, self.token)
        return self._client


def debugging() -> bool:
    """``--debug`` (anywhere on the line) or ``CAIRN_DEBUG=1``: let tracebacks through."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Ctx) if ctx is not None else None
    return bool(obj and obj.debug) or os.environ.get("CAIRN_DEBUG", "") not in ("", "0", "false", "no")


def _token_hint(err: ApiError) -> str:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Ctx) if ctx is not None else None
    if err.status != 401 or obj is None or obj._client is None or obj._client.token:
        return ""
    return "; no token was found, looked in: " + ", ".join(obj._client.token_looked)


def fail(err: BaseException) -> NoReturn:
    """The CLI's one error path: a one-line message on stderr and an exit code, or, debugging,
    the exception itself (with its traceback)."""
    if debugging():
        raise err
    if _is(err, "cairn.sdk.client", "CannotReach"):
        click.echo(f"error: {cast('CannotReach', err).message}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    if _is(err, "httpx", "TransportError"):  # a module that talks to httpx without Client.request
        from cairn.sdk.client import CannotReach

        ctx = click.get_current_context(silent=True)
        obj = ctx.find_object(Ctx) if ctx is not None else None
        url = obj.client.url if obj is not None else "its URL"
        click.echo(f"error: {CannotReach(url, str(err) or type(err).__name__).message}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    if _is(err, "cairn.sdk.client", "ApiError"):
        api_err = cast("ApiError", err)
        click.echo(f"error: {api_err.message} ({api_err.status} {api_err.code}){_token_hint(api_err)}", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(f"error: {err}", err=True)
    sys.exit(EXIT_REFUSED)


pass_ctx = click.make_pass_decorator(Ctx)


def emit(ctx: Ctx, data: Any, *, columns: Iterable[str] | None = None, title: str | None = None) -> None:
    """Print ``data`` as JSON (``--json``) or as a table/record for people."""
    if ctx.as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if isinstance(data, list) and columns is not None:
        from rich.table import Table

        table = Table(title=title)
        cols = list(columns)
        for col in cols:
            cells = [_cell(row.get(col)) for row in data]
            if is_id_column(col):  # printed whole, never "01a24…": other columns give up the room
                table.add_column(col, no_wrap=True, overflow="fold", min_width=max(map(len, cells), default=0))
            else:
                table.add_column(col)
        for row in data:
            table.add_row(*[_cell(row.get(c)) for c in cols])
        print_table(table)
    elif isinstance(data, dict):
        console = get_console()
        for key, value in data.items():
            console.print(f"[bold]{key}[/bold]: {_cell(value)}")
    else:
        get_console().print(data)


def is_id_column(name: str) -> bool:
    return name == "id" or name.endswith(("_id", "digest")) or name == "agent"


def print_table(table: Table) -> None:
    """A table at its natural width when stdout is no terminal (a pipe, a file), so nothing is cut
    at 80 columns; in a terminal, rich fits it to the window (ID columns keep their width)."""
    from rich.measure import Measurement

    console = get_console()
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(width=100_000), table).maximum
    console.print(table, width=max(console.width, natural))


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def api_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Send a command's API, transport and input errors down :func:`fail` (the root group does the
    same for commands without this decorator). A broken pipe is not ours to report: it goes on to
    the root group, which exits quietly."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if (isinstance(err, ValueError)  # bad references, files
                    or _is(err, "cairn.sdk.client", "ApiError") or _is(err, "httpx", "TransportError")):
                fail(err)
            if isinstance(err, OSError) and not isinstance(err, BrokenPipeError):
                fail(err)
            raise

    return wrapper


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{what} must look like key=value, got {pair!r}")
        out[key] = value
    return out
