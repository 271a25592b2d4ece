"""GET /api/v1/scheduler/agents/status (the web UI's agents page): heartbeat age, running jobs per
agent and queued jobs per queue, read from a real scheduler with a real agent."""

from __future__ import annotations

import httpx
from agent_pool import Agents, wait_until

from cairn.sdk.client import Client

from platform_harness import Platform


def test_agents_status_counts_running_and_queued_jobs_and_ages_heartbeats(
        platform: Platform, client: Client, agents: Agents, project: str, queue: str) -> None:
    agent = agents.start(queue, cpus=1, name="status-agent")
    idle_queue = f"{queue}-none"  # no agent serves it: its job stays queued
    sleeper = {"command": "python -c \"import time; time.sleep(120)\"", "code": "none", "queue": queue,
               "resources": {"cpus": 1, "memory": "64Mi"}}
    running = client.submit_job(sleeper, project)
    waiting = client.submit_job({**sleeper, "queue": idle_queue}, project)
    try:
        with httpx.Client(base_url=platform.gateway, headers=platform.headers, timeout=10) as http:
            def busy() -> dict | None:
                body = http.get("/api/v1/scheduler/agents/status").json()
                mine = next(a for a in body["agents"] if a["id"] == agent.agent_id)
                return body if mine["running_jobs"] == 1 else None
            body = wait_until(busy, 60, "the agent to run the job")
            mine = next(a for a in body["agents"] if a["id"] == agent.agent_id)
            assert mine["live"] is True and mine["queue"] == queue and mine["status"] == "active"
            assert 0 <= mine["heartbeat_age_s"] <= body["lease_s"]
            assert mine["cpus"] == 1 and mine["gpus"] == 0
            assert body["queued"].get(idle_queue) == 1 and queue not in body["queued"]

            # a viewer of nothing still signs in; the route needs only that (agents are site-wide)
            assert http.get("/api/v1/scheduler/agents/status", headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        for job in (running, waiting):
            client.cancel_job(project, job["id"])

    agent.kill()
    with httpx.Client(base_url=platform.gateway, headers=platform.headers, timeout=10) as http:
        def gone() -> dict | None:
            found = [a for a in http.get("/api/v1/scheduler/agents/status").json()["agents"] if a["id"] == agent.agent_id]
            return found[0] if found and not found[0]["live"] and found[0]["status"] == "lost" else None
        lost = wait_until(gone, 60, "the scheduler to call the killed agent lost")
    assert lost["lost_at"] and "no heartbeat" in lost["message"]
