"""The ``cairn`` command line against a running platform (``--json`` output is parsed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli

from model_helpers import push_model_folder
from platform_harness import Platform


@pytest.fixture()
def run_cli(platform: Platform):  # type: ignore[no-untyped-def]
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})

    def invoke(*args: str, ok: bool = True) -> object:
        result = runner.invoke(cli, ["--url", platform.gateway, "--json", *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
            return json.loads(result.output)
        assert result.exit_code != 0
        return result.output

    return invoke


def test_registry_round_trip(run_cli, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("projects", "create", "clip", "--description", "demo")["name"] == "clip"
    assert "clip" in [p["name"] for p in run_cli("projects", "list")]
    assert run_cli("experiments", "create", "-p", "clip", "base")["name"] == "base"
    run = run_cli("runs", "create", "-p", "clip", "-e", "base", "--param", "lr=0.1", "--tag", "team=cv")
    assert run["params"] == {"lr": "0.1"} and run["tags"] == {"team": "cv"}
    assert run_cli("runs", "tag", "-p", "clip", run["id"], "stage=eval")["tags"]["stage"] == "eval"
    assert run_cli("runs", "params", "-p", "clip", run["id"], "bs=8")["params"]["bs"] == "8"
    assert run_cli("runs", "finish", "-p", "clip", run["id"])["status"] == "finished"
    found = run_cli("runs", "list", "-p", "clip", "--filter", "params.lr = '0.1'")
    assert [r["id"] for r in found["runs"]] == [run["id"]]
    assert run_cli("runs", "show", "-p", "clip", run["id"])["status"] == "finished"
    assert run_cli("models", "create", "-p", "clip", "enc")["name"] == "enc"
    digest = push_model_folder(platform.gateway, platform.headers, "clip")  # the manifest digest a push prints
    version = run_cli("models", "register", "-p", "clip", "enc", "--run", run["id"], "--digest", digest)
    assert version["version"] == 1
    assert run_cli("models", "alias", "-p", "clip", "enc", "production", "1")["aliases"] == ["production"]
    assert run_cli("models", "alias", "-p", "clip", "enc", "production")["version"] == 1
    assert len(run_cli("models", "alias", "-p", "clip", "enc", "production", "--history")) == 1
    assert run_cli("models", "versions", "-p", "clip", "enc")[0]["run_id"] == run["id"]
    assert run_cli("models", "show", "-p", "clip", "enc")["latest_version"] == 1
    status = run_cli("status")
    assert status["ready"] is True and status["services"]["registry"]["ready"] is True
    rebuilt = run_cli("admin", "rebuild", "registry")
    assert rebuilt["applied_seq"] >= 1


def test_errors_are_one_line_with_nonzero_exit(run_cli) -> None:  # type: ignore[no-untyped-def]
    out = run_cli("runs", "show", "-p", "nowhere", "abc", ok=False)
    assert "error:" in out and "404" in out


def test_events_tail_prints_events(platform: Platform, run_cli) -> None:  # type: ignore[no-untyped-def]
    run_cli("projects", "create", "tailme")
    proc = subprocess.Popen([sys.executable, "-c", "from cairn.cli.main import cli; cli()", "--url", platform.gateway,
                             "--json", "events", "tail", "--project", "tailme", "--since", "0"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "CAIRN_TOKEN": platform.token})
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    event = json.loads(line)
    assert (event["type"], event["project"]) == ("project.created", "tailme")


def test_every_command_has_help() -> None:
    runner = CliRunner()
    groups = [[], ["projects"], ["experiments"], ["runs"], ["models"], ["events"], ["admin"], ["tokens"],
              ["members"], ["webhooks"], ["audit"], ["whoami"]]
    groups += [["datasets"], ["artifacts"]]
    groups += [["datasets", c] for c in ("push", "pull", "list", "show", "diff")]
    groups += [["artifacts", c] for c in ("log", "list", "get", "gc")]
    groups += [["deployments"], ["deployments", "envs"]]
    groups += [["deployments", c] for c in ("create", "list", "show", "rollback", "set-version", "scale", "split",
                                            "delete")]
    groups += [["deployments", "envs", c] for c in ("list", "protect", "unprotect")]
    for group in groups:
        result = runner.invoke(cli, [*group, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, group


def test_access_commands(run_cli) -> None:  # type: ignore[no-untyped-def]
    run_cli("projects", "create", "acl")
    made = run_cli("tokens", "create", "--user", "cli-user", "--description", "from the cli")
    assert made["token"].startswith("cairn_") and made["user"] == "cli-user"
    assert any(t["token_id"] == made["token_id"] for t in run_cli("tokens", "list"))
    assert run_cli("members", "add", "-p", "acl", "cli-user", "editor")[-1]["role"] in ("admin", "editor")
    assert {m["user"] for m in run_cli("members", "list", "-p", "acl")} >= {"cli-user"}
    page = run_cli("audit", "-p", "acl", "--type", "member.*")
    assert [e["type"] for e in page["events"]] == ["member.added"]
    hook = run_cli("webhooks", "create", "-p", "acl", "--url", "http://127.0.0.1:9/x", "--types", "run.*")
    assert hook["secret"].startswith("whsec_")
    assert [h["id"] for h in run_cli("webhooks", "list", "-p", "acl")] == [hook["id"]]
    assert run_cli("webhooks", "dead-letters", "-p", "acl", hook["id"]) == []
    run_cli("webhooks", "delete", "-p", "acl", hook["id"])
    assert run_cli("members", "remove", "-p", "acl", "cli-user") == []
    assert run_cli("tokens", "revoke", made["token_id"])["revoked"] is True
    assert run_cli("whoami")["site_admin"] is True


def test_runs_show_without_the_metrics_service_still_shows_the_run(platform: Platform, run_cli) -> None:  # type: ignore[no-untyped-def]
    run_cli("projects", "create", "nometrics")
    run = run_cli("runs", "create", "-p", "nometrics", "--param", "lr=0.1")
    platform.kill("metrics")
    try:
        result = CliRunner(env={"CAIRN_TOKEN": platform.token}).invoke(
            cli, ["--url", platform.gateway, "runs", "show", "-p", "nometrics", run["id"]], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert run["id"] in result.stdout and "lr" in result.stdout
        assert "warning: metrics unavailable" in result.stderr
    finally:
        platform.start_service("metrics")
