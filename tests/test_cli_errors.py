"""The CLI's one error path and global flags, with real processes: a port nobody listens on for
"cannot reach", real files for bad YAML, a real pipe closed early, and a real stack only where an
API answer is needed (401 without a token, tables of real IDs)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli, lift_global_flags
from cairn.sdk.client import ApiError, CannotReach, Client

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # projects of its own (clierr-*); stops nothing

CANNOT_REACH = "is `cairn up` running? try `cairn status`"


@pytest.fixture()
def dead_url() -> str:
    """A loopback port that was free a moment ago: nobody listens there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def cairn(*args: str, env: dict[str, str] | None = None, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess:
    """``cairn ARGS`` as a user runs it: a real process, stdout and stderr apart."""
    full_env = {**os.environ, "CAIRN_DEBUG": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cairn.cli.main", *args], stdout=stdout, stderr=subprocess.PIPE,
                          env=full_env, timeout=120, check=False)


def test_global_flags_are_lifted_from_anywhere_before_the_double_dash() -> None:
    assert lift_global_flags(["runs", "list", "-p", "x", "--json"]) == ["--json", "runs", "list", "-p", "x"]
    assert lift_global_flags(["--debug", "status", "--json"]) == ["--debug", "--json", "status"]
    assert lift_global_flags(["jobs", "run", "--", "echo", "--json"]) == ["jobs", "run", "--", "echo", "--json"]


@pytest.mark.parametrize("args", [["status"], ["runs", "list", "-p", "x", "--json"], ["--json", "projects", "list"],
                                  ["jobs", "list", "-p", "x"]])
def test_unreachable_gateway_is_one_line_and_exit_3(dead_url: str, args: list[str]) -> None:
    done = cairn("--url", dead_url, *args)
    err = done.stderr.decode()
    assert done.returncode == 3, err
    assert err.strip().splitlines() == [f"error: cannot reach Cairn at {dead_url}: [Errno 111] Connection refused; "
                                        f"{CANNOT_REACH}"]
    assert "Traceback" not in err and done.stdout == b""


def test_debug_anywhere_or_env_shows_the_traceback(dead_url: str) -> None:
    flag = cairn("--url", dead_url, "status", "--debug")
    env = cairn("--url", dead_url, "status", env={"CAIRN_DEBUG": "1"})
    for done in (flag, env):
        assert done.returncode != 0 and "Traceback" in done.stderr.decode()
        assert "cairn.sdk.client.CannotReach" in done.stderr.decode()


def test_sdk_raises_cannot_reach_at_once_without_a_transport_chain(dead_url: str) -> None:
    client = Client(dead_url, token="t")
    slept: list[float] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("cairn.sdk.client.time.sleep", slept.append)
        with pytest.raises(CannotReach) as caught:
            client.list_projects()
    assert slept == [], "refused before any answer: no hidden retries (their backoff would sleep)"
    assert isinstance(caught.value, ApiError) and caught.value.status == 0
    assert str(caught.value) == f"cannot reach Cairn at {dead_url}: [Errno 111] Connection refused; {CANNOT_REACH}"
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


def test_start_run_with_the_server_down_raises_cannot_reach(dead_url: str) -> None:
    from cairn.sdk import start_run

    with pytest.raises(CannotReach) as caught:
        start_run("vision", url=dead_url, record_environment=False, system_metrics=False)
    assert CANNOT_REACH in str(caught.value) and "httpx" not in str(caught.value)


def test_bad_yaml_names_file_and_line_without_traceback(tmp_path: Path, dead_url: str) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: train\ncommand: [python, train.py\nresources: {cpus: 1}\n")
    done = cairn("--url", dead_url, "jobs", "submit", str(spec), "-p", "vision")
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {spec}:3:10: ") and "not valid YAML" in err


def test_usage_errors_exit_2() -> None:
    done = cairn("runs", "list", "--no-such-option")
    assert done.returncode == 2 and "No such option" in done.stderr.decode()


def test_broken_pipe_exits_quietly(platform: Platform) -> None:
    client = Client(platform.gateway, token=platform.token)
    for i in range(30):
        client.create_project(f"clierr-pipe-{i:02d}", description="x" * 200)
    env = {**os.environ, "CAIRN_TOKEN": platform.token, "CAIRN_DEBUG": ""}
    proc = subprocess.Popen([sys.executable, "-m", "cairn.cli.main", "--url", platform.gateway, "--json", "projects",
                             "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()  # as `| head -c 10` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 1)
    assert "cannot reach" not in err and "Traceback" not in err and "error:" not in err


def test_401_without_a_token_says_where_it_looked(platform: Platform, tmp_path: Path) -> None:
    env = {"CAIRN_TOKEN": "", "CAIRN_DATA_DIR": str(tmp_path / "nowhere")}
    done = cairn("--url", platform.gateway, "projects", "list", env=env)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert len(err.strip().splitlines()) == 1 and "(401 " in err
    assert "$CAIRN_TOKEN (unset)" in err and "--token (not given)" in err
    assert str(tmp_path / "nowhere" / "admin.token") in err


def test_api_refusal_is_the_message_and_status(platform: Platform) -> None:
    done = cairn("--url", platform.gateway, "--token", platform.token, "runs", "show", "-p", "nowhere", "r1", "--json")
    err = done.stderr.decode()
    assert done.returncode == 1 and err.startswith("error: ") and "(404 " in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_json_before_or_after_the_subcommand(platform: Platform) -> None:
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})
    client = Client(platform.gateway, token=platform.token)
    run = client.start_new_run("clierr-flags", experiment="base", name="r")
    for args in (["projects", "list"], ["runs", "list", "-p", "clierr-flags"], ["status"], ["tokens", "list"],
                 ["runs", "show", "-p", "clierr-flags", run["id"]]):
        before = runner.invoke(cli, ["--url", platform.gateway, "--json", *args])
        after = runner.invoke(cli, ["--url", platform.gateway, *args, "--json"])
        assert before.exit_code == 0 and after.exit_code == 0, (args, before.output, after.output)
        assert type(json.loads(before.output)) is type(json.loads(after.output)), args


def test_piped_tables_print_whole_ids(platform: Platform) -> None:
    client = Client(platform.gateway, token=platform.token)
    ids = [client.start_new_run("clierr-wide", experiment="a-rather-long-experiment-name", name=f"run-{i}-" + "n" * 30,
                             params={"lr": 0.1})["id"] for i in range(3)]
    env = {"CAIRN_TOKEN": platform.token, "COLUMNS": "80"}
    done = cairn("--url", platform.gateway, "runs", "list", "-p", "clierr-wide", env=env)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    for run_id in ids:
        assert run_id in out, out


def test_a_narrow_terminal_keeps_id_columns_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from cairn.cli import output

    screen = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=screen, force_terminal=True, width=70, color_system=None))
    rows = [{"id": f"01JF{i}" + "X" * 22, "name": "a long run name that will have to wrap " * 2, "status": "running",
             "run_id": f"01JG{i}" + "Y" * 22} for i in range(3)]
    output.emit(output.Ctx(None, False), rows, columns=["id", "name", "status", "run_id"])
    text = screen.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 70
    for row in rows:
        assert row["id"] in text and row["run_id"] in text, text


def test_every_sdk_call_that_streams_or_reads_text_raises_cannot_reach(dead_url: str) -> None:
    """Calls that talk to httpx without Client.request (streams, text answers, blob bytes) give
    the same one-line error, not httpx's."""
    from cairn.sdk.lineage import Lineage

    client = Client(dead_url, token="t")
    calls = {
        "lineage graph as text": lambda: Lineage(client).graph("p", "run:x", format="dot"),
        "job log": lambda: client.job_logs("p", "j"),
        "pipeline drawing": lambda: client.pipeline_run_drawing("p", "r"),
        "blob exists": lambda: client.artifacts.exists("0" * 64),
        "blob range": lambda: client.artifacts.read_range("0" * 64, 0, 1),
    }
    for what, call in calls.items():
        with pytest.raises(CannotReach) as caught:
            call()
        assert str(caught.value).startswith(f"cannot reach Cairn at {dead_url}: "), what
        assert caught.value.__cause__ is None, what

