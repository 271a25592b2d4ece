"""Two gateways over one log: every gateway queues webhook deliveries, the holder of the
``gateway.webhooks`` lease delivers them (services/gateway/webhook_progress.py).

Why: each gateway used to bind the one durable consumer ``webhooks``, deleting and making it
again, so two gateways starting together timed out and split the events between them, and a
dead gateway's queued deliveries waited for it. The tests start two gateways at once, check that
each event is delivered once whichever gateway took the write, and SIGKILL the delivering gateway
with deliveries queued: the other delivers every one of them (a delivery in flight at the kill
may arrive twice: deliveries are at least once, receivers dedupe on ``Cairn-Delivery``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import loopback
import pytest
from service_fork import ServiceProcess
from webhook_receivers import Receiver

from cairn.kernel.eventlog import connect
from cairn.kernel.leader import JetStreamLeases
from cairn.natsserver import free_ports, wait_for_tcp
from cluster.replica_harness import wait_until

from platform_harness import START_TIMEOUT_S, Platform, running

NAMES = {"gateway/main": "gateway", "gateway/b": "gateway-b"}


class Gateways:
    def __init__(self, plat: Platform) -> None:
        self.plat = plat
        self.port_b = free_ports(1)[0]

    def url(self, name: str) -> str:
        return self.plat.gateway if name == "gateway" else f"http://127.0.0.1:{self.port_b}"

    def start(self, name: str) -> None:
        if name == "gateway":
            self.plat.start_service("gateway", wait=False)
            return
        env = {**self.plat._env("gateway"), "CAIRN_PORT": str(self.port_b), "CAIRN_REPLICA": "b"}
        log = self.plat.root / "gateway-b.log"
        if self.plat.forked:
            proc: Any = ServiceProcess("gateway", env, log)
        else:
            with open(log, "ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "cairn.services.gateway"], env=env,
                                        stdout=out, stderr=out)
        self.plat.procs["gateway-b"] = proc

    def wait_ready(self, *names: str) -> None:
        for name in names:
            port = int(self.url(name).rsplit(":", 1)[1])
            wait_for_tcp("127.0.0.1", port, timeout=START_TIMEOUT_S)
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    if loopback.get(f"{self.url(name)}/healthz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{name} not healthy; see {self.plat.root}"
                time.sleep(0.1)

    def http(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url(name)}/api/v1", headers=self.plat.headers, timeout=30)

    def holder(self) -> str | None:
        """The process holding the lease now (None: nobody, or it expired)."""
        async def read() -> str | None:
            nc = await connect(self.plat.nats_url)
            try:
                current = await (await JetStreamLeases.open(nc.jetstream())).read("gateway.webhooks")
            finally:
                await nc.close()
            if current is None or current[0].expires_at < time.time():
                return None
            return NAMES[current[0].holder]
        return asyncio.run(read())


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    # a short lease: the takeover after the kill comes within lease + renew (4 s)
    plat = Platform(tmp_path_factory.mktemp("replicas-webhooks"),
                    extra_env={"CAIRN_LEADER_LEASE_S": "3", "CAIRN_LEADER_RENEW_S": "1"})
    with running(plat):
        both = Gateways(plat)
        plat.kill("gateway")
        both.start("gateway")  # both at once: neither may pull the other's consumer away
        both.start("gateway-b")
        both.wait_ready("gateway", "gateway-b")
        yield both


def hooked_project(gateways: Gateways, via: str, receiver: Receiver) -> str:
    project = f"hooks{os.getpid()}{time.monotonic_ns() % 10**6}"
    with gateways.http(via) as http:
        http.post("/registry/projects", json={"name": project}).raise_for_status()
        http.post(f"/projects/{project}/webhooks", json={"url": receiver.url, "types": ["run.created"]}
                  ).raise_for_status()
    return project


def create_runs(gateways: Gateways, project: str, count: int, via: tuple[str, ...]) -> list[str]:
    runs = []
    clients = [gateways.http(name) for name in via]
    try:
        for i in range(count):
            resp = clients[i % len(clients)].post(f"/registry/projects/{project}/runs", json={})
            assert resp.status_code == 201, resp.text
            runs.append(resp.json()["id"])
    finally:
        for client in clients:
            client.close()
    return runs


def delivered(receiver: Receiver) -> Counter[str]:
    with receiver.lock:
        return Counter(event["aggregate_id"] for event, _, _ in receiver.received)


def pending(gateways: Gateways, via: str, project: str) -> int:
    with gateways.http(via) as http:
        return sum(hook["pending"] for hook in http.get(f"/projects/{project}/webhooks").json()["webhooks"])


def test_two_gateways_started_together_both_serve_and_one_delivers(gateways: Gateways) -> None:
    assert wait_until(gateways.holder, "a holder of gateway.webhooks") in ("gateway", "gateway-b")
    for name in ("gateway", "gateway-b"):
        with gateways.http(name) as http:
            assert http.get("/whoami").status_code == 200


def test_each_event_is_delivered_once_whichever_gateway_took_the_write(gateways: Gateways) -> None:
    receiver = Receiver()
    try:
        project = hooked_project(gateways, "gateway-b", receiver)
        runs = create_runs(gateways, project, 12, ("gateway", "gateway-b"))
        wait_until(lambda: set(delivered(receiver)) >= set(runs), "every run.created delivered")
        # both gateways queued every one; the standby drops what the holder finished
        for name in ("gateway", "gateway-b"):
            wait_until(lambda name=name: pending(gateways, name, project) == 0, f"{name}'s queue to empty")
        assert delivered(receiver) == dict.fromkeys(runs, 1)
        with receiver.lock:
            ids = [headers["Cairn-Delivery"] for _, _, headers in receiver.requests]
        assert len(ids) == len(set(ids)) == 12  # nothing sent twice, by either gateway
    finally:
        receiver.close()


def test_the_delivering_gateway_killed_with_a_queue_the_other_delivers_it(gateways: Gateways) -> None:
    receiver = Receiver(delay_s=0.2)  # slow: the queue is long when the holder dies
    holder = wait_until(gateways.holder, "a holder of gateway.webhooks")
    other = "gateway-b" if holder == "gateway" else "gateway"
    try:
        project = hooked_project(gateways, other, receiver)
        runs = create_runs(gateways, project, 12, (other,))
        wait_until(lambda: len(delivered(receiver)) >= 3, "the first deliveries")
        gateways.plat.kill(holder)  # SIGKILL, deliveries queued
        assert len(delivered(receiver)) < len(runs), "every delivery was made before the kill; the test needs a queue"
        wait_until(lambda: set(delivered(receiver)) >= set(runs), "every run.created delivered by the other gateway",
                   timeout=90)
        assert gateways.holder() == other
        counts = delivered(receiver)
        assert set(counts) == set(runs)
        # at least once: the one in flight at the kill (and one whose note the kill cut off) may repeat
        assert sum(counts.values()) - len(runs) <= 2, counts
    finally:
        receiver.close()
        gateways.start(holder)
        gateways.wait_ready(holder)
