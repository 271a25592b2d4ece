"""The CLI starts light: ``cairn --help``, ``cairn fingerprint DIR`` and ``import cairn`` import no
command they do not run, and none of httpx, pyarrow, numpy, pandas, pydantic-settings or rich
(each checked in a fresh interpreter); the root help's static table of short helps matches every
command's own help, so it cannot drift. Speed itself is measured by benchmarks/bench_cli.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from cairn.cli.lazy import load_command
from cairn.cli.main import COMMANDS, DEFAULT_DATA_DIR, cli

HEAVY = ("httpx", "pyarrow", "numpy", "pandas", "pydantic_settings", "rich", "cairn.sdk", "cairn.kernel.settings")


def modules_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; which HEAVY modules and which ``cairn.cli.*`` modules
    it left imported, and what it printed before."""
    probe = (f"import sys\n{code}\n"
             f"print('\\n' + __import__('json').dumps({{'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules), "
             "'cli': sorted(m for m in sys.modules if m.startswith('cairn.cli.'))}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed, _, last = done.stdout.rstrip("\n").rpartition("\n")
    return {**json.loads(last), "printed": printed}


def run_cli(*args: str) -> str:
    return f"from cairn.cli.main import cli\ncli({list(args)!r}, prog_name='cairn', standalone_mode=False, terminal_width=80)"


def test_root_help_imports_no_command_and_nothing_heavy() -> None:
    found = modules_after(run_cli("--help"))
    assert found["heavy"] == []
    assert found["cli"] == ["cairn.cli.lazy", "cairn.cli.main", "cairn.cli.output"]
    for name in COMMANDS:  # every command is listed all the same
        assert f"  {name} " in str(found["printed"]), name


def test_fingerprint_imports_only_its_own_command(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    found = modules_after(run_cli("fingerprint", str(tmp_path)))
    assert "digest: " in str(found["printed"])
    assert found["heavy"] == []
    assert found["cli"] == ["cairn.cli.fingerprint", "cairn.cli.lazy", "cairn.cli.main", "cairn.cli.output"]

    help_only = modules_after(run_cli("fingerprint", "--help"))
    assert help_only["heavy"] == [] and "PATH" in str(help_only["printed"])


def test_import_cairn_is_light_and_its_exports_still_load() -> None:
    assert modules_after("import cairn")["heavy"] == []
    found = modules_after("import cairn\nprint(cairn.start_run.__name__, cairn.Client.__name__, cairn.ApiError.__name__)")
    assert "start_run Client ApiError" in str(found["printed"])


def test_the_sdk_client_and_runs_leave_arrow_and_numpy_unimported() -> None:
    """The client and ``start_run`` (every job process, agent and script) import pyarrow and numpy
    only when they send or read metrics."""
    found = modules_after("from cairn.sdk import Client, start_run\nimport cairn.sdk.run_diff")
    assert not {"pyarrow", "numpy", "pandas"} & set(found["heavy"]), found["heavy"]


def test_a_command_group_imports_its_module_only() -> None:
    found = modules_after(run_cli("metrics", "--help"))
    assert "cairn.cli.metrics" in found["cli"]
    assert "cairn.cli.monitor" not in found["cli"] and "cairn.cli.deployments" not in found["cli"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_static_short_help_matches_the_command(name: str) -> None:
    command = load_command(COMMANDS[name].target)
    assert command.name == name
    for limit in (30, 45, 60, 80, 10_000):  # the table cut as click cuts the real help
        assert COMMANDS[name].short_help_str(limit) == command.get_short_help_str(limit), limit


def test_the_root_help_reads_the_same_whether_commands_are_loaded_or_not() -> None:
    lazy = modules_after(run_cli("--help"))
    load_all = ("import click\nfrom cairn.cli.main import COMMANDS, cli\n"
                "for name in COMMANDS:\n    assert cli.get_command(click.Context(cli), name) is not None\n")
    loaded = modules_after(load_all + run_cli("--help"))  # every command imported: its own help is used
    assert "cairn.cli.monitor" in loaded["cli"] and "cairn.cli.monitor" not in lazy["cli"]
    assert loaded["printed"] == lazy["printed"]


def test_runs_keeps_its_reproducibility_commands() -> None:
    runs = cli.get_command(click.Context(cli), "runs")
    assert isinstance(runs, click.Group)
    assert {"diff", "environment", "reproduce", "list", "show"} <= set(runs.commands)


def test_the_cli_default_data_dir_is_the_settings_default() -> None:
    from cairn.kernel.settings import DEFAULT_DATA_DIR as SETTINGS_DEFAULT

    assert DEFAULT_DATA_DIR == SETTINGS_DEFAULT
