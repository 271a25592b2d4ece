"""Replica sets on real agents: a set of 2 is spread over 2 agents; a replica killed with
SIGKILL is replaced by a new job; scaling down stops the newest; delete stops all; a command
that exits at once is restarted with a doubling back-off; a lost agent's replica runs again
on the agent left; a viewer cannot change a set."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from agent_pool import Agents, alive, wait_until

from cairn.sdk.client import Client

from platform_harness import Platform, read_all_events

# A replica writes its pid and the environment it got to <REPLICA_DIR>/<replica id>.json.
REPLICA = textwrap.dedent('''
    import json, os, pathlib, time
    keys = ("CAIRN_REPLICA_SET", "CAIRN_REPLICA_ID", "CAIRN_HOST_ADDRESS", "CAIRN_PROJECT", "GREETING")
    out = pathlib.Path(os.environ["REPLICA_DIR"]) / (os.environ["CAIRN_REPLICA_ID"] + ".json")
    out.write_text(json.dumps({"pid": os.getpid(), **{k: os.environ.get(k) for k in keys}}))
    time.sleep(600)
''')


@pytest.fixture(scope="module")
def http(platform: Platform) -> httpx.Client:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/scheduler", headers=platform.headers,
                      timeout=30) as c:
        yield c


def running(http: httpx.Client, project: str, name: str, count: int) -> list[dict] | None:
    """The set's replicas once exactly ``count`` of them run (and none is queued or stopping)."""
    body = http.get(f"/projects/{project}/replica-sets/{name}").json()
    reps = body.get("running", [])
    if len(reps) == count and all(r["state"] == "running" and not r["stopping"] for r in reps):
        return reps
    return None


def pid_of(folder: Path, job_id: str) -> dict | None:
    path = folder / f"{job_id}.json"
    return json.loads(path.read_text()) if path.exists() and path.read_text() else None


def test_a_set_is_spread_replaced_after_sigkill_scaled_down_and_deleted(
        http: httpx.Client, agents: Agents, project: str, queue: str, tmp_path: Path) -> None:
    first, second = agents.start(queue), agents.start(queue)
    body = {"command": ["python", "-c", REPLICA], "env": {"REPLICA_DIR": str(tmp_path), "GREETING": "hi"},
            "replicas": 2, "resources": {"cpus": 0.5}, "queue": queue}
    put = http.put(f"/projects/{project}/replica-sets/web", json=body)
    assert put.status_code == 200, put.text
    assert put.json()["replicas"] == 2 and put.json()["spread"] is True

    reps = wait_until(lambda: running(http, project, "web", 2), what="two running replicas")
    assert {r["agent"] for r in reps} == {first.agent_id, second.agent_id}  # one per agent
    seen = [wait_until(lambda r=r: pid_of(tmp_path, r["job_id"]), what="the replica's file") for r in reps]
    for rep, got in zip(reps, seen):
        assert got["CAIRN_REPLICA_SET"] == "web" and got["CAIRN_REPLICA_ID"] == rep["job_id"]
        assert got["CAIRN_HOST_ADDRESS"] == "127.0.0.1" == rep["host"]
        assert got["CAIRN_PROJECT"] == project and got["GREETING"] == "hi"

    victim = reps[0]
    os.kill(seen[0]["pid"], signal.SIGKILL)
    after = wait_until(lambda: (now := running(http, project, "web", 2)) and
                       victim["job_id"] not in {r["job_id"] for r in now} and now, what="a replacement")
    assert {r["agent"] for r in after} == {first.agent_id, second.agent_id}  # back on the freed agent
    assert http.get(f"/projects/{project}/jobs/{victim['job_id']}").json()["status"] == "failed"
    assert http.get(f"/projects/{project}/replica-sets/web").json()["restarts"] == 1

    newest = max(after, key=lambda r: r["started_at"])
    oldest = next(r for r in after if r is not newest)
    newest_pid = wait_until(lambda: pid_of(tmp_path, newest["job_id"]), what="the replacement's file")["pid"]
    assert http.put(f"/projects/{project}/replica-sets/web", json={**body, "replicas": 1}).status_code == 200
    left = wait_until(lambda: running(http, project, "web", 1), what="scale down to one")
    assert [r["job_id"] for r in left] == [oldest["job_id"]]
    wait_until(lambda: not alive(newest_pid), timeout=30, what="the stopped replica's process to end")
    assert http.get(f"/projects/{project}/jobs/{newest['job_id']}").json()["status"] == "cancelled"

    oldest_pid = pid_of(tmp_path, oldest["job_id"])["pid"]
    assert http.delete(f"/projects/{project}/replica-sets/web").status_code == 200
    wait_until(lambda: http.get(f"/projects/{project}/jobs/{oldest['job_id']}").json()["status"] == "cancelled",
               what="the last replica to be stopped")
    assert not alive(oldest_pid) or wait_until(lambda: not alive(oldest_pid), timeout=30, what="its process")
    gone = http.get(f"/projects/{project}/replica-sets/web")
    assert gone.status_code == 404 and "replica set 'web' does not exist" in gone.text
    assert http.delete(f"/projects/{project}/replica-sets/web").status_code == 404


def test_a_lost_agents_replica_runs_again_on_the_agent_left_doubling_up(
        http: httpx.Client, agents: Agents, project: str, queue: str, tmp_path: Path) -> None:
    doomed, survivor = agents.start(queue), agents.start(queue)
    body = {"command": ["python", "-c", REPLICA], "env": {"REPLICA_DIR": str(tmp_path)}, "replicas": 2,
            "resources": {"cpus": 0.5}, "queue": queue}
    assert http.put(f"/projects/{project}/replica-sets/api", json=body).status_code == 200
    reps = wait_until(lambda: running(http, project, "api", 2), what="two running replicas")
    lost = next(r for r in reps if r["agent"] == doomed.agent_id)
    doomed.kill()  # SIGKILL: its lease runs out, the attempt is lost and runs again elsewhere
    after = wait_until(lambda: (now := running(http, project, "api", 2)) and
                       all(r["agent"] == survivor.agent_id for r in now) and now, what="both on the survivor")
    again = next(r for r in after if r["job_id"] == lost["job_id"])
    assert again["attempt"] == 2  # the same replica (job), a new attempt: fewer agents than replicas
    assert http.delete(f"/projects/{project}/replica-sets/api").status_code == 200
    wait_until(lambda: not http.get(f"/projects/{project}/jobs", params={"status": "running"}).json()["jobs"],
               what="every replica stopped")


def test_a_replica_that_exits_at_once_is_restarted_with_a_doubling_back_off(
        platform: Platform, http: httpx.Client, agents: Agents, project: str, queue: str) -> None:
    agents.start(queue)
    body = {"command": ["python", "-c", "raise SystemExit(3)"], "replicas": 1, "queue": queue}
    assert http.put(f"/projects/{project}/replica-sets/crashy", json=body).status_code == 200
    view = wait_until(lambda: (v := http.get(f"/projects/{project}/replica-sets/crashy").json())["restarts"] >= 4
                      and v, timeout=120, what="four ended replicas")
    assert view["backoff"]["crashes"] >= 4 and view["backoff"]["delay_s"] >= 8
    assert http.delete(f"/projects/{project}/replica-sets/crashy").status_code == 200

    # On record: each replacement job was submitted at least the back-off after the previous
    # replica's job ended (1 s, 2 s, 4 s ...): no tight loop, whatever the machine's speed.
    events = [e for e in read_all_events(platform.nats_url) if e["project"] == project]
    members = [e["aggregate_id"] for e in events if e["type"] == "job.submitted"
               and e["data"]["spec"].get("replica_set") == "crashy"]
    ended = {e["aggregate_id"]: e["time"] for e in events if e["type"] in ("job.failed", "job.succeeded")}
    submitted = {e["aggregate_id"]: e["time"] for e in events if e["type"] == "job.submitted"}
    at = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    gaps = [(at(submitted[nxt]) - at(ended[prev])).total_seconds() for prev, nxt in zip(members, members[1:])
            if prev in ended][:3]
    assert len(gaps) == 3
    for gap, least in zip(gaps, (1.0, 2.0, 4.0)):
        assert gap >= least * 0.95, gaps


def test_a_viewer_cannot_change_a_set_and_a_bad_body_is_refused_naming_the_field(
        platform: Platform, http: httpx.Client, project: str) -> None:
    admin = Client(platform.gateway, platform.token)
    user = f"viewer-{uuid.uuid4().hex[:8]}"
    token = admin.create_token(user)["token"]
    admin.add_member(project, user, "viewer")
    body = {"command": ["sleep", "600"], "replicas": 1, "queue": "nobody-here"}
    with httpx.Client(base_url=http.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as viewer:
        refused = viewer.put(f"/projects/{project}/replica-sets/web", json=body)
        assert refused.status_code == 403, refused.text
        assert viewer.get(f"/projects/{project}/replica-sets/web").status_code == 404
    for bad, field in (({**body, "replicas": -1}, "replicas"), ({**body, "env": {"CAIRN_X": "1"}}, "env"),
                       ({**body, "resources": {"memory": "lots"}}, "resources.memory"),
                       ({**body, "command": []}, "command")):
        answer = http.put(f"/projects/{project}/replica-sets/web", json=bad)
        assert answer.status_code == 422 and field in answer.text, answer.text
    assert http.get(f"/projects/{project}/replica-sets/web").status_code == 404  # nothing was created
