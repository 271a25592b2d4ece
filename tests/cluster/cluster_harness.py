"""A Cairn cluster on network-namespace hosts: three core hosts and a leaf site.

Each core host (h1, h2, h3) runs a nats-server of one 3-node JetStream cluster (configs and TLS
from ``cairn cluster config`` and ``cairn cluster certs``, as an operator would make them), a
replica of each replicable service (registry, lineage, artifacts, metrics: each metrics replica
writes every point into a folder of its own) and a gateway over every replica. h1 also runs the S3
server the artifacts replicas share (SeaweedFS, ``weed mini``) and the singleton services
(scheduler, deployments, monitor, pipelines), until leader election lets them run everywhere. h4 is a remote site: a leaf nats-server and an agent that reaches the cluster
only through it (and a gateway over HTTP, to register).

Ports inside a namespace are fixed (4222, 7001, ...): each host has a network stack of its own
that nothing else on the machine can bind in, which is what a real host would look like. The
machine-wide state (the bridge, its subnet, the namespace names) is unique per test process.

All hosts share one data directory on the one file system (the service key and secrets are the
cluster's own, each replica keeps its read model under ``replicas/<name>/``), as they would share
a secrets mount on real machines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import loopback
from artifacts.seaweed import PORTS as WEED_PORTS
from artifacts.seaweed import SeaweedS3
from click.testing import CliRunner
from nats import errors as nats_errors
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig

from cairn.cli.main import cli
from cairn.cluster.config import read_env_file
from cairn.kernel.eventlog import connect
from cairn.kernel.natsauth import NatsCredentials
from cairn.kernel.natstls import client_tls_context
from cairn.natsserver import nats_server_binary
from cairn.protocol import NATS_TLS_CA_ENV
from cairn.up import SERVICES, service_wiring
from cluster.netns import Network, enter

from platform_harness import START_TIMEOUT_S, signed_headers

CORE = ("h1", "h2", "h3")
SITE = "h4"
NATS_PORTS = (4222, 6222, 7422)  # client, route, leaf: inside each host's own namespace
SITE_PORT = 4222
PORTS = {"registry": 7001, "lineage": 7002, "artifacts": 7003, "metrics": 7004, "scheduler": 7005,
         "deployments": 7006, "monitor": 7007, "pipelines": 7008, "gateway": 8080}
REPLICATED = ("registry", "lineage", "artifacts", "metrics")  # artifacts: every replica over the one S3 bucket
S3_HOST = "h1"
S3_BUCKET = "cairn"
# weed mini's ports inside S3_HOST's namespace (its defaults would take the gateway's 8080)
S3_PORTS = {flag: 31000 + i for i, flag in enumerate(WEED_PORTS)}
# the scheduler, a singleton by leader election (part B): a standby on h2, to kill its leader
SCHEDULER_HOSTS = ("h1", "h2")
SINGLETON_HOST = "h1"
DEADLINE_S = max(60.0, START_TIMEOUT_S)


def run_in_netns(netns: str, name: str, env: dict[str, str], log_path: str) -> None:
    """In a fork of the fork server (tests/service_fork.py): into the host, then the service."""
    from service_fork import run_service

    enter(netns)
    run_service(name, env, log_path)


class Forked:
    """A service forked from the process that imported every service, inside a namespace."""

    def __init__(self, netns: str, name: str, env: dict[str, str], log: Path) -> None:
        from service_fork import _fork_server

        self._proc = _fork_server().Process(target=run_in_netns, args=(netns, name, env, str(log)),
                                            name=f"cairn-{name}", daemon=False)
        self._proc.start()
        assert self._proc.pid is not None
        self.pid: int = self._proc.pid

    def poll(self) -> int | None:
        return self._proc.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self._proc.join(timeout)
        return self._proc.exitcode


Proc = subprocess.Popen[bytes] | Forked


def kill_group(proc: Proc) -> None:
    """SIGKILL the process's group (each process here leads one) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def invoke(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


@dataclass
class Cluster:
    root: Path
    net: Network
    procs: dict[str, dict[str, Proc]] = field(default_factory=dict)  # host -> process name -> process
    token: str = ""
    restarts: dict[str, int] = field(default_factory=dict)
    forked: bool = field(default_factory=lambda: os.environ.get("CAIRN_TEST_FORK", "1") != "0")

    # -- layout ------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def nats_dir(self) -> Path:
        return self.root / "nats"

    def ip(self, host: str) -> str:
        return self.net.hosts[host].ip

    def url(self, host: str, service: str) -> str:
        return f"http://{self.ip(host)}:{PORTS[service]}"

    def gateways(self) -> list[str]:
        return [self.url(host, "gateway") for host in CORE]

    def services_of(self, host: str) -> list[str]:
        singles = [s for s in SERVICES if s not in REPLICATED] if host == SINGLETON_HOST else []
        standby = ["scheduler"] if host in SCHEDULER_HOSTS and host != SINGLETON_HOST else []
        return [*REPLICATED, *singles, *standby, "gateway"]

    def replica_urls(self, service: str) -> list[str]:
        hosts = SCHEDULER_HOSTS if service == "scheduler" else CORE
        return [self.url(host, service) for host in hosts]

    @property
    def service_headers(self) -> dict[str, str]:
        return signed_headers(self.data_dir)

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.ip(S3_HOST)}:{S3_PORTS['s3.port']}"

    def env(self, role: str) -> dict[str, str]:
        return read_env_file(self.nats_dir / "env" / f"{role}.env")

    # -- configuration -----------------------------------------------------------------------

    def configure(self) -> None:
        """Certificates and configs for the three nodes and the site, as ``cairn cluster`` makes them."""
        client, route, leaf = NATS_PORTS
        hosts = [f"--host=n{host[1]}={self.ip(host)}" for host in CORE]
        invoke("cluster", "certs", "--out", str(self.root / "tls"), "--name", "ft", *hosts)
        nodes = [f"--node=n{host[1]}={self.ip(host)}:{client}:{route}:{leaf}" for host in CORE]
        invoke("cluster", "config", "--out", str(self.nats_dir), "--name", "ft", "--tls-dir",
               str(self.root / "tls"), *nodes, f"--site=lab=127.0.0.1:{SITE_PORT}")

    def _service_env(self, host: str, name: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env = {**base, **self.env(name), "CAIRN_DATA_DIR": str(self.data_dir), "CAIRN_PORT": str(PORTS[name]),
               "CAIRN_HOST": self.ip(host), "CAIRN_LOG_LEVEL": "warning", "CAIRN_RATE_LIMIT": "0",
               "PYTHONUNBUFFERED": "1"}
        if host != CORE[0]:
            env["CAIRN_REPLICA"] = host
        singles = {s: self.url(SINGLETON_HOST, s) for s in SERVICES}
        env.update(service_wiring(singles).get(name, {}))
        if name == "metrics":  # every replica's durable made up front (services/metrics/stream.py)
            env["CAIRN_WRITER_REPLICAS"] = ",".join(["main", *CORE[1:]])
        if name == "artifacts":  # SeaweedFS takes any keys (no S3 identities configured)
            env.update({"CAIRN_ARTIFACTS_BACKEND": "s3", "CAIRN_ARTIFACTS_S3_ENDPOINT": self.s3_endpoint,
                        "CAIRN_ARTIFACTS_S3_BUCKET": S3_BUCKET, "CAIRN_ARTIFACTS_S3_ACCESS_KEY": "test",
                        "CAIRN_ARTIFACTS_S3_SECRET_KEY": "test"})
        if name == "gateway":
            listed: dict[str, str | list[str]] = {**singles}
            for service in (*REPLICATED, "scheduler"):
                listed[service] = self.replica_urls(service)
            env["CAIRN_SERVICES"] = json.dumps(listed)
            env["CAIRN_GATEWAY_REPLICAS"] = str(len(CORE))
        return env

    # -- processes ---------------------------------------------------------------------------

    def _log(self, host: str, name: str) -> Path:
        folder = self.root / "logs" / host
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}.log"

    def _popen(self, host: str, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        netns = self.net.hosts[host].netns
        with open(self._log(host, name), "ab") as log:
            self.procs.setdefault(host, {})[name] = subprocess.Popen(
                argv, stdout=log, stderr=log, env=env, preexec_fn=lambda: enter(netns))  # noqa: PLW1509

    def start_nats(self, host: str) -> None:
        config = self.nats_dir / "nodes" / f"n{host[1]}.conf"
        self._popen(host, "nats", [nats_server_binary(), "-c", str(config)])

    def start_s3(self) -> None:
        """SeaweedFS on S3_HOST, its data under the cluster's root (kept across restarts), once
        its bucket takes a write."""
        netns = self.net.hosts[S3_HOST].netns
        s3 = SeaweedS3(self.root / "s3", S3_BUCKET, ip=self.ip(S3_HOST), ports=S3_PORTS,
                       preexec_fn=lambda: enter(netns)).start(timeout=DEADLINE_S)
        assert s3.proc is not None and s3.endpoint == self.s3_endpoint
        self.procs.setdefault(S3_HOST, {})["s3"] = s3.proc

    def start_site(self) -> None:
        self._popen(SITE, "nats", [nats_server_binary(), "-c", str(self.nats_dir / "leaf" / "lab.conf")])

    def start_service(self, host: str, name: str) -> None:
        env = self._service_env(host, name)
        log = self._log(host, name)
        if self.forked:
            self.procs.setdefault(host, {})[name] = Forked(self.net.hosts[host].netns, name, env, log)
        else:
            self._popen(host, name, [sys.executable, "-m", f"cairn.services.{name}"], env)

    def start_host(self, host: str, *, gateway: bool = True) -> None:
        self.start_nats(host)
        if host == S3_HOST and "s3" not in self.procs.get(S3_HOST, {}):
            self.start_s3()
        for name in self.services_of(host):
            if name != "gateway" or gateway:
                self.start_service(host, name)

    def start(self) -> None:
        """Every host; the first gateway makes the site-admin token before the others start (two
        first gateways at once could both make one)."""
        for host in CORE:
            self.start_nats(host)
        if "s3" not in self.procs.get(S3_HOST, {}):
            self.start_s3()
        asyncio.run(self.wait_jetstream())
        for host in CORE:
            for name in self.services_of(host):
                if name != "gateway" or host == CORE[0]:
                    self.start_service(host, name)
        token_file = self.data_dir / "admin.token"
        self.wait(lambda: token_file.exists(), "the first gateway writes the admin token", check_alive=True)
        self.token = token_file.read_text().strip()
        for host in CORE[1:]:  # one at a time: every gateway binds the webhook dispatcher's one durable
            self.start_service(host, "gateway")  # consumer, deleting it first (docs/cluster.md, Failure tests)
            self.wait(lambda h=host: self.ready(self.url(h, "gateway")), f"the gateway on {host} is healthy",
                      check_alive=True)
        if "nats" not in self.procs.get(SITE, {}):
            self.start_site()
        self.wait_ready()

    def start_agent(self, queue: str) -> None:
        """``cairn agent`` at the site: NATS through the site's leaf server only, HTTP to h1's
        gateway (to register and report, as any client does)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env["CAIRN_LOG_LEVEL"] = "warning"
        argv = [sys.executable, "-m", "cairn.cli.main", "--url", self.url(SINGLETON_HOST, "gateway"), "agent",
                "--queue", queue, "--cpus", "2", "--memory", "2Gi", "--gpus", "0", "--name", "lab-agent",
                "--work-dir", str(self.root / "agent"), "--token", self.token, "--grace", "2",
                "--nats-url", f"nats://127.0.0.1:{SITE_PORT}"]
        self._popen(SITE, "agent", argv, env)
        log = self._log(SITE, "agent")
        self.wait(lambda: "ready" in log.read_text(errors="replace"), "the site's agent is ready", check_alive=True)

    def kill(self, host: str, name: str) -> None:
        kill_group(self.procs[host].pop(name))

    def kill_host(self, host: str) -> None:
        for proc in self.procs.pop(host, {}).values():
            kill_group(proc)

    def kill_cluster(self) -> None:
        """SIGKILL every process of the cluster: the core hosts' and the site's nats-server (the
        site's agent is a worker machine, a client: it stays and reconnects)."""
        for host in CORE:
            self.kill_host(host)
        kill_group(self.procs[SITE].pop("nats"))

    def kill_all(self) -> None:
        for host in list(self.procs):
            self.kill_host(host)

    def stop(self) -> None:
        """SIGKILL every process at once: the data is thrown away. (A SIGTERM first cost every
        run 10 s: the agent asked the dying cluster for a goodbye it could not answer, then the
        processes' grace deadline ran out.)"""
        self.kill_all()

    # -- NATS ------------------------------------------------------------------------------

    async def admin(self) -> NATS:
        """An admin connection to the cluster (any node; over TLS with the cluster's CA)."""
        env = self.env("admin")
        return await connect(env["CAIRN_NATS_URL"], name="test-admin", timeout=5,
                             credentials=NatsCredentials.read(Path(env["CAIRN_NATS_CREDS"])),
                             tls=client_tls_context({NATS_TLS_CA_ENV: env[NATS_TLS_CA_ENV]}))

    async def wait_jetstream(self) -> None:
        """Until the nodes have a meta leader and know each other: a 3-replica stream can be placed
        (the services' first act is to make theirs, and they exit when it cannot be)."""
        deadline = time.monotonic() + DEADLINE_S
        nc = await self.admin()
        try:
            js = nc.jetstream(timeout=2)
            while True:
                try:
                    await js.add_stream(StreamConfig(name="FT_PROBE", subjects=["ft.probe"], num_replicas=3))
                    await js.delete_stream("FT_PROBE")
                    return
                except (nats_errors.Error, asyncio.TimeoutError) as err:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"JetStream cluster not ready: {err}; logs in {self.root / 'logs'}") from err
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    # -- waiting -----------------------------------------------------------------------------

    def revive(self, what: str) -> None:
        """Start again a service that exited while starting, at most four times each: on a machine
        loaded by other work a JetStream request at start can time out (the service exits, as
        under systemd, which would restart it too). Anything else that exited is an error."""
        for name in self.exited():
            host, process = name.split("/")
            self.restarts[name] = self.restarts.get(name, 0) + 1
            if process in ("nats", "agent", "s3") or self.restarts[name] > 4:
                raise RuntimeError(f"{name} exited while waiting for {what}; logs in {self.root / 'logs'}")
            print(f"{name} exited at start; starting it again")
            self.start_service(host, process)

    def exited(self) -> list[str]:
        return [f"{host}/{name}" for host, procs in self.procs.items() for name, proc in procs.items()
                if proc.poll() is not None]

    def wait(self, check: Any, what: str, *, timeout: float = DEADLINE_S, check_alive: bool = False) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if check_alive and self.exited():
                self.revive(what)
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {timeout:.0f}s: {what}; logs in {self.root / 'logs'}")
            time.sleep(0.1)

    def ready(self, url: str) -> bool:
        try:
            return loopback.get(f"{url}/healthz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, hosts: tuple[str, ...] = CORE) -> None:
        """Every gateway of ``hosts`` healthy (its own check covers every service it routes to)
        and every replica of theirs ready."""
        for host in hosts:
            self.wait(lambda h=host: self.ready(self.url(h, "gateway")), f"the gateway on {host} is healthy",
                      check_alive=True)
            for service in REPLICATED:
                self.wait(lambda h=host, s=service: self.service_ready(h, s), f"{service} on {host} is ready",
                          check_alive=True)

    def service_ready(self, host: str, service: str) -> bool:
        try:
            answer = loopback.get(f"{self.url(host, service)}/healthz", timeout=3, headers=self.service_headers)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json().get("ready") is True
