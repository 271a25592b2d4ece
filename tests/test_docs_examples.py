"""Every ``cairn ...`` command line in README.md, docs/*.md and every command's ``--help`` text is
parsed by the real CLI (click's parser, no server): an unknown command or option fails here, so
the docs cannot drift from the CLI again. Placeholders (``RUN_ID``, ``<run-id>``) are fine as
arguments: values are not checked (``resilient_parsing``), names are."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from cairn.cli.main import cli, lift_global_flags

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# where a command line ends: shell operators, a comment, prose after it in a --help text
STOPS = {"&&", "||", "|", ";", "#", "&"}
SHELL = re.compile(r"\s(?:\|\|?|&&|;|>>?|2>&1)(?=\s|$)")  # an unquoted operator ends the command
FENCE = re.compile(r"^\s*```")
INLINE = re.compile(r"`([^`\n]+)`")


def command_lines(text: str) -> Iterator[str]:
    """Each ``cairn ...`` in fenced blocks (continuation lines joined) and inline code spans."""
    in_block = False
    pending = ""
    for line in text.splitlines():
        if FENCE.match(line):
            in_block = not in_block
            continue
        if in_block:
            pending += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
            if not line.rstrip().endswith("\\"):
                yield from _commands_in(pending)
                pending = ""
        else:
            for span in INLINE.findall(line):
                yield from _commands_in(span)


def _commands_in(text: str) -> Iterator[str]:
    for match in re.finditer(r"(?:^|[\s(`$])cairn\s+(?=[-a-z])", text):
        yield "cairn " + text[match.end():]


def help_lines() -> Iterator[tuple[str, str]]:
    """(command path, a ``cairn ...`` line) from every command's help text."""

    def walk(cmd: click.Command, path: list[str]) -> Iterator[tuple[str, str]]:
        for line in (cmd.help or "").splitlines():
            if "Example" not in line and not line.strip().startswith(("cairn ", "$ cairn ")):
                continue  # prose that mentions a command ("a second cairn up on the same data dir")
            for found in _commands_in(line):
                yield " ".join(path), found
        if isinstance(cmd, click.Group):  # get_command: the root group imports its commands lazily
            ctx = click.Context(cmd, info_name=path[-1])
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, f"{' '.join(path)} lists {name} but has no such command"
                yield from walk(sub, [*path, name])

    yield from walk(cli, ["cairn"])


def argv(line: str) -> list[str]:
    """The words of one ``cairn ...`` line up to where the shell or prose takes over."""
    for match in SHELL.finditer(line):
        before = line[:match.start()]
        if before.count("'") % 2 == 0 and before.count('"') % 2 == 0:
            line = before
            break
    try:
        words = shlex.split(line, comments=False)
    except ValueError:  # an unbalanced quote in prose: the words up to it
        words = line.split()
    out: list[str] = []
    for word in words[1:]:
        if word in STOPS or word.startswith(("(", "#", "|", "`")) or word == "cairn" or word in ("...", "…"):
            break  # "..." : anything may follow
        if word in ("\\|", "[", "]"):
            continue  # a synopsis' alternatives
        if "`" in word:  # the end of an inline code span inside prose
            out.append(word.split("`", 1)[0])
            break
        word = word.strip("[]") if word.startswith("[") else word.rstrip("]")  # synopsis: [--output f.json]
        out.append(word.rstrip(").,:"))
        if word.endswith((")", ".")) and not word.endswith(".."):
            break  # the command ends inside a sentence: "(cairn runs show -p P RUN_ID)."
    return out


def parse(args: list[str]) -> None:
    """Match each (sub)command and its options with click's own parser, as ``cairn`` would; raise
    on an unknown command or option or too many arguments. Values are not converted (a placeholder
    is no file, no number), and missing arguments are fine (a doc may show part of a line)."""
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="cairn")
    rest = lift_global_flags(list(args))
    while True:
        if any(w in ("--help", "-h") for w in rest):
            return
        _opts, rest, _order = cmd.make_parser(ctx).parse_args(rest)
        if not isinstance(cmd, click.Group):
            break
        if not rest:
            return
        if any(mark in rest[0] for mark in "|/[") or rest[0] == "...":
            return  # a synopsis ("datasets push/pull/diff", "list|show"): no command line
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            raise click.UsageError(f"no such command {rest[0]!r} under {ctx.command_path!r}")
        ctx = click.Context(sub, info_name=rest[0], parent=ctx)
        cmd, rest = sub, rest[1:]
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    if any(a.nargs < 0 for a in arguments):
        return
    if len(rest) > sum(a.nargs for a in arguments):
        raise click.UsageError(f"{ctx.command_path}: unexpected extra arguments {rest[len(arguments):]}")


def doc_examples() -> list[tuple[str, str]]:
    found = [(str(p.relative_to(ROOT)), line) for p in DOCS for line in command_lines(p.read_text())]
    return found + list(help_lines())


def test_the_extractor_finds_the_documented_commands() -> None:
    found = doc_examples()
    assert len(found) > 200
    readme = {line for where, line in found if where == "README.md"}
    assert any(line.startswith("cairn up") for line in readme)
    assert argv("cairn runs list -p x --json | jq .") == ["runs", "list", "-p", "x", "--json"]
    assert argv("cairn monitor rules add --comparison '>' --threshold 2 > out") == [
        "monitor", "rules", "add", "--comparison", ">", "--threshold", "2"]


def test_the_parser_refuses_what_the_cli_refuses() -> None:
    with pytest.raises(click.UsageError):
        parse(["tokens", "create", "--kind", "service"])
    with pytest.raises(click.UsageError):
        parse(["runz", "list"])
    parse(["sweeps", "table", "-p", "vision", "SWEEP_ID", "--json"])


def test_every_documented_command_line_parses() -> None:
    failures = []
    for where, line in doc_examples():
        words = argv(line)
        if not words:
            continue
        try:
            parse(words)
        except click.BadOptionUsage as err:
            if not (words[-1] == err.option_name and "requires an argument" in err.message):
                failures.append(f"{where}: {line.strip()}\n    -> {err.format_message()}")
            # else: a prose mention of an option ("cairn serve --deployment"), its value left out
        except click.UsageError as err:
            failures.append(f"{where}: {line.strip()}\n    -> {err.format_message()}")
    assert not failures, f"{len(failures)} documented command lines do not parse:\n" + "\n".join(failures)
