"""A deployment's replicas, end to end on a real agent: the deployments service puts its replica
set, the scheduler runs ``cairn serve --deployment`` as long-lived jobs on the agent, each replica
reports itself and answers with the deployment's version; a replica killed with SIGKILL is
replaced and recorded as stopped; scaling adds a replica, deleting the
deployment removes the replica set and stops them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import loopback
import pytest
from agent_pool import Agents, wait_until

from cairn.sdk.client import Client
from cairn.sdk.deployments import Deployments
from cairn.sdk.run import start_run

from platform_harness import Platform

PROJECT = "deploy-replicas"
BODY = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}


@pytest.fixture(scope="module")
def client(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Client:
    client = Client(platform.gateway, platform.token)
    module = tmp_path_factory.mktemp("model") / "predict.py"
    module.write_text("def predict(batch):\n    return [7] * len(batch)\n")
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        run.log_model(module, "seven", signature=[{"name": "x", "type": "double"}])
    client.set_alias(PROJECT, "seven", "production", 1)
    return client


def started(deployments: Deployments, count: int) -> list[dict] | None:
    reps = [r for r in deployments.replicas(PROJECT, "web") if r.get("state") == "started"]
    return reps if len(reps) == count else None


def test_replicas_run_on_agents_report_and_answer(platform: Platform, agents: Agents, client: Client,
                                                  tmp_path: Path) -> None:
    agents.start("default", cpus=2)  # the queue a deployment's replica set uses
    deployments = Deployments(client)
    deployments.create(PROJECT, "web", environment="dev", model="seven", follows="production", replicas=1)
    [replica] = wait_until(lambda: started(deployments, 1), timeout=120, what="one replica to report")
    answer = loopback.post(f"{replica['url']}/invocations", json=BODY, headers=platform.headers, timeout=30)
    assert answer.status_code == 200 and answer.json()["predictions"] == [7]
    assert answer.headers["X-Model-Version"] == "1"

    # SIGKILL: the replica cannot say it stopped; its job ends, the scheduler starts another,
    # and the deployment records the old one stopped and counts the new one
    pid = loopback.get(f"{replica['url']}/healthz", timeout=10).json()["pid"]
    os.kill(pid, signal.SIGKILL)

    def replaced() -> list[dict] | None:
        reports = {r["replica_id"]: r for r in deployments.replicas(PROJECT, "web")}
        if reports[replica["replica_id"]]["state"] != "stopped":
            return None
        return started(deployments, 1)

    [again] = wait_until(replaced, timeout=120, what="the killed replica replaced")
    assert again["replica_id"] != replica["replica_id"]
    assert deployments.list(PROJECT)["deployments"][0]["replicas"] == {"healthy": 1, "total": 1}

    deployments.scale(PROJECT, "web", 2)  # one agent: the two replicas share it
    both = wait_until(lambda: started(deployments, 2), timeout=120, what="a second replica")
    assert len({r["url"] for r in both}) == 2

    deployments.delete(PROJECT, "web")

    def gone() -> bool:
        scheduler = loopback.get(f"{platform.gateway}/api/v1/scheduler/projects/{PROJECT}/replica-sets/deploy-web",
                              headers=platform.headers, timeout=30)
        return scheduler.status_code == 404 and not any(_answers(r["url"]) for r in both)

    wait_until(gone, timeout=120, what="the replica set and both replicas to go")


def _answers(url: str) -> bool:
    try:
        loopback.get(f"{url}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return True
