"""Failover for the cluster benchmark: SIGKILL of the event stream's leader node under writes,
and of the scheduler; how long until writes are acknowledged again, and what clients saw."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from cluster_stack import NatsCluster

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog, connect
from cairn.kernel.natsauth import NatsCredentials
from cairn.natsserver import free_port, wait_for_tcp
from cairn.protocol import EVENTS_STREAM, LEASE_BUCKET

DEADLINE_S = 90.0


async def gateway_status(session: aiohttp.ClientSession, gateway: str) -> dict[str, Any]:
    try:
        async with session.get(f"{gateway}/api/v1/status", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            return dict(await resp.json()) if resp.status in (200, 503) else {}
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return {}


async def lead_from_writers_node(cluster: NatsCluster, admin: Any, log: EventLog) -> str:
    """Make the node the raw writer is connected to the event stream's leader (the worst case:
    the writer must reconnect and wait out an election) and name it."""
    port = log.nc.connected_url.port  # type: ignore[union-attr]
    node = next(name for name, p in cluster.ports.items() if p == port)
    js = admin.jetstream(timeout=5)
    deadline = time.monotonic() + DEADLINE_S
    while (await js.stream_info(EVENTS_STREAM)).cluster.leader != node:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node} never became the event stream's leader")
        try:
            await admin.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{EVENTS_STREAM}",
                                json.dumps({"placement": {"preferred": node}}).encode(), timeout=5)
        except Exception:  # noqa: BLE001 - an election under way: ask again
            pass
        await asyncio.sleep(0.2)
    return node


async def nats_failover(cluster: NatsCluster, gateway: str, token: str) -> dict[str, Any]:
    """SIGKILL the event stream's leader node while a raw appender (one append at a time, 1 s
    publish timeout, retried) and 8 gateway clients write; how long until each succeeds again."""
    admin = await connect(cluster.url, name="bench-admin", credentials=NatsCredentials.read(cluster.creds("admin")))
    log = await EventLog.open(cluster.url, name="bench-writer", replicas=3,
                              credentials=NatsCredentials.read(cluster.creds("admin")))
    log.js = log.nc.jetstream(timeout=1)
    leader = await lead_from_writers_node(cluster, admin, log)
    acked: list[tuple[float, float]] = []  # acknowledged appends: sent, acknowledged (monotonic)
    done: list[tuple[float, float, int]] = []  # gateway commands: start, end, status (0: no answer)
    killed = asyncio.Event()
    kill_at = 0.0
    project = f"fail{uuid.uuid4().hex[:6]}"
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + DEADLINE_S

    def after_kill(times: list[float]) -> int:
        return sum(t > kill_at for t in times) if killed.is_set() else 0

    def enough() -> bool:
        return (after_kill([a for _, a in acked]) >= 20 and after_kill([e for _, e, s in done if s == 201]) >= 20) \
            or loop.time() > stop_at

    async def appender() -> None:
        n = 0
        while not enough():
            event = Event(type="run.created", project=project, aggregate="run", aggregate_id=f"a{n}",
                          data={"experiment_id": "e", "name": f"a{n}", "params": {}, "tags": {},
                                "description": "", "status": "running"})
            try:
                sent = loop.time()
                await log.append(event, expected_last_subject_seq=None)
                acked.append((sent, loop.time()))
                n += 1
            except Exception:  # noqa: BLE001 - a dead leader: timeouts, no responders; retried
                await asyncio.sleep(0.01)

    async def client(session: aiohttp.ClientSession) -> None:
        while not enough():
            started = loop.time()
            try:
                async with session.post(f"{gateway}/api/v1/registry/projects/{project}/runs",
                                        json={"params": {"x": 1}},
                                        headers={"Idempotency-Key": uuid.uuid4().hex}) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = 0
            done.append((started, loop.time(), status))
            if status != 201:
                await asyncio.sleep(0.05)

    async def killer() -> None:
        nonlocal kill_at
        while len(acked) < 50 or sum(s == 201 for *_, s in done) < 50:
            await asyncio.sleep(0.05)
            if loop.time() > stop_at:
                return
        cluster.kill(leader)  # returns once the process is gone
        kill_at = loop.time()
        killed.set()

    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async with session.post(f"{gateway}/api/v1/registry/projects", json={"name": project}) as resp:
            assert resp.status in (200, 201), await resp.text()
        await asyncio.gather(appender(), killer(), *(client(session) for _ in range(8)))
        new_leader = (await admin.jetstream(timeout=5).stream_info(EVENTS_STREAM)).cluster.leader  # type: ignore[union-attr]
    await log.close()
    await admin.close()
    await asyncio.to_thread(cluster.start, leader)  # whole again for what follows
    ok = sorted(e for _, e, s in done if s == 201)
    raw_after = [a for s, a in acked if s > kill_at]
    sent_after = [e for s, e, st in done if st == 201 and s > kill_at]
    gaps = [b - a for a, b in zip(ok, ok[1:], strict=False) if b > kill_at]
    return {"killed": leader, "new_leader": new_leader, "appended_before_and_after": len(acked),
            "raw_append_s_until_one_sent_after_the_kill_acked": round(raw_after[0] - kill_at, 2) if raw_after else None,
            "gateway_s_until_a_command_sent_after_the_kill_acked": round(sent_after[0] - kill_at, 2)
            if sent_after else None,
            "gateway_longest_gap_between_acks_s": round(max(gaps), 2) if gaps else None,
            "gateway_slowest_command_s": round(max(e - s for s, e, _ in done), 2) if done else None,
            "gateway_answers": dict(Counter(str(s) for *_, s in done))}


def holder_service(holder: str) -> str:
    """The ``cairn up`` process of a lease holder: ``scheduler/main`` -> ``scheduler``,
    ``scheduler/r3`` -> ``scheduler-3`` (what ``--service-replicas`` names its replicas)."""
    service, replica = holder.split("/", 1)
    return service if replica in ("main", "") else f"{service}-{replica.removeprefix('r')}"


async def scheduler_failover(state: dict, gateway: str, token: str, cluster: NatsCluster | None) -> dict[str, Any]:
    """SIGKILL the scheduler that holds the ``scheduler.dispatcher`` lease (the only one without
    leases); the seconds until the lease has a new term (another replica took over, or the
    restarted one took it back), and until the gateway reports the scheduler ready again (with
    one replica: it goes down first)."""
    held = await read_lease(cluster)
    victim = holder_service(held["holder"]) if held else "scheduler"
    pid = state["services"][victim]["pid"]
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        took_over = await _until_new_term(cluster, held["term"], killed) if held else {}
        seen_down, ready_s = False, None
        while time.monotonic() - killed < DEADLINE_S:
            line = (await gateway_status(session, gateway)).get("services", {}).get("scheduler", {})
            if not line.get("ready"):
                seen_down = True
            elif seen_down or held:  # with replicas the others stay ready: ready again = now
                ready_s = round(time.monotonic() - killed, 2)
                break
            await asyncio.sleep(0.05)
    return {"killed": victim, "lease_before": held, **took_over, "scheduler_s_until_ready": ready_s,
            "how": "the lease's holder SIGKILLed; cairn up's supervisor restarts it (0.5 s backoff)"}


async def read_lease(cluster: NatsCluster | None, key: str = "scheduler.dispatcher") -> dict | None:
    """A singleton's lease from ``cairn-leases`` (part B); None when there is no bucket or key."""
    if cluster is None:
        return None
    nc = await connect(cluster.url, name="bench-lease", credentials=NatsCredentials.read(cluster.creds("admin")))
    try:
        kv = await nc.jetstream(timeout=5).key_value(LEASE_BUCKET)
        entry = await kv.get(key)
        return dict(json.loads(entry.value or b"{}"))
    except Exception:  # noqa: BLE001 - no bucket or no key
        return None
    finally:
        await nc.close()


def start_standby_scheduler(state: dict, log_dir: Path) -> subprocess.Popen[bytes]:
    """A second scheduler replica (``CAIRN_REPLICA=r2``) with the first one's environment and a
    port of its own: ``cairn up`` starts one scheduler only."""
    first = Path(f"/proc/{state['services']['scheduler']['pid']}/environ").read_bytes()
    env = dict(item.split("=", 1) for item in first.decode().split("\0") if "=" in item)
    port = free_port()
    env.update({"CAIRN_PORT": str(port), "CAIRN_REPLICA": "r2"})
    with open(log_dir / "scheduler-r2.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cairn.services.scheduler"], env=env, stdout=log, stderr=log)
    wait_for_tcp("127.0.0.1", port, timeout=DEADLINE_S)
    return proc


async def _until_new_term(cluster: NatsCluster | None, term: int, since: float) -> dict[str, Any]:
    """Poll the dispatcher lease until its term passes ``term``: the new holder and how long."""
    while (now := await read_lease(cluster)) is None or now["term"] <= term:
        if time.monotonic() - since > DEADLINE_S:
            return {"new_holder": None, "s_until_new_term": None}
        await asyncio.sleep(0.05)
    return {"new_holder": now["holder"], "new_term": now["term"], "s_until_new_term": round(time.monotonic() - since, 2)}


async def live_lease(cluster: NatsCluster, holder_suffix: str = "") -> dict:
    """The dispatcher lease once it is unexpired (and held by a holder ending in ``holder_suffix``)."""
    deadline = time.monotonic() + DEADLINE_S
    while (held := await read_lease(cluster)) is None or held["expires_at"] < time.time() \
            or not held["holder"].endswith(holder_suffix):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no live scheduler.dispatcher lease held by *{holder_suffix} (last: {held})")
        await asyncio.sleep(0.1)
    return held


async def replica_takeover(state: dict, cluster: NatsCluster) -> dict[str, Any]:
    """With ``cairn up``'s own scheduler replicas (``--service-replicas`` 2 or more), two steps,
    each timed until the ``scheduler.dispatcher`` lease has a new term: its holder frozen
    (SIGSTOP: another replica takes over once the lease runs out; then SIGCONT, and the old holder
    finds itself no longer leader), then the new holder SIGKILLed (another takes over)."""
    steps: dict[str, Any] = {}
    try:
        held = await live_lease(cluster)
        pid = state["services"][holder_service(held["holder"])]["pid"]
        stopped = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            steps["holder_frozen"] = {"holder": held["holder"], "term": held["term"],
                                      **await _until_new_term(cluster, held["term"], stopped)}
        finally:
            os.kill(pid, signal.SIGCONT)
        held = await live_lease(cluster)
        killed = time.monotonic()
        os.kill(state["services"][holder_service(held["holder"])]["pid"], signal.SIGKILL)
        steps["holder_killed"] = {"holder": held["holder"], "term": held["term"],
                                  **await _until_new_term(cluster, held["term"], killed)}
    except TimeoutError as err:
        steps["error"] = str(err)
    return steps


async def standby_takeover(state: dict, cluster: NatsCluster, log_dir: Path) -> dict[str, Any]:
    """Part B's leader election with two scheduler replicas, ``main`` (cairn up's, supervised)
    and ``r2`` (started here, not supervised), in three steps, each timed until the
    ``scheduler.dispatcher`` lease has a new term:

    1. SIGKILL ``main`` holding the lease: cairn up restarts it and it takes its own lease back at
       start, racing ``r2``, which may take it only after the lease runs out (lease + renew);
    2. SIGSTOP ``main`` holding it (a frozen process): ``r2`` takes over when the lease runs out;
       then SIGCONT, and ``main`` finds itself no longer leader;
    3. SIGKILL ``r2`` holding it: ``main``, now the standby, takes over (a crash, no restart)."""
    standby = await asyncio.to_thread(start_standby_scheduler, state, log_dir)
    steps: dict[str, Any] = {}

    def main_pid() -> int:
        return int(json.loads((log_dir.parent / "run" / "state.json").read_text())["services"]["scheduler"]["pid"])

    try:
        held = await live_lease(cluster, "/main")
        killed = time.monotonic()
        os.kill(main_pid(), signal.SIGKILL)
        steps["main_killed_and_restarted"] = {"term": held["term"], **await _until_new_term(cluster, held["term"], killed)}
        held = await live_lease(cluster, "/main")
        pid = main_pid()
        stopped = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            steps["main_frozen"] = {"term": held["term"], **await _until_new_term(cluster, held["term"], stopped)}
        finally:
            os.kill(pid, signal.SIGCONT)
        held = await live_lease(cluster, "/r2")
        killed = time.monotonic()
        standby.kill()
        steps["standby_holder_killed"] = {"term": held["term"], **await _until_new_term(cluster, held["term"], killed)}
    except TimeoutError as err:
        steps["error"] = str(err)
    finally:
        if standby.poll() is None:
            standby.kill()
        standby.wait()
    return steps
