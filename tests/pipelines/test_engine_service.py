"""The pipelines engine on a real platform: steps run as jobs on a real subprocess agent, the gate,
register and promote steps call the real registry, deploy the real deployments service; the
pipelines service is killed with SIGKILL in the middle of a job and resumes.

Every wait polls the API with a deadline; nothing waits a fixed time for "nothing happened".
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog

from model_helpers import push_model
from platform_harness import Platform, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scheduler"))
from agent_pool import Agents  # noqa: E402 - the scheduler tests' real agent processes
from agent_pool import wait_until as poll_until  # noqa: E402

QUEUE = "pipes"
JOB = textwrap.dedent('''
    import os, pathlib, time, cairn
    wait = os.environ.get("WAIT_FOR")
    if wait:  # held until the test lets it go (with a deadline of its own)
        deadline = time.time() + 120
        while not pathlib.Path(wait).exists():
            if time.time() > deadline:
                raise SystemExit("gave up waiting for " + wait)
            time.sleep(0.1)
    if os.environ.get("FAIL"):
        print("failing attempt", os.environ["CAIRN_PIPELINE_ATTEMPT"])
        raise SystemExit(3)
    with cairn.start_run() as run:
        run.log_metric("auc", float(os.environ["AUC"]))
        pathlib.Path("model.bin").write_text("weights of " + os.environ["CAIRN_PIPELINE_RUN"])
        run.log_artifact("model.bin", name=os.environ.get("ARTIFACT_NAME", "model"))
        run.flush()
''')


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running(Platform(tmp_path_factory.mktemp("platform"), extra_env={
            "CAIRN_SCHEDULER_LEASE_S": "3", "CAIRN_SCHEDULER_HEARTBEAT_S": "0.5",
            "CAIRN_PIPELINES_TICK_S": "0.2"})) as plat:
        yield plat


@pytest.fixture(scope="module")
def agents(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    pool = Agents(platform, tmp_path_factory.mktemp("agents"))
    pool.start(QUEUE, cpus=4)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def http(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


def wait_until(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    return poll_until(check, timeout, what)


def job_step(sid: str, *, needs: list[str] | None = None, **env: str) -> dict[str, Any]:
    return {"id": sid, "command": ["python", "-c", JOB], "queue": QUEUE, "outputs": ["model"],
            "resources": {"cpus": 1, "memory": "256Mi"}, "env": {"AUC": "0.9", **env},
            **({"needs": needs} if needs else {})}


def start(http: httpx.Client, project: str, pipeline: dict[str, Any]) -> dict[str, Any]:
    resp = http.post(f"/pipelines/projects/{project}/runs", json={"pipeline": json.dumps(pipeline)})
    assert resp.status_code == 201, resp.text
    return resp.json()


def run_view(http: httpx.Client, project: str, run_id: str) -> dict[str, Any]:
    resp = http.get(f"/pipelines/projects/{project}/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def finished(http: httpx.Client, project: str, run_id: str, timeout: float = 120.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        view = run_view(http, project, run_id)
        return view if view["status"] != "running" else None
    return wait_until(done, f"pipeline run {run_id} to finish", timeout)


def events(http: httpx.Client, project: str, run_id: str) -> list[dict[str, Any]]:
    resp = http.get(f"/pipelines/projects/{project}/runs/{run_id}/events")
    assert resp.status_code == 200, resp.text
    return resp.json()["events"]


def trail(evts: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["data"].get("step")) for e in evts]


def new_project(http: httpx.Client, name: str) -> str:
    resp = http.post("/registry/projects", json={"name": name})
    assert resp.status_code == 201, resp.text
    return name


def jobs(http: httpx.Client, project: str) -> list[dict[str, Any]]:
    return http.get(f"/scheduler/projects/{project}/jobs").json()["jobs"]


def test_a_job_gate_register_promote_pipeline_runs_in_order_and_moves_the_alias(http: httpx.Client, agents) -> None:
    project = new_project(http, "eng-happy")
    pipeline = {"name": "ml", "params": {"min_auc": 0.5}, "steps": [
        job_step("train"),
        {"id": "gate", "needs": ["train"], "gate": {
            "step": "train", "conditions": ["steps.train.metrics.auc >= params.min_auc"],
            "champion": {"model": "model:fraud@production", "metric": "auc"}}},
        {"id": "register", "needs": ["gate"], "register": {"model": "fraud", "artifact": "artifact:train/model"}},
        {"id": "promote", "needs": ["register"], "promote": {"from": "register", "alias": "production"}}]}
    run = start(http, project, pipeline)
    view = finished(http, project, run["id"])
    assert view["status"] == "succeeded", view
    assert trail(events(http, project, run["id"])) == [
        ("pipeline_run.started", None), ("step.started", "train"), ("step.succeeded", "train"),
        ("step.started", "gate"), ("gate.passed", "gate"), ("step.started", "register"),
        ("step.succeeded", "register"), ("step.started", "promote"), ("step.succeeded", "promote"),
        ("pipeline_run.finished", None)]
    steps = {s["id"]: s for s in view["steps"]}
    train = steps["train"]
    assert train["metrics"]["auc"] == 0.9
    artifacts = {a["name"]: a for a in http.get(f"/artifacts/projects/{project}/runs/{train['run_id']}/artifacts"
                                                 ).json()["artifacts"]}
    assert train["outputs"]["model"] == artifacts["model"]["digest"]
    assert steps["gate"]["comparisons"][-1]["kind"] == "champion"
    assert steps["register"]["outputs"]["version"] == 1 and steps["promote"]["outputs"] == {
        "version": 1, "model": "fraud", "alias": "production"}
    alias = http.get(f"/registry/projects/{project}/models/fraud/aliases/production").json()
    assert alias["version"] == 1 and alias["run_id"] == train["run_id"]
    run_tags = http.get(f"/registry/projects/{project}/runs/{train['run_id']}").json()["tags"]
    assert run_tags["cairn.pipeline_run"] == run["id"] and run_tags["cairn.pipeline_step"] == "train"


def test_a_failing_job_is_retried_then_fails_and_what_needs_it_is_skipped(http: httpx.Client, agents) -> None:
    project = new_project(http, "eng-fail")
    bad = {**job_step("bad", FAIL="1"), "retries": 1}
    forgetful = job_step("forgetful", ARTIFACT_NAME="weights")  # succeeds, but logs no artifact "model"
    pipeline = {"name": "ml", "steps": [bad, job_step("after", needs=["bad"]), forgetful]}
    run = start(http, project, pipeline)
    view = finished(http, project, run["id"])
    assert view["status"] == "failed"
    evts = events(http, project, run["id"])
    bad_trail = [t for t in trail(evts) if t[1] in ("bad", "after")]
    assert bad_trail == [("step.started", "bad"), ("step.failed", "bad"), ("step.started", "bad"),
                         ("step.failed", "bad"), ("step.skipped", "after")]
    failures = [e["data"] for e in evts if e["type"] == "step.failed" and e["data"]["step"] == "bad"]
    assert [(f["attempt"], f["reason"]) for f in failures] == [(1, "exit"), (2, "exit")]
    assert [e["data"]["reason"] for e in evts if e["type"] == "step.skipped"] == ["upstream_failed"]
    steps = {s["id"]: s for s in view["steps"]}
    assert (steps["forgetful"]["state"], steps["forgetful"]["reason"]) == ("failed", "error")
    assert "'model'" in steps["forgetful"]["message"] and "weights" in steps["forgetful"]["message"]
    assert evts[-1]["type"] == "pipeline_run.finished"
    assert sorted(evts[-1]["data"]["failed_steps"]) == ["bad", "forgetful"]
    assert len(jobs(http, project)) == 3  # one job per attempt, none for the skipped step


def test_a_killed_pipelines_service_resumes_the_run_and_submits_the_job_once(
        http: httpx.Client, agents, platform: Platform, tmp_path: Path) -> None:
    project = new_project(http, "eng-kill")
    gate_file = tmp_path / "go"
    pipeline = {"name": "ml", "steps": [job_step("train", WAIT_FOR=str(gate_file)),
                                        {"id": "gate", "needs": ["train"],
                                         "gate": {"step": "train", "conditions": ["steps.train.metrics.auc > 0.5"]}}]}
    run = start(http, project, pipeline)
    wait_until(lambda: [j for j in jobs(http, project) if j["status"] == "running"], "the train job to run")
    platform.restart("pipelines")  # SIGKILL, then a fresh process
    platform.wait_healthy()
    gate_file.write_text("go")
    view = finished(http, project, run["id"])
    assert view["status"] == "succeeded", view
    assert len(jobs(http, project)) == 1
    assert [t for t in trail(events(http, project, run["id"])) if t[1] == "train"] == [
        ("step.started", "train"), ("step.succeeded", "train")]


def test_a_queued_run_waits_for_the_older_one_and_a_cancel_stops_its_running_job(
        http: httpx.Client, agents, tmp_path: Path) -> None:
    project = new_project(http, "eng-queue")
    gate_file = tmp_path / "go"
    pipeline = {"name": "ml", "steps": [job_step("train", WAIT_FOR=str(gate_file))]}  # concurrency: queue
    older = start(http, project, pipeline)
    wait_until(lambda: [j for j in jobs(http, project) if j["status"] == "running"], "the older run's job to run")
    newer = start(http, project, pipeline)
    assert run_view(http, project, newer["id"])["trigger"]["queued_behind"] == [older["id"]]
    resp = http.post(f"/pipelines/projects/{project}/runs/{older['id']}/cancel", json={"reason": "not this one"})
    assert resp.status_code == 200, resp.text
    view = finished(http, project, older["id"])
    assert view["status"] == "cancelled"
    train = view["steps"][0]
    assert (train["state"], train["reason"]) == ("failed", "cancelled")
    cancelled = [j for j in jobs(http, project) if j["run_id"] == train["run_id"]]
    assert [j["status"] for j in cancelled] == ["cancelled"]
    wait_until(lambda: len(jobs(http, project)) == 2, "the queued run to submit its job")
    gate_file.write_text("go")
    assert finished(http, project, newer["id"])["status"] == "succeeded"
    older_end = events(http, project, older["id"])[-1]
    newer_start = [e for e in events(http, project, newer["id"]) if e["type"] == "step.started"][0]
    assert older_end["type"] == "pipeline_run.finished" and older_end["sequence"] < newer_start["sequence"]


async def _fire_alert(nats_url: str, project: str, deployment: str) -> None:
    log = await EventLog.open(nats_url)
    try:
        now = time.time()
        await log.append(Event(type="alert.fired", project=project, aggregate="alert", aggregate_id="rule-errors",
                               actor="service:monitor", data={
                                   "rule_id": "rule-errors", "deployment": deployment, "name": "errors-high",
                                   "metric": "error_rate", "column": None, "comparison": ">", "threshold": 0.1,
                                   "value": 0.5, "window": {"size": "1m", "start": now - 60, "end": now},
                                   "persistence": {"k": 1, "n": 1, "breaches": 1},
                                   "history": [{"start": now - 60, "end": now, "value": 0.5, "breached": True}],
                                   "action": None}), expected_last_subject_seq=None)
    finally:
        await log.close()


def test_an_alert_during_the_bake_rolls_the_deployment_and_the_alias_back(
        http: httpx.Client, agents, platform: Platform) -> None:
    project = new_project(http, "eng-bake")
    seed = http.post(f"/registry/projects/{project}/runs", json={"name": "v1"})
    assert seed.status_code == 201, seed.text
    seed = seed.json()
    assert http.post(f"/registry/projects/{project}/models", json={"name": "fraud"}).status_code == 201
    made = http.post(f"/registry/projects/{project}/models/fraud/versions",
                     json={"run_id": seed["id"], "artifact_digest": push_model(http, project)})
    assert made.status_code == 201, made.text
    assert http.put(f"/registry/projects/{project}/models/fraud/aliases/production",
                    json={"version": 1}).status_code == 200
    made = http.post(f"/deployments/projects/{project}/deployments", json={
        "name": "fraud", "environment": "staging", "model": "fraud", "version": 1, "replicas": 0})
    assert made.status_code == 201, made.text
    pipeline = {"name": "ml", "steps": [
        job_step("train"),
        {"id": "register", "needs": ["train"], "register": {"model": "fraud", "artifact": "artifact:train/model"}},
        {"id": "promote", "needs": ["register"], "promote": {"from": "register", "alias": "production"}},
        {"id": "deploy", "needs": ["promote"], "deploy": {"deployment": "fraud", "environment": "staging",
                                                           "from": "promote", "bake_s": 3600}}]}
    run = start(http, project, pipeline)

    def deployed() -> bool:
        steps = {s["id"]: s for s in run_view(http, project, run["id"])["steps"]}
        config = http.get(f"/deployments/projects/{project}/deployments/fraud").json()
        return steps["deploy"]["state"] == "running" and config["version"] == 2
    wait_until(deployed, "the deploy step to switch the deployment to version 2 and bake")
    assert run_view(http, project, run["id"])["status"] == "running"  # baking: an hour to go
    asyncio.run(_fire_alert(platform.nats_url, project, "fraud"))
    view = finished(http, project, run["id"])
    assert view["status"] == "failed"
    deploy = {s["id"]: s for s in view["steps"]}["deploy"]
    assert deploy["reason"] == "error" and "errors-high" in deploy["message"], deploy
    assert "moved back to version 1" in deploy["message"]
    assert http.get(f"/deployments/projects/{project}/deployments/fraud").json()["version"] == 1
    assert http.get(f"/registry/projects/{project}/models/fraud/aliases/production").json()["version"] == 1
    promote = {s["id"]: s for s in view["steps"]}["promote"]
    assert promote["outputs"]["previous_version"] == 1

    # with no alert, the step succeeds once the bake time has passed (a deploy of a model reference)
    quiet = start(http, project, {"name": "redeploy", "steps": [{"id": "deploy", "deploy": {
        "deployment": "fraud", "environment": "staging", "model": "model:fraud@v2", "bake_s": 1}}]})
    view = finished(http, project, quiet["id"])
    assert view["status"] == "succeeded", view
    deploy = view["steps"][0]
    assert deploy["outputs"]["version"] == 2
    baked = datetime.fromisoformat(deploy["finished_at"]) - datetime.fromisoformat(deploy["started_at"])
    assert baked.total_seconds() >= 1
    assert http.get(f"/deployments/projects/{project}/deployments/fraud").json()["version"] == 2
