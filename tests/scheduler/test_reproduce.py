"""``cairn runs reproduce``: a job's run and a laptop run are re-run from their records on a real
agent; the re-run carries the same code, params, seeds and data, and the report compares them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.sdk.client import Client
from cairn.sdk.reproduce import REPRODUCES_TAG, CannotReproduce, report, reproduce, spec_from_record

SEEDED_SCRIPT = textwrap.dedent('''
    import os, random, cairn
    with cairn.start_run(os.environ.get("CAIRN_PROJECT"), seed=int(os.environ.get("CAIRN_SEED", "11"))) as run:
        lr = float(os.environ.get("CAIRN_PARAM_LR", "0.5"))
        run.log_params({"lr": lr})
        score = random.random() * lr  # seeded: the same on every re-run
        run.log_metric("score", score, step=0)
        run.flush()
        print("score", score)
''')


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


def test_a_job_run_is_re_run_with_the_same_spec_and_reproduces_its_metrics(
        client: Client, agents, project: str, queue: str, tmp_path: Path) -> None:
    agents.start(queue)
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(SEEDED_SCRIPT)
    job = client.submit_job({"command": "python train.py", "code": str(code), "queue": queue,
                             "params": {"lr": 0.25}, "seed": 5}, project)
    assert client.wait_job(project, job["id"], timeout=120)["status"] == "succeeded"

    again = reproduce(client, project, job["run_id"])
    assert client.wait_job(project, again["id"], timeout=120)["status"] == "succeeded"
    original_spec = client.get_job(project, job["id"])["spec"]
    new_spec = client.get_job(project, again["id"])["spec"]
    for field in ("command", "code", "params", "seed", "requirements", "datasets", "queue"):
        assert new_spec[field] == original_spec[field], field
    new_run = client.get_run(project, again["run_id"])
    assert new_run["tags"][REPRODUCES_TAG] == job["run_id"]

    result = report(client, job["run_id"], again["run_id"], tolerance=0.0)
    assert result["metrics_within_tolerance"] and result["metrics_outside_tolerance"] == []
    diff = result["diff"]
    assert diff["params"] == {"added": {}, "removed": {}, "changed": {}} or not any(diff["params"].values())
    assert diff["code"]["same"] if "same" in diff["code"] else True


def test_a_laptop_run_is_re_run_from_its_record_on_an_agent(
        platform, client: Client, agents, project: str, queue: str, tmp_path: Path) -> None:
    agents.start(queue)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(SEEDED_SCRIPT)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "train")
    env = {**os.environ, "CAIRN_URL": platform.gateway, "CAIRN_TOKEN": platform.token, "CAIRN_PROJECT": project}
    env.pop("CAIRN_RUN_ID", None)
    out = subprocess.run([sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    runs = client.search_runs(project)["runs"]
    laptop = next(r for r in runs if REPRODUCES_TAG not in (r.get("tags") or {}) and
                  "cairn.job_id" not in (r.get("tags") or {}))

    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})
    result = runner.invoke(cli, ["--url", platform.gateway, "--json", "runs", "reproduce", "-p", project,
                                 laptop["id"], "--queue", queue, "--timeout", "120"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["job"]["status"] == "succeeded"
    assert answer["metrics_within_tolerance"], answer["diff"]["metrics"]
    record = client.get_run_environment(project, answer["reproduced"])
    original = client.get_run_environment(project, laptop["id"])
    assert record["code"]["archive_digest"] == original["code"]["archive_digest"]
    assert record["seeds"] == original["seeds"]


def test_a_record_without_code_or_with_an_unusable_command_is_refused_clearly() -> None:
    run = {"params": {"lr": "0.1"}}
    with pytest.raises(CannotReproduce, match="no code snapshot"):
        spec_from_record(run, {"code": None, "command": ["train.py"]})
    code = {"archive_digest": "a" * 64}
    with pytest.raises(CannotReproduce, match="absolute path"):
        spec_from_record(run, {"code": code, "command": ["/home/me/train.py"]})
    with pytest.raises(CannotReproduce, match="--command"):
        spec_from_record(run, {"code": code, "command": ["-c", "print(1)"]})
    spec = spec_from_record(run, {"code": code, "command": ["train.py", "--epochs", "3"], "seeds": {"seed": 4},
                                  "datasets": [{"dataset": "reviews", "version": 3}]})
    assert spec == {"command": ["python", "train.py", "--epochs", "3"], "code": code, "params": {"lr": "0.1"},
                    "datasets": ["reviews@3"], "seed": 4}
