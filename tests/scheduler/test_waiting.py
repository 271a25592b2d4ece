"""Why a queued job waits: the ``reason`` and ``unschedulable`` fields, as pure decisions and
end to end with real agents (no agent yet, too small an agent, then a big-enough one)."""

from __future__ import annotations

from typing import Any

import httpx
from agent_pool import wait_until
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.sdk.client import Client
from cairn.services.scheduler.dispatch import free_slots
from cairn.services.scheduler.waiting import waiting_reason


def agent(agent_id: str, *, queue: str = "q", cpus: float = 2, memory_mib: int = 4096, gpus: int = 0,
          gpu_types: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"id": agent_id, "queue": queue, "host": "127.0.0.1", "cpus": cpus, "memory_mib": memory_mib,
            "gpus": gpus, "gpu_types": list(gpu_types)}


def job(**resources: Any) -> dict[str, Any]:
    return {"id": "j", "queue": "q", "nodes": 1, "cpus": 1, "memory_mib": 0, "gpus": 0, "gpu_type": None,
            "ranks": [], **resources}


def why(j: dict[str, Any], agents: list[dict[str, Any]], live: set[str] | None = None,
        active: list[dict[str, Any]] | None = None) -> tuple[str, bool]:
    live = {a["id"] for a in agents} if live is None else live
    return waiting_reason(j, agents, live, free_slots(agents, active or [], live))


def test_no_agent_on_the_queue_is_unschedulable_and_says_how_to_start_one() -> None:
    reason, unschedulable = why(job(), [agent("a", queue="other")])
    assert unschedulable and reason == "no agent on queue q (start one: cairn agent --queue q)"


def test_the_resource_no_agent_offers_is_named_with_the_largest_offer() -> None:
    small = [agent("a", cpus=2), agent("b", cpus=1.5)]
    assert why(job(cpus=64), small) == ("no agent on queue q offers cpus=64 (largest: 2)", True)
    assert why(job(memory_mib=65536), small) == ("no agent on queue q offers memory=65536Mi (largest: 4096Mi)", True)
    assert why(job(gpus=2), small) == ("no agent on queue q offers gpus=2 (largest: 0)", True)
    gpu = [agent("g", gpus=1, gpu_types=("NVIDIA A100",))]
    reason, unschedulable = why(job(gpus=1, gpu_type="h100"), gpu)
    assert unschedulable and "gpu_type=h100 (offered: NVIDIA A100)" in reason


def test_a_gang_needs_as_many_big_enough_agents_as_nodes() -> None:
    reason, unschedulable = why(job(nodes=3), [agent("a"), agent("b"), agent("c", cpus=0.5)])
    assert unschedulable and reason.startswith("nodes=3 needs 3 agents on queue q that fit, only 2")


def test_busy_or_silent_agents_that_fit_are_a_wait_not_unschedulable() -> None:
    agents = [agent("a", cpus=2)]
    busy = [{"ranks": [{"agent_id": "a"}], "cpus": 2, "memory_mib": 0, "gpus": 0}]
    reason, unschedulable = why(job(cpus=2), agents, active=busy)
    assert not unschedulable and reason.startswith("all agents on queue q that fit (1) are busy")
    reason, unschedulable = why(job(cpus=2), agents, live=set())
    assert not unschedulable and "not sending heartbeats" in reason
    reason, unschedulable = why(job(cpus=2), agents)
    assert not unschedulable and reason.startswith("waiting for the dispatcher")


def test_a_job_too_big_for_every_agent_says_so_until_a_big_enough_agent_registers(
        platform, client: Client, agents, project: str, queue: str) -> None:
    spec = {"command": ["python", "-c", "print('ran')"], "code": None, "queue": queue, "resources": {"cpus": 64}}
    submitted = client.submit_job(spec, project)
    assert submitted["status"] == "queued" and submitted["unschedulable"]
    assert submitted["reason"] == f"no agent on queue {queue} (start one: cairn agent --queue {queue})"

    agents.start(queue, cpus=2)
    shown = client.get_job(project, submitted["id"])
    assert shown["status"] == "queued" and shown["unschedulable"]
    assert shown["reason"] == f"no agent on queue {queue} offers cpus=64 (largest: 2)"
    listed = {j["id"]: j for j in client.list_jobs(project)}
    assert listed[submitted["id"]]["reason"] == shown["reason"]
    shown_by_cli = CliRunner(env={"CAIRN_TOKEN": platform.token}).invoke(
        cli, ["--url", platform.gateway, "jobs", "show", "-p", project, submitted["id"]], catch_exceptions=False)
    assert shown_by_cli.exit_code == 0 and "offers cpus=64 (largest: 2)" in " ".join(shown_by_cli.output.split())

    agents.start(queue, cpus=64)
    done = client.wait_job(project, submitted["id"], timeout=120)
    assert done["status"] == "succeeded" and not done["unschedulable"]
    assert "ran" in client.job_logs(project, submitted["id"])


def test_a_job_on_a_busy_agent_says_it_waits_for_resources(client: Client, agents, project: str, queue: str) -> None:
    agents.start(queue, cpus=1)
    blocker = client.submit_job({"command": ["python", "-c", "import time; time.sleep(600)"], "code": None,
                                 "queue": queue, "resources": {"cpus": 1}}, project)
    wait_until(lambda: client.get_job(project, blocker["id"])["status"] == "running", what="the blocker to run")
    waiting = client.submit_job({"command": ["python", "-c", "pass"], "code": None, "queue": queue,
                                 "resources": {"cpus": 1}}, project)
    shown = client.get_job(project, waiting["id"])
    assert shown["status"] == "queued" and not shown["unschedulable"]
    assert shown["reason"].startswith(f"all agents on queue {queue} that fit (1) are busy")
    client.cancel_job(project, blocker["id"])
    assert client.wait_job(project, waiting["id"], timeout=120)["status"] == "succeeded"


def test_jobs_sweeps_and_replica_sets_in_a_project_that_does_not_exist_are_404(
        platform, client: Client, queue: str) -> None:
    spec = {"command": ["python", "-c", "pass"], "code": None, "queue": queue}
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/scheduler", headers=platform.headers, timeout=30) as api:
        writes = [api.post("/projects/nosuch/jobs", json=spec),
                  api.post("/projects/nosuch/sweeps", json={"job": spec, "parameters": {"lr": [1, 2]}}),
                  api.put("/projects/nosuch/replica-sets/r", json={"command": ["true"], "replicas": 1})]
        for resp in writes:
            assert resp.status_code == 404, resp.text
            assert resp.json()["error"]["message"].startswith("project 'nosuch' does not exist"), resp.text
        assert api.get("/projects/nosuch/jobs").json()["jobs"] == []
