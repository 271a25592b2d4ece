"""Printing for the CLI: rich tables for people, JSON for scripts (``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cairn.sdk.client import ApiError, Client

console = Console()


class Ctx:
    """What every command gets: the client and the output mode."""

    def __init__(self, url: str | None, as_json: bool) -> None:
        self.url = url
        self.as_json = as_json
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url)
        return self._client


pass_ctx = click.make_pass_decorator(Ctx)


def emit(ctx: Ctx, data: Any, *, columns: Iterable[str] | None = None, title: str | None = None) -> None:
    """Print ``data`` as JSON (``--json``) or as a table/record for people."""
    if ctx.as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if isinstance(data, list) and columns is not None:
        table = Table(title=title)
        cols = list(columns)
        for col in cols:
            table.add_column(col)
        for row in data:
            table.add_row(*[_cell(row.get(c)) for c in cols])
        console.print(table)
    elif isinstance(data, dict):
        for key, value in data.items():
            console.print(f"[bold]{key}[/bold]: {_cell(value)}")
    else:
        console.print(data)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def api_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn API errors into a one-line message and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as err:
            click.echo(f"error: {err.message} ({err.status} {err.code})", err=True)
            sys.exit(1)
        except OSError as err:
            click.echo(f"error: cannot reach Cairn: {err}", err=True)
            sys.exit(1)
        except ValueError as err:  # bad references, unsafe manifests, failed verification
            click.echo(f"error: {err}", err=True)
            sys.exit(1)

    return wrapper


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{what} must look like key=value, got {pair!r}")
        out[key] = value
    return out
