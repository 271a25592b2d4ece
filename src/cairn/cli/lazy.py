"""A click group whose commands are imported only when they are invoked.

``cairn --help`` and ``cairn fingerprint DIR`` must not pay for importing every command group (and,
through them, httpx, the SDK, rich, pandas): a command's module is imported when that command is
looked up to run, and the root help lists the commands from a static table of short helps instead
of importing them. ``tests/test_cli_startup.py`` checks that the table matches each command's real
help, so it cannot drift.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click


class LazyCommand(NamedTuple):
    """Where a command lives (``"module:attribute"``) and its short help as ``cairn --help`` shows it
    (the first sentence of its docstring, what ``get_short_help_str`` gives without a limit)."""

    target: str
    short_help: str

    def short_help_str(self, limit: int) -> str:
        """The short help cut to ``limit`` characters exactly as click cuts a command's help (a
        stand-in command with this text as its help, so click's own rule applies)."""
        return click.Command(None, help=self.short_help).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A group with commands of its own (``self.commands``) plus lazy ones (``lazy``), imported on
    first lookup and cached."""

    def __init__(self, *args: object, lazy: dict[str, LazyCommand] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy: dict[str, LazyCommand] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load_command(self.lazy[cmd_name].target), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The root help's command list, without importing a lazy command: its short help comes
        from the table, cut to the width as click cuts a real command's."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit)))
            else:
                rows.append((name, self.lazy[name].short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load_command(target: str) -> click.Command:
    """Import ``"package.module:attribute"`` and return the click command it names."""
    module_name, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module_name), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command
