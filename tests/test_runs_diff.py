"""`runs diff` end to end: two runs in different projects that differ in params, code, datasets
and metrics show exactly those differences; non-members get 404; the CLI's --json."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import loopback

# The environment record lists the frameworks already imported. `import cairn` no longer imports
# numpy and pandas (issue 24), and the SDK loads them on first use during run A, so run B (same
# process) would list them and run A not: imported here, both runs see the same process.
import numpy  # noqa: F401
import pandas  # noqa: F401
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli

from platform_harness import Platform, wait_metric_summaries

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def world(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run A in project diff-a and run B in diff-b: other lr, other commit, other dataset version,
    other final loss; a token for a member of both projects and one for an outsider."""
    tmp = tmp_path_factory.mktemp("diff")
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("def train():\n    return 'v1'\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    data = tmp / "data"
    data.mkdir()
    admin = cairn.Client(platform.gateway, token=platform.token)
    runs = {}
    for side, project, lr, loss in (("a", "diff-a", 0.1, 0.5), ("b", "diff-b", 0.2, 0.25)):
        admin.ensure_project(project)
        (data / "x.csv").write_text(f"rows for {side}\n")
        admin.artifacts.push_dataset("diff-a", "mnist", data)
        if side == "b":
            (repo / "train.py").write_text("def train():\n    return 'v2'\n")
            git(repo, "commit", "-q", "-am", "v2")
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(repo)
            with cairn.start_run(project=project, params={"lr": lr, "epochs": 3}, seed=42, client=admin) as run:
                run.use_dataset(f"mnist@v{1 if side == 'a' else 2}") if project == "diff-a" else None
                run.log_metric("loss", loss * 2, step=0)
                run.log_metric("loss", loss, step=1)
                assert run.flush()
        runs[side] = run.id
    # the diff reads final metrics from the registry: once their metric.summarized reached it (after
    # both runs: a wait between them would import modules that run B's environment record would show)
    for project, side in (("diff-a", "a"), ("diff-b", "b")):
        wait_metric_summaries(platform, project, {runs[side]: {"loss": 2}})
    tokens = {user: admin.create_token(user)["token"] for user in ("both-u", "only-a-u", "outsider-u")}
    admin.add_member("diff-a", "both-u", "viewer")
    admin.add_member("diff-b", "both-u", "viewer")
    admin.add_member("diff-a", "only-a-u", "viewer")
    admin.ensure_project("diff-other")
    admin.add_member("diff-other", "outsider-u", "admin")
    return {"runs": runs, "tokens": tokens, "repo": repo, "admin": admin}


def test_diff_shows_exactly_the_differences(platform: Platform, world: dict) -> None:
    with cairn.Client(platform.gateway, token=world["tokens"]["both-u"]) as client:
        diff = client.diff_runs(world["runs"]["a"], world["runs"]["b"])
    assert (diff["a"]["project"], diff["b"]["project"]) == ("diff-a", "diff-b")
    assert diff["params"] == {"added": {}, "removed": {}, "changed": {"lr": {"a": "0.1", "b": "0.2"}}}
    code = diff["code"]
    assert set(code["changed"]) == {"commit", "archive_digest"}
    assert code["a"]["branch"] == code["b"]["branch"] == "main" and code["a"]["dirty"] is False
    assert diff["environment"]["identical"] is True, json.dumps(diff["environment"])  # same process, same machine
    assert diff["seeds"]["changed"] == {} and diff["command"]["same"] is True
    metrics = diff["metrics"]["metrics"]
    assert set(metrics) == {"loss"} and math.isclose(metrics["loss"]["delta"], -0.25)
    assert metrics["loss"]["within_tolerance"] is False
    assert diff["datasets"]["removed"]["mnist"]["version"] == 1  # only run A used a dataset


def test_metric_tolerance_is_applied(platform: Platform, world: dict) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        diff = client.diff_runs(world["runs"]["a"], world["runs"]["b"], tolerance=0.5, relative=True)
    assert diff["metrics"]["all_within_tolerance"] is True


def test_diff_needs_both_runs_in_my_projects(platform: Platform, world: dict) -> None:
    a, b = world["runs"]["a"], world["runs"]["b"]
    for user in ("outsider-u", "only-a-u"):
        resp = loopback.get(f"{platform.gateway}/api/v1/registry/runs/diff", params={"a": a, "b": b},
                         headers={"Authorization": f"Bearer {world['tokens'][user]}"})
        assert resp.status_code == 404, (user, resp.text)
        assert "does not exist in your projects" in resp.json()["error"]["message"]
    missing = loopback.get(f"{platform.gateway}/api/v1/registry/runs/diff", params={"a": a, "b": "nope"},
                        headers=platform.headers)
    assert missing.status_code == 404


def test_cli_diff_json_includes_the_unified_code_diff(platform: Platform, world: dict) -> None:
    runner = CliRunner(env={"CAIRN_TOKEN": world["tokens"]["both-u"]})
    result = runner.invoke(cli, ["--url", platform.gateway, "--json", "runs", "diff", world["runs"]["a"],
                                 world["runs"]["b"]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    diff = json.loads(result.output)
    unified = diff["code"]["unified_diff"]
    assert "-    return 'v1'" in unified and "+    return 'v2'" in unified and "a/train.py" in unified
    assert diff["params"]["changed"] == {"lr": {"a": "0.1", "b": "0.2"}}


def test_cli_diff_tables_for_people(platform: Platform, world: dict) -> None:
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})
    result = runner.invoke(cli, ["--url", platform.gateway, "runs", "diff", world["runs"]["a"], world["runs"]["b"]],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for part in ("params", "lr", "commit", "packages: same", "final metrics", "loss", "+    return 'v2'"):
        assert part in result.output, part


def test_cli_environment_shows_the_record(platform: Platform, world: dict) -> None:
    runner = CliRunner(env={"CAIRN_TOKEN": world["tokens"]["both-u"]})
    args = ["--url", platform.gateway, "runs", "environment", "-p", "diff-a", world["runs"]["a"]]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mnist@v1" in result.output and "seed=42" in result.output and "main" in result.output
    as_json = json.loads(runner.invoke(cli, [args[0], args[1], "--json", *args[2:]], catch_exceptions=False).output)
    assert as_json["code"]["commit"] == git(world["repo"], "rev-parse", "HEAD~1")
