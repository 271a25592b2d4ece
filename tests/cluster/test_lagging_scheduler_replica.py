"""A scheduler replica whose read model is behind the log answers an agent's reports, and the
leader that assigned the job dies meanwhile (the failure tests' open failure, docs/cluster.md
"Failure tests": a standby healed after a cut-off refused a running job's reports as "not
current (the job is queued at attempt 1)", the agent stopped the attempt, and the job stayed
assigned to an attempt nobody ran).

Two real scheduler processes on one NATS (no network namespaces): replica "a" (the platform's
own, which leads) and replica "b", which applies its read model at most every LAG_S seconds
(CAIRN_SCHEDULER_PROJECTION_INTERVAL_S), so that it sees a new job's assignment seconds late.
The agent is paused (SIGSTOP) while "a" assigns it a job, "a" is SIGKILLed, and the agent resumes:
its reports reach "b" only, before "b" has applied the assignment. The job must run once, at
its first attempt, and succeed; no report of it is refused."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from scheduler.agent_pool import Agents, wait_until

from cairn.kernel.eventlog import connect
from cairn.protocol import EVENTS_STREAM
from cluster.scheduler_pair import Replica

from platform_harness import Platform, running

LAG_S = 3.0  # replica b's read model is up to this far behind (its apply interval)
ENV = {"CAIRN_LEADER_LEASE_S": "3", "CAIRN_LEADER_RENEW_S": "1",  # a standby leads 3-4 s after a death
       "CAIRN_SCHEDULER_LEASE_S": "15", "CAIRN_SCHEDULER_HEARTBEAT_S": "0.5"}  # a paused agent is not lost


class Scheduler(Replica):
    """Replica "a" (the platform's, behind the gateway) or "b" (its own port and data directory)."""

    def start_lagging(self) -> None:
        self.start(CAIRN_SCHEDULER_PROJECTION_INTERVAL_S=str(LAG_S))

    def job(self, project: str, job_id: str) -> dict:
        """The job as this replica's read model has it ({"status": "unknown"} before it has the job)."""
        resp = httpx.get(f"{self.url}/projects/{project}/jobs/{job_id}", headers=self.plat.service_headers, timeout=30)
        if resp.status_code == 404:
            return {"status": "unknown"}
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, Scheduler, Scheduler]]:
    plat = Platform(tmp_path_factory.mktemp("platform"), extra_env=ENV,
                    service_env={"scheduler": {"CAIRN_REPLICA": "a"}})
    with running(plat):
        a, b = Scheduler(plat, "a"), Scheduler(plat, "b")
        b.start_lagging()
        wait_until(lambda: (b.health() or {}).get("ready"), timeout=60, what="replica b to be ready")
        yield plat, a, b


def job_events(nats_url: str, job_id: str) -> list[dict]:
    """Every event of one job, in log order."""

    async def collect() -> list[dict]:
        nc = await connect(nats_url, name="test-lagging-reader")
        try:
            js = nc.jetstream()
            sub = await js.subscribe(f"cairn.evt.*.job.{job_id}", ordered_consumer=True, stream=EVENTS_STREAM)
            out: list[dict] = []
            while True:
                try:
                    msg = await sub.next_msg(timeout=2)
                except asyncio.TimeoutError:  # every event of the job is read: none is coming
                    return out
                out.append(json.loads(msg.data))
        finally:
            await nc.close()

    return asyncio.run(collect())


def test_reports_answered_by_a_lagging_replica_after_the_leader_died_finish_the_job_once(
        pair: tuple[Platform, Scheduler, Scheduler], tmp_path: Path) -> None:
    plat, a, b = pair
    project, queue = "laggingreplica", "q-lagging"
    assert httpx.post(f"{plat.gateway}/api/v1/registry/projects", headers=plat.headers,
                      json={"name": project}, timeout=30).status_code == 201
    wait_until(lambda: a.leads() and not b.leads(), timeout=30, what="replica a (started first) to lead")
    agents = Agents(plat, tmp_path / "agents")
    (tmp_path / "agents").mkdir()
    ran = tmp_path / "ran"
    try:
        agent = agents.start(queue)
        agent.proc.send_signal(signal.SIGSTOP)  # the assignment waits in its socket
        try:
            resp = httpx.post(f"{a.url}/projects/{project}/jobs", headers=plat.service_headers, timeout=30,
                              json={"command": ["sh", "-c", f"echo $CAIRN_ATTEMPT >> {ran}"], "queue": queue})
            assert resp.status_code == 201, resp.text
            job_id = str(resp.json()["id"])
            wait_until(lambda: a.job(project, job_id)["status"] == "assigned", timeout=30, what="a assigns the job")
            a.proc.send_signal(signal.SIGKILL)  # from here on only b answers reports
            a.proc.wait()
            # what makes the test: b has not applied the assignment (it lags by up to LAG_S)
            assert b.job(project, job_id)["status"] in ("unknown", "queued"), b.job(project, job_id)
        finally:
            agent.proc.send_signal(signal.SIGCONT)

        def finished() -> bool:
            status = b.job(project, job_id)["status"]
            assert status not in ("failed", "cancelled"), b.job(project, job_id)
            return status == "succeeded"

        wait_until(finished, timeout=60, what="the job to succeed (it must not be stuck assigned)")
        wait_until(b.leads, timeout=30, what="b to take the dispatcher's lease")
    finally:
        agents.stop_all()

    events = job_events(plat.nats_url, job_id)
    kinds = Counter((e["type"], e["data"].get("attempt")) for e in events)
    assert kinds[("job.started", 1)] == 1 and kinds[("job.succeeded", 1)] == 1, kinds
    assert not [e for e in events if e["type"] in ("job.retried", "job.lost", "job.failed")], kinds
    assert ran.read_text().split() == ["1"], "the job's command ran once, at attempt 1"
    refusals = [line for line in agent.log.read_text().splitlines() if "report (" in line and " refused: " in line]
    assert not refusals, refusals  # the agent's own log: no report of the job refused
