"""``cairn jobs`` from the command line: a YAML spec whose code is the git work tree around it
(uncommitted changes included); list, show, logs; help with examples; agent registration rights;
an idempotent submit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import loopback
import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.sdk.client import Client


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_submit_a_yaml_spec_with_the_uncommitted_work_tree_then_list_show_and_logs(
        platform, client: Client, agents, project: str, queue: str, tmp_path: Path) -> None:
    agents.start(queue)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "main.py").write_text("print('committed')\n")
    git(repo, "add", "main.py")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "first")
    (repo / "main.py").write_text("print('uncommitted change', open('extra.txt').read())\n")
    (repo / "extra.txt").write_text("untracked file")
    (repo / "job.yaml").write_text(f"project: {project}\ncommand: python main.py\nqueue: {queue}\n"
                                   "params: {{lr: 0.5}}\n".replace("{{", "{").replace("}}", "}"))
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})

    def invoke(*args: str) -> str:
        result = runner.invoke(cli, ["--url", platform.gateway, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    job = json.loads(invoke("--json", "jobs", "submit", str(repo / "job.yaml"), "--wait"))
    assert job["status"] == "succeeded"
    assert job["spec"]["code"]["dirty"] is True and job["spec"]["code"]["commit"]
    assert "uncommitted change untracked file" in invoke("jobs", "logs", "-p", project, job["id"])
    listed = json.loads(invoke("--json", "jobs", "list", "-p", project))
    assert [j["id"] for j in listed] == [job["id"]]
    shown = json.loads(invoke("--json", "jobs", "show", "-p", project, job["id"]))
    assert shown["spec"]["params"] == {"lr": 0.5} and shown["history"][-1]["type"] == "job.succeeded"


def test_every_jobs_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    for args in (["jobs"], *[["jobs", c] for c in ("submit", "list", "show", "logs", "cancel")], ["agent"]):
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, args


def test_only_site_admins_and_service_accounts_may_register_agents(platform, client: Client) -> None:
    user = client.create_token("sched-user", kind="user")["token"]
    service = client.create_token("sched-bot", kind="service")["token"]
    body = {"agent_id": "probe-1", "name": "probe", "queue": "default", "host": "127.0.0.1",
            "capacity": {"cpus": 1, "memory_mib": 10, "gpus": 0, "gpu_types": []}}
    url = f"{platform.gateway}/api/v1/scheduler/agents"
    refused = loopback.post(url, json=body, headers={"Authorization": f"Bearer {user}"})
    assert refused.status_code == 403 and "service-account" in refused.json()["error"]["message"]
    accepted = loopback.post(url, json=body, headers={"Authorization": f"Bearer {service}"})
    assert accepted.status_code == 200 and accepted.json()["agent"]["id"] == "probe-1"
    assert loopback.get(url, headers={"Authorization": f"Bearer {user}"}).status_code == 200


def test_a_repeated_submit_with_the_same_idempotency_key_makes_one_job_and_one_run(
        client: Client, project: str) -> None:
    spec = {"command": ["true"], "code": None, "queue": "nobody-serves-this"}
    path = f"/api/v1/scheduler/projects/{project}/jobs"
    first = client.request("POST", path, json=spec, idempotency_key="same-key")
    again = client.request("POST", path, json=spec, idempotency_key="same-key")
    assert again["id"] == first["id"] and again["run_id"] == first["run_id"]
    assert len(client.list_jobs(project)) == 1
    assert len(client.search_runs(project)["runs"]) == 1


@pytest.mark.parametrize("bad", ["../x", "a b"])
def test_a_bad_job_id_is_a_clear_4xx(client: Client, project: str, bad: str) -> None:
    with pytest.raises(Exception) as err:
        client.get_job(project, bad)
    assert getattr(err.value, "status", 0) in (400, 404, 422)  # "../x" is refused before routing


def test_the_scheduler_read_model_rebuilds_from_the_log_to_the_same_content(platform) -> None:
    base = f"{platform.gateway}/api/v1/scheduler/admin"
    for _ in range(5):  # an agent's lease may run out in between: compare at the same sequence
        before = loopback.get(f"{base}/content-hash", headers=platform.headers, timeout=30).json()
        rebuilt = loopback.post(f"{base}/rebuild", headers=platform.headers, timeout=300).json()
        if rebuilt["applied_seq"] == before["applied_seq"]:
            break
    assert rebuilt["applied_seq"] == before["applied_seq"]
    assert rebuilt["content_hash"] == before["content_hash"]
