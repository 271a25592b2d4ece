"""A real 3-node NATS cluster made by ``cairn cluster certs`` and ``cairn cluster config`` (TLS on
client, route and leaf listeners, Cairn's per-role users), plus a leaf node for a remote site.

Losing the stream leader under load loses no acknowledged event and stores none twice; the node
comes back and catches up. Security on the wire: a plain-text client or one that does not trust
the cluster's CA is refused, and the agent user can neither append events of record nor read the
key bucket. An agent at the leaf site hears what the cluster sends it and gets answers back.
One cluster for the module; every process on loopback, on free ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import loopback
import nats
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from nats import errors as nats_errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from cairn.cli.main import cli
from cairn.cluster.certs import CA_CERT, Host, make_certs
from cairn.cluster.config import Node, node_config, read_env_file
from cairn.kernel import jobtoken
from cairn.kernel.envelope import Event
from cairn.kernel.errors import ConfigurationError, Unavailable
from cairn.kernel.eventlog import EventLog, connect
from cairn.kernel.natsauth import AGENT_INBOX_PREFIX, NatsCredentials
from cairn.kernel.natstls import client_tls_context
from cairn.natsserver import free_port, free_ports, start_configured_server
from cairn.protocol import EVENTS_STREAM, KEY_BUCKET, LOGS_STREAM, METRICS_STREAM, NATS_TLS_CA_ENV
from cairn.services.metrics.stream import ensure_stream as ensure_metrics_stream
from cairn.services.scheduler.logs import ensure_logs_stream

from platform_harness import signed_headers

NODES = ("n1", "n2", "n3")
DEADLINE_S = 60.0


@dataclass
class Cluster:
    """The running servers and the files that ``cairn cluster`` wrote."""

    root: Path
    configs: dict[str, Path]
    urls: dict[str, str]  # node -> its client URL
    node_args: list[str]  # the --node options that cairn cluster config was given
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / "nats"

    def env(self, role: str) -> dict[str, str]:
        return read_env_file(self.out / "env" / f"{role}.env")

    def creds(self, role: str) -> NatsCredentials:
        return NatsCredentials.read(self.out / "creds" / f"{role}.json")

    def tls(self) -> ssl.SSLContext | None:
        return client_tls_context({NATS_TLS_CA_ENV: str(self.root / "tls" / "ca.pem")})

    def start(self, name: str) -> None:
        store = self.out / "store" / name
        self.procs[name], _ = start_configured_server(self.configs[name], store, self.root / f"{name}.log")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def invoke(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("nats-cluster")
    ports = free_ports(3 * len(NODES) + 1)
    hosts = [f"--host={name}=127.0.0.1" for name in NODES]
    invoke("cluster", "certs", "--out", str(root / "tls"), "--name", "test", *hosts)
    nodes = [f"--node={name}=127.0.0.1:{ports[3 * i]}:{ports[3 * i + 1]}:{ports[3 * i + 2]}"
             for i, name in enumerate(NODES)]
    written = invoke("cluster", "config", "--out", str(root / "nats"), "--name", "test", "--tls-dir",
                     str(root / "tls"), *nodes, f"--site=lab=127.0.0.1:{ports[-1]}")
    configs = {name: Path(path) for name, path in written["nodes"].items()}
    configs["leaf-lab"] = Path(written["leaves"]["lab"])
    state = Cluster(root, configs, {name: f"tls://127.0.0.1:{ports[3 * i]}" for i, name in enumerate(NODES)}, nodes)
    try:
        for name in (*NODES, "leaf-lab"):
            state.start(name)
        asyncio.run(wait_for_meta_leader(state))
        yield state
    finally:
        for proc in state.procs.values():
            proc.kill()
            proc.wait(timeout=30)


async def admin_connection(cluster: Cluster) -> NATS:
    return await connect(cluster.env("admin")["CAIRN_NATS_URL"], name="test-admin",
                         credentials=cluster.creds("admin"), tls=cluster.tls())


async def wait_for_meta_leader(cluster: Cluster) -> None:
    """JetStream answers account requests only once the nodes have elected a meta leader."""
    nc = await admin_connection(cluster)
    try:
        js = nc.jetstream(timeout=2)
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while True:
            try:
                await js.account_info()
                return
            except (nats_errors.Error, asyncio.TimeoutError):
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def eventually(check: object, what: str) -> None:
    """Wait (bounded) until the async ``check()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, f"not within {DEADLINE_S:.0f}s: {what}"
        await asyncio.sleep(0.1)


def test_the_written_files_say_what_every_process_needs(cluster: Cluster, tmp_path: Path) -> None:
    registry = cluster.env("registry")
    assert registry["CAIRN_NATS_URL"].split(",") == list(cluster.urls.values())
    assert registry["CAIRN_REPLICAS"] == "3" and registry[NATS_TLS_CA_ENV].endswith("ca.pem")
    assert cluster.creds("registry").user == "registry"
    assert "CAIRN_NATS_CREDS" not in cluster.env("agent")  # agents get theirs from the scheduler
    assert cluster.env("scheduler")["CAIRN_SCHEDULER_AGENT_NATS_CREDS"].endswith("agent.json")
    for name in NODES:
        text = cluster.configs[name].read_text()
        assert "sync_interval: always" in text and "verify: true" in text
        assert os.stat(cluster.configs[name]).st_mode & 0o077 == 0  # it holds the passwords
    assert os.stat(cluster.root / "tls" / "ca-key.pem").st_mode & 0o077 == 0
    again = invoke("cluster", "certs", "--out", str(cluster.root / "tls"), "--name", "test", "--host=n1=127.0.0.1")
    assert again["made"] == [] and len(again["kept"]) == 4  # the CA and n1's pair are kept
    cert = x509.load_pem_x509_certificate((cluster.root / "tls" / "n1.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["n1"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}  # routes dial too
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    invoke("cluster", "certs", "--out", str(tmp_path / "tls"), "--name", "other", "--host=n1=127.0.0.1")
    moved = invoke("cluster", "certs", "--out", str(tmp_path / "tls"), "--name", "other", "--host=n1=127.0.0.2")
    assert [Path(p).name for p in moved["made"]] == ["n1.pem", "n1-key.pem"]  # a host at a new address
    password = cluster.creds("gateway").password
    invoke("cluster", "config", "--out", str(cluster.out), "--name", "test", "--tls-dir", str(cluster.root / "tls"),
           *cluster.node_args)
    assert cluster.creds("gateway").password == password  # a re-run keeps every role's credentials


async def test_a_client_without_tls_or_without_the_cluster_ca_is_refused(cluster: Cluster) -> None:
    url = cluster.urls["n1"]
    port = int(url.rsplit(":", 1)[1])
    password = cluster.creds("registry").password
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        info = sock.makefile("rb").readline()
        assert json.loads(info.split(b" ", 1)[1])["tls_required"] is True
        sock.sendall(b'CONNECT {"user":"registry","pass":"' + password.encode() + b'","verbose":true}\r\nPING\r\n')
        answer = b""
        while chunk := sock.recv(4096):  # the server closes a connection that does not start TLS
            answer += chunk
    assert b"PONG" not in answer and b"+OK" not in answer

    with pytest.raises(ConfigurationError, match="TLS with the NATS server"):  # the system's CAs do not know ours
        await connect(url, name="no-ca", credentials=cluster.creds("registry"), timeout=10)


async def test_streams_and_buckets_are_made_with_three_replicas(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cluster.env("registry").items():  # as a service started with its env file
        monkeypatch.setenv(name, value)
    log = await EventLog.open(os.environ["CAIRN_NATS_URL"], name="test-registry", replicas=3,
                              credentials=cluster.creds("registry"))
    admin = await admin_connection(cluster)
    try:
        from cairn.serving.inference_log import InferenceLogSettings, ensure_inference_stream

        await ensure_metrics_stream(log.nc, 3)
        await ensure_logs_stream(log.nc, 3)
        await ensure_inference_stream(admin, InferenceLogSettings(replicas=3))
        await jobtoken.shared_key(log.js, replicas=3)
        js = admin.jetstream(timeout=5)
        for stream in (EVENTS_STREAM, METRICS_STREAM, LOGS_STREAM, "CAIRN_INFERENCE", f"KV_{KEY_BUCKET}"):
            assert (await js.stream_info(stream)).config.num_replicas == 3, stream
    finally:
        await log.close()
        await admin.close()


async def test_the_agent_user_cannot_append_events_or_read_the_key_bucket(cluster: Cluster) -> None:
    admin = await admin_connection(cluster)
    refused: list[str] = []

    async def on_error(err: Exception) -> None:
        refused.append(str(err))

    agent = await nats.connect(list(cluster.urls.values()), name="test-agent", tls=cluster.tls(), error_cb=on_error,
                               inbox_prefix=AGENT_INBOX_PREFIX, **cluster.creds("agent").connect_options())
    try:
        js = admin.jetstream(timeout=5)
        await jobtoken.shared_key(js, replicas=3)
        before = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        await agent.publish("cairn.evt.shop.run.r1", b"{}")
        await agent.subscribe(f"$KV.{KEY_BUCKET}.>")
        with pytest.raises(nats_errors.Error):
            await agent.request(f"$JS.API.DIRECT.GET.KV_{KEY_BUCKET}", b'{"last_by_subj": "$KV.cairn-keys.x"}',
                                timeout=1)

        async def all_refused() -> bool:
            text = "\n".join(refused).lower()  # nats-py lowercases the server's -ERR
            return ('permissions violation for publish to "cairn.evt.shop.run.r1"' in text
                    and f'permissions violation for subscription to "$kv.{KEY_BUCKET}.>"' in text
                    and f'permissions violation for publish to "$js.api.direct.get.kv_{KEY_BUCKET}"' in text)

        await eventually(all_refused, f"the server refuses the agent's three attempts (got {refused})")
        assert (await js.stream_info(EVENTS_STREAM)).state.last_seq == before
    finally:
        await agent.close()
        await admin.close()


async def test_an_agent_at_a_leaf_site_hears_the_cluster_and_is_answered(cluster: Cluster) -> None:
    leaf_url = cluster.env("agent")["CAIRN_AGENT_NATS_URL"]
    assert leaf_url  # the cluster's own URLs; the site's agents use the leaf's instead
    leaf_conf = cluster.configs["leaf-lab"].read_text()
    site = leaf_conf.split('listen: "', 1)[1].split('"', 1)[0]
    agent = await connect(f"nats://{site}", name="test-leaf-agent", credentials=cluster.creds("agent"),
                          inbox_prefix=AGENT_INBOX_PREFIX)
    admin = await admin_connection(cluster)
    try:
        heard = await agent.subscribe("cairn.sched.agent.lab-1")
        await agent.flush()

        async def scheduler(msg: Msg) -> None:
            await msg.respond(b"ok:" + msg.data)

        await admin.subscribe("cairn.sched.report", cb=scheduler)
        await admin.flush()

        async def assignment_arrives() -> bool:  # interest crosses the leaf connection a moment later
            await admin.publish("cairn.sched.agent.lab-1", b"assignment")
            try:
                return (await heard.next_msg(timeout=0.2)).data == b"assignment"
            except nats_errors.TimeoutError:
                return False

        await eventually(assignment_arrives, "an assignment published in the cluster reaches the leaf agent")
        reply = await agent.request("cairn.sched.report", b"done", timeout=10)
        assert reply.data == b"ok:done"
    finally:
        await agent.close()
        await admin.close()


async def test_killing_the_stream_leader_loses_no_acknowledged_event(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cluster.env("registry").items():
        monkeypatch.setenv(name, value)
    log = await EventLog.open(os.environ["CAIRN_NATS_URL"], name="test-writer", replicas=3,
                              credentials=cluster.creds("registry"))
    # a publish whose leader was killed waits out this timeout before it is retried (services: 10 s)
    log.js = log.nc.jetstream(timeout=2)
    admin = await admin_connection(cluster)
    js = admin.jetstream(timeout=5)
    acked: dict[str, int] = {}  # event id -> its stream sequence, for every acknowledged append
    retried = 0

    reached: dict[int, asyncio.Event] = {count: asyncio.Event() for count in (40, 70, 100)}

    async def append(count: int, writer: str) -> None:
        """Append until ``count`` events are acknowledged in all (writers run side by side, so
        some append is in flight whenever the node dies)."""
        nonlocal retried
        loop = asyncio.get_running_loop()
        for n in range(10_000):
            if len(acked) >= count:
                return
            event = Event(type="item.added", project="cluster", aggregate="item", aggregate_id=f"{writer}-{n}",
                          data={"n": n})
            deadline = loop.time() + DEADLINE_S
            while True:  # the same event, so the same idempotency key, until it is acknowledged
                try:
                    acked[event.id] = (await log.append(event, expected_last_subject_seq=None)).sequence
                    break
                except (nats_errors.Error, asyncio.TimeoutError, Unavailable):  # Unavailable: no stream leader answered
                    retried += 1
                    assert loop.time() < deadline, "no node took the append"
                    await asyncio.sleep(0.05)
            for mark, done in reached.items():
                if len(acked) >= mark:
                    done.set()

    try:
        start = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        await append(30, "warm")
        # the node to kill: the one the writer is connected to, made the stream's leader, so the
        # writer must both reconnect elsewhere and wait out a leader election
        writer_port = log.nc.connected_url.port  # type: ignore[union-attr]
        leader = next(name for name, url in cluster.urls.items() if url.endswith(f":{writer_port}"))

        async def leads() -> bool:
            try:
                if (await js.stream_info(EVENTS_STREAM)).cluster.leader == leader:  # type: ignore[union-attr]
                    return True
                await admin.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{EVENTS_STREAM}",
                                    json.dumps({"placement": {"preferred": leader}}).encode(), timeout=5)
            except (nats_errors.Error, asyncio.TimeoutError):
                pass
            return False

        await eventually(leads, f"{leader} leads the event stream")
        writers = [asyncio.create_task(append(130, f"w{i}")) for i in range(4)]
        await asyncio.wait_for(reached[40].wait(), DEADLINE_S)
        cluster.kill(leader)  # while the writers append
        await asyncio.wait_for(reached[70].wait(), DEADLINE_S)  # through the other nodes
        assert log.nc.connected_url.port != writer_port  # type: ignore[union-attr]
        cluster.start(leader)
        await asyncio.wait_for(reached[100].wait(), DEADLINE_S)
        await asyncio.gather(*writers)

        async def caught_up() -> bool:
            try:
                info = await js.stream_info(EVENTS_STREAM)
            except (nats_errors.Error, asyncio.TimeoutError):
                return False
            peers = {peer.name: peer for peer in info.cluster.replicas or []}  # type: ignore[union-attr]
            if info.cluster.leader == leader:  # type: ignore[union-attr]
                return len(peers) == 2 and all(p.current and not p.lag for p in peers.values())
            return leader in peers and bool(peers[leader].current) and not peers[leader].lag

        await eventually(caught_up, f"{leader} catches up after its restart")
        last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        stored: dict[int, str] = {}  # stream sequence -> event id
        for seq in range(start + 1, last + 1):
            stored[seq] = json.loads((await js.get_msg(EVENTS_STREAM, seq)).data or b"{}")["id"]
        assert len(stored) == len(set(stored.values())), "an event was stored twice"
        lost = [event_id for event_id, seq in acked.items() if stored.get(seq) != event_id]
        assert not lost, f"acknowledged events not at the sequence their ack named: {lost}"
        print(f"appended {len(acked)} events, {retried} attempts retried while {leader} was down")
    finally:
        await log.close()
        await admin.close()


def test_a_server_with_a_certificate_from_another_ca_cannot_join(cluster: Cluster, tmp_path: Path) -> None:
    """Routes verify each other: a server that trusts the cluster's CA but holds a certificate of
    another CA is refused by every node it dials."""
    rogue_tls = tmp_path / "tls"
    make_certs(rogue_tls, "rogue", [Host("rogue", "127.0.0.1")])
    (rogue_tls / CA_CERT).write_bytes((cluster.root / "tls" / CA_CERT).read_bytes())
    ports = free_ports(3)
    rogue = Node("rogue", "127.0.0.1", *ports)
    members = [Node.parse(arg.removeprefix("--node=")) for arg in cluster.node_args]
    config = tmp_path / "rogue.conf"
    config.write_text(node_config("test", rogue, [rogue, *members], tmp_path / "store", rogue_tls))
    logs = {name: cluster.root / f"{name}.log" for name in NODES}
    before = {name: log.stat().st_size for name, log in logs.items()}
    proc, _ = start_configured_server(config, tmp_path / "store", tmp_path / "rogue.log")
    try:
        def refused_by(name: str) -> bool:  # Go's TLS sends no certificate that the node's CA did not sign
            with open(logs[name], "rb") as log:
                log.seek(before[name])
                return b"TLS route handshake error: tls: client didn't provide a certificate" in log.read()

        deadline = time.monotonic() + DEADLINE_S
        while not all(refused_by(name) for name in NODES):
            assert time.monotonic() < deadline, f"not every node refused the rogue's route; logs in {cluster.root}"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(timeout=30)


async def test_a_service_started_with_its_env_file_runs_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """The registry service, with nothing but its env file (every node's URL, the CA, its
    credentials, 3 replicas), connects over TLS and keeps its projection's consumer at 3 replicas."""
    port = free_port()
    env = {**os.environ, **cluster.env("registry"), "CAIRN_DATA_DIR": str(tmp_path / "data"),
           "CAIRN_PORT": str(port), "CAIRN_HOST": "127.0.0.1", "CAIRN_REPLICA": "c1", "CAIRN_LOG_LEVEL": "warning"}
    with open(tmp_path / "registry.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cairn.services.registry"], env=env, stdout=log, stderr=log)
    admin = await admin_connection(cluster)
    try:
        async def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "registry.log").read_text()[-3000:]
            try:
                answer = await asyncio.to_thread(loopback.get, f"http://127.0.0.1:{port}/healthz", timeout=2,
                                                 headers=signed_headers(tmp_path / "data"))
            except httpx.HTTPError:
                return False
            return answer.status_code == 200 and answer.json()["ready"] is True

        await eventually(ready, "the registry service is ready")
        consumer = await admin.jetstream(timeout=5).consumer_info(EVENTS_STREAM, "projection-registry-c1")
        assert consumer.cluster is not None and len(consumer.cluster.replicas or []) == 2  # and its leader: 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        await admin.close()


async def test_a_node_running_its_subscriber_sync_lets_an_issued_subscriber_in(cluster: Cluster) -> None:
    """Each node's config includes its users file (``nodes/<node>.users.conf``), so the node's
    subscriber sync can add an outside subscriber issued in the log, with no edit of the config:
    the node with a sync lets the subscriber in, a node without one does not."""
    from cairn.kernel.subscribers import hash_password, nats_user, new_password

    config = cluster.configs["n1"].read_text()
    assert 'include "n1.users.conf"' in config and "authorization" not in config
    users_file = cluster.out / "nodes" / "n1.users.conf"
    assert os.stat(users_file).st_mode & 0o077 == 0  # it holds the passwords
    admin = await admin_connection(cluster)
    event_log = EventLog(admin, replicas=3)
    await event_log.ensure_stream()
    password = new_password()
    await event_log.append(Event(type="event_subscriber.issued", project="_site", aggregate="event_subscriber",
                                 aggregate_id="outside-1",
                                 data={"name": "outside-1", "projects": ["alpha"], "expires_at": None,
                                       "password_hash": hash_password(password, rounds=4)}),
                           expected_last_subject_seq=None)
    await admin.close()
    env = {**os.environ, **cluster.env("admin")}
    sync = subprocess.Popen([sys.executable, "-m", "cairn.kernel.subscriber_sync", "--creds",
                             str(cluster.out / "creds" / "admin.json"), "--users-file", str(users_file),
                             "--static-creds-dir", str(cluster.out / "creds"),
                             "--ports-dir", str(cluster.out / "store" / "n1")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def connects(node: str) -> bool:
        try:
            nc = await nats.connect(cluster.urls[node], user=nats_user("outside-1"), password=password,
                                    tls=cluster.tls(), allow_reconnect=False, max_reconnect_attempts=0,
                                    connect_timeout=2)
        except (nats_errors.Error, OSError):
            return False
        await nc.close()
        return True

    try:
        async def admitted() -> bool:
            assert sync.poll() is None, sync.stderr.read().decode()[-3000:] if sync.stderr else ""
            return await connects("n1")

        await eventually(admitted, "n1 lets the issued subscriber in")
        assert nats_user("outside-1") in users_file.read_text()
        assert not await connects("n2")  # no sync next to n2: it keeps the users it had
    finally:
        sync.terminate()
        sync.wait(timeout=30)


async def test_a_key_waits_for_its_buckets_stream_to_have_a_leader(cluster: Cluster) -> None:
    """``bucket_key`` asked while the key bucket's stream has no leader (two of its three nodes
    down, no quorum) answers once they are back and one is elected, instead of failing the start
    of the service that asked (a fresh cluster's scheduler once exited so: its bucket had just
    been made and was still electing)."""
    from cairn.kernel.keybucket import bucket_key

    nc = await connect(cluster.urls["n1"], name="test-keys", credentials=cluster.creds("admin"), tls=cluster.tls())
    js = nc.jetstream(timeout=2)  # a service's is 10 s: short, so a try fails while no leader answers
    try:
        first = await bucket_key(js, "probe-made-while-led", replicas=3)
        for name in ("n2", "n3"):
            cluster.kill(name)

        async def back() -> None:
            await asyncio.sleep(2)
            for name in ("n2", "n3"):
                await asyncio.to_thread(cluster.start, name)

        restart = asyncio.create_task(back())
        made = await bucket_key(js, "probe-made-after-an-election", replicas=3, wait_for_leader_s=DEADLINE_S)
        await restart
        assert len(made) == 32 and made != first
        assert await bucket_key(js, "probe-made-after-an-election", replicas=3) == made  # kept, not made again
    finally:
        await nc.close()
        for name in ("n2", "n3"):
            if name not in cluster.procs:
                cluster.start(name)
        await wait_for_meta_leader(cluster)



async def test_a_retry_of_an_append_still_being_stored_is_a_503_not_a_500(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a replicated stream a publish is "in process" until its RAFT proposal commits; a retry
    with the same Nats-Msg-Id meanwhile is refused with err_code 10158 (nats-server 2.11+), neither
    stored nor a duplicate. The failure tests met it as a 500 (a client retrying through another
    gateway while h2 was cut off): it is "retry shortly", and the event is stored once."""
    for name, value in cluster.env("registry").items():
        monkeypatch.setenv(name, value)
    deadline = time.monotonic() + 60  # a test before may have left nodes restarting (under load: slowly)
    while True:
        try:
            log = await EventLog.open(os.environ["CAIRN_NATS_URL"], name="test-retrier", replicas=3,
                                      credentials=cluster.creds("registry"))
            break
        except (nats_errors.TimeoutError, Unavailable):
            assert time.monotonic() < deadline, "the cluster's event stream did not answer within 60 s"
            await asyncio.sleep(1)
    seen: dict[str, int] = {}
    try:
        for round_ in range(30):
            event = Event(type="item.added", project="cluster", aggregate="item", aggregate_id=f"retry-{round_}",
                          data={}, actor="test")

            async def one(event: Event = event) -> str:
                try:
                    appended = await log.append(event, expected_last_subject_seq=None)
                except Unavailable:
                    return "503"
                return "duplicate" if appended.duplicate else "stored"

            for outcome in await asyncio.gather(*(one() for _ in range(20))):  # the same write, 20 tries at once
                seen[outcome] = seen.get(outcome, 0) + 1
    finally:
        await log.close()
    assert seen.get("stored") == 30, seen  # each write stored once; every other try a duplicate or a 503
    print("outcomes of 20 simultaneous tries of 30 writes:", seen)
