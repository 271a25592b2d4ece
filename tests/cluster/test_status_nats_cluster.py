"""What ``cairn status`` reports of a real NATS cluster: three nats-servers with routes on loopback,
a stream of three replicas. Every node is listed with the streams it leads and follows; a follower
killed with SIGKILL shows as not current (or offline), and the stream as not current.

The report's functions run here against the cluster directly (the gateway calls the same ones,
over its own connection: tests/cluster/test_gateway_replicas.py covers that path)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest

from cairn.natsserver import free_ports, nats_server_binary, wait_for_tcp
from cairn.services.gateway.cluster import monitoring_report, nodes_report, streams_report

STREAM = "STATUS_R3"
DEADLINE_S = 60.0


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    monitor: str  # its monitoring endpoint's URL


def node_config(root: Path, name: str, port: int, cluster_port: int, routes: list[int], http_port: int) -> Path:
    """One cluster member: file storage with fsync on every write, as Cairn's servers run."""
    directory = root / name
    directory.mkdir(parents=True)
    config = directory / "nats.conf"
    route_urls = ", ".join(f'"nats://127.0.0.1:{p}"' for p in routes)
    config.write_text(f'server_name: "{name}"\nlisten: "127.0.0.1:{port}"\nhttp: "127.0.0.1:{http_port}"\n'
                      f'jetstream {{ store_dir: "{directory / "js"}", sync_interval: always }}\n'
                      f'cluster {{ name: "status-test", listen: "127.0.0.1:{cluster_port}", routes: [{route_urls}] }}\n')
    return config


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    root = tmp_path_factory.mktemp("nats-cluster")
    ports = free_ports(9)
    client, routes, http = ports[:3], ports[3:6], ports[6:]
    nodes: list[Node] = []
    try:
        for i in range(3):
            name = f"n{i + 1}"
            config = node_config(root, name, client[i], routes[i], routes, http[i])
            log = open(root / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
            nodes.append(Node(name, client[i], subprocess.Popen([nats_server_binary(), "-c", str(config)],
                                                                 stdout=log, stderr=log),
                              f"http://127.0.0.1:{http[i]}"))
            log.close()
        for node in nodes:
            wait_for_tcp("127.0.0.1", node.port, timeout=DEADLINE_S)
        yield nodes
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in nodes:
            try:
                node.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()


@pytest.fixture()
async def nc(cluster: list[Node]) -> AsyncIterator[nats.NATS]:
    conn = await nats.connect([f"nats://127.0.0.1:{n.port}" for n in cluster], max_reconnect_attempts=-1)
    try:
        yield conn
    finally:
        await conn.close()


async def eventually(check, what: str):  # type: ignore[no-untyped-def]
    """``await check()`` until it returns something truthy, within the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            result = await check()
        except Exception:  # noqa: BLE001 - e.g. no meta leader yet: JetStream answers an error
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


async def test_status_lists_every_node_and_a_killed_follower_as_not_current(
        cluster: list[Node], nc: nats.NATS) -> None:
    js = nc.jetstream()
    await eventually(lambda: js.add_stream(name=STREAM, subjects=["status.>"], num_replicas=3, storage="file"),
                     "an R3 stream (the cluster elected a meta leader)")
    for i in range(5):
        await js.publish(f"status.{i}", b"x")

    async def all_current() -> list[dict] | None:
        streams = await streams_report(nc)
        mine = next(s for s in streams if s["name"] == STREAM)
        return streams if mine["current"] and len(mine["followers"]) == 2 and mine["lag"] == 0 else None

    streams = await eventually(all_current, "both followers current")
    [mine] = [s for s in streams if s["name"] == STREAM]
    assert mine["replicas"] == 3 and mine["cluster"] == "status-test" and mine["last_seq"] == 5
    names = {mine["leader"], *(f["name"] for f in mine["followers"])}
    assert names == {"n1", "n2", "n3"}
    nodes = {n["name"]: n for n in nodes_report(nc._server_info, streams)}
    assert set(nodes) == {"n1", "n2", "n3"}
    assert sum(n["connected"] for n in nodes.values()) == 1
    assert nodes[mine["leader"]]["leads"] == [STREAM]
    assert all(n["current"] and not n["offline"] for n in nodes.values())

    async with httpx.AsyncClient() as http:  # the servers' monitoring endpoints add the meta group
        monitoring = await monitoring_report(http, [n.monitor for n in cluster])
    meta = monitoring["meta"]
    assert meta["cluster"] == "status-test" and meta["size"] == 3 and meta["leader"] in {"n1", "n2", "n3"}
    assert {m["name"] for m in meta["members"]} | {meta["leader"]} == {"n1", "n2", "n3"}
    assert [s["name"] for s in monitoring["servers"]] == ["n1", "n2", "n3"]
    nodes = {n["name"]: n for n in nodes_report(nc._server_info, streams, monitoring)}
    assert [name for name, n in nodes.items() if n.get("meta_leader")] == [meta["leader"]]
    assert all(n["monitor"]["connections"] is not None for n in nodes.values())

    follower = next(f["name"] for f in mine["followers"] if f["name"] != nc._server_info.get("server_name"))
    victim = next(n for n in cluster if n.name == follower)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    await js.publish("status.after", b"y")  # a quorum of two takes it; the dead follower falls behind

    async def follower_down() -> list[dict] | None:
        streams = await streams_report(nc)
        mine = next(s for s in streams if s["name"] == STREAM)
        gone = [f for f in mine["followers"] if f["name"] == follower and (not f["current"] or f["offline"])]
        return streams if gone and not mine["current"] else None

    streams = await eventually(follower_down, f"{follower} reported not current after SIGKILL")
    nodes = {n["name"]: n for n in nodes_report(nc._server_info, streams)}
    assert nodes[follower]["current"] is False or nodes[follower]["offline"] is True
    async with httpx.AsyncClient() as http:  # the dead server's endpoint is an error in the report
        monitoring = await monitoring_report(http, [n.monitor for n in cluster])
    [dead] = [s for s in monitoring["servers"] if s.get("error")]
    assert dead["url"] == victim.monitor
