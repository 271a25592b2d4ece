"""Jobs end to end: submit -> a real agent runs it -> succeeded, with logs, metrics, an artifact
and params on the job's run; failures retried up to max_retries; bad specs refused."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cairn.kernel.natsauth import NatsCredentials
from cairn.sdk.client import ApiError, Client

from platform_harness import Platform

JOB_SCRIPT = textwrap.dedent('''
    import os, pathlib, cairn
    print("hello from the job", os.environ["CAIRN_JOB_ID"], "attempt", os.environ["CAIRN_ATTEMPT"])
    print("lr is", os.environ["CAIRN_PARAM_LR"], "seed", os.environ["CAIRN_SEED"])
    with cairn.start_run() as run:
        assert run.id == os.environ["CAIRN_RUN_ID"]
        for step in range(3):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        pathlib.Path("model.txt").write_text("weights")
        run.log_artifact("model.txt")
        run.flush()
    print("done")
''')


def write_code(folder: Path, script: str = JOB_SCRIPT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(script)
    return folder


def test_job_runs_on_an_agent_and_its_run_gets_logs_metrics_artifacts_params(
        client: Client, agents, project: str, queue: str, tmp_path: Path) -> None:
    agents.start(queue)
    code = write_code(tmp_path / "code")
    job = client.submit_job({"command": "python train.py", "code": str(code), "queue": queue,
                             "params": {"lr": 0.01}, "seed": 7, "resources": {"cpus": 1, "memory": "256Mi"}},
                            project)
    assert job["status"] == "queued" and job["run_id"]
    done = client.wait_job(project, job["id"], timeout=120)
    assert done["status"] == "succeeded", (done, client.job_logs(project, job["id"]))
    logs = client.job_logs(project, job["id"])
    assert f"hello from the job {job['id']} attempt 1" in logs
    assert "lr is 0.01 seed 7" in logs and "done" in logs
    run = client.get_run(project, job["run_id"])
    assert run["status"] == "finished"
    assert run["params"]["lr"] == "0.01"
    assert run["tags"]["cairn.job_id"] == job["id"]
    names = {a["name"] for a in client.artifacts.list_artifacts(project, job["run_id"])}
    assert {"model.txt", "logs/attempt-1.log"} <= names
    summary = client.metric_summary(project, job["run_id"])
    assert summary["loss"]["last"] == pytest.approx(1.0 / 3)
    assert any(key.startswith("system/") for key in summary)
    history = [h["type"] for h in client.get_job(project, job["id"])["history"]]
    assert history == ["job.submitted", "job.assigned", "job.started", "job.succeeded"]


def test_a_failing_job_is_retried_up_to_max_retries_then_fails(
        client: Client, agents, project: str, queue: str) -> None:
    agents.start(queue)
    job = client.submit_job({"command": ["sh", "-c", "echo attempt $CAIRN_ATTEMPT; exit 3"], "code": "none",
                             "queue": queue, "max_retries": 2}, project)
    done = client.wait_job(project, job["id"], timeout=120)
    assert done["status"] == "failed"
    assert done["attempt"] == 3 and done["exit_code"] == 3
    history = [h["type"] for h in done["history"]]
    assert history.count("job.retried") == 2 and history[-1] == "job.failed"
    assert "attempt 2" in client.job_logs(project, job["id"], attempt=2)
    assert client.get_run(project, job["run_id"])["status"] == "failed"


TOKEN_SCRIPT = textwrap.dedent('''
    import json, os, httpx
    url, token = os.environ["CAIRN_URL"] + "/api/v1", os.environ["CAIRN_TOKEN"]
    project, run, other = os.environ["CAIRN_PROJECT"], os.environ["CAIRN_RUN_ID"], os.environ["CAIRN_PARAM_OTHER"]

    def status(method, path, token=token, **kw):
        return httpx.request(method, url + path, headers={"Authorization": "Bearer " + token}, timeout=30, **kw).status_code

    print("whoami", json.dumps(httpx.get(url + "/whoami", headers={"Authorization": "Bearer " + token}).json()))
    print("own run tag", status("PUT", f"/registry/projects/{project}/runs/{run}/tags/from-job", json={"value": "yes"}))
    print("other project", status("GET", f"/registry/projects/{other}/runs"))
    print("new token", status("POST", "/tokens", json={}))
    print("list tokens", status("GET", "/tokens"))
    print("new project", status("POST", "/registry/projects", json={"name": "made-by-a-job"}))
    print("members", status("POST", f"/projects/{project}/members", json={"user": "x", "role": "admin"}))
    print("tampered", status("GET", f"/registry/projects/{project}/runs", token=token[:-1] + ("0" if token[-1] != "0" else "1")))
    print("environment", json.dumps(dict(os.environ)))
''')


def test_a_job_gets_a_token_of_its_own_scoped_to_its_project(
        client: Client, agents, project: str, queue: str, tmp_path: Path, platform: Platform) -> None:
    other = client.create_project(f"{project}-other")["name"]
    agents.start(queue)
    code = write_code(tmp_path / "code", TOKEN_SCRIPT)
    job = client.submit_job({"command": "python train.py", "code": str(code), "queue": queue,
                             "params": {"other": other}}, project)
    done = client.wait_job(project, job["id"], timeout=120)
    logs = client.job_logs(project, job["id"])
    assert done["status"] == "succeeded", (done, logs)
    whoami = json.loads(next(line for line in logs.splitlines() if line.startswith("whoami "))[7:])
    assert whoami == {"user": "admin", "token_id": f"job-{job['id']}", "kind": "job", "site_admin": False,
                      "projects": {project: "editor"}}
    assert "own run tag 200" in logs or "own run tag 201" in logs, logs
    for line in ("other project 404", "new token 403", "list tokens 403", "new project 403", "members 403",
                 "tampered 401"):
        assert line in logs, logs
    environment = json.loads(next(line for line in logs.splitlines() if line.startswith("environment "))[12:])
    agent_password = NatsCredentials.read(platform.nats_creds["agent"]).password
    assert not [name for name, value in environment.items() if agent_password in value or "NATS" in name], \
        "a job inherits none of its agent's NATS credentials"
    run = client.get_run(project, job["run_id"])
    assert run["tags"]["from-job"] == "yes"
    assert "made-by-a-job" not in {p["name"] for p in client.list_projects()}


def test_a_bad_spec_is_refused_with_the_field_to_fix(client: Client, project: str) -> None:
    for spec, field in [({"command": []}, "command"), ({"command": "x", "resources": {"memory": "lots"}},
                                                       "resources.memory"),
                        ({"command": "x", "nodes": 0}, "nodes"), ({"command": "x", "datasets": ["a b"]}, "datasets")]:
        with pytest.raises(ApiError) as err:
            client.submit_job({**spec, "code": "none"}, project)
        assert err.value.status == 422 and field in err.value.message
    assert client.list_jobs(project) == []
