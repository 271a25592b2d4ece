"""``cairn up``: the whole platform on one machine, supervised.

Starts a NATS server (unless one is given), every service as its own process, then the gateway;
restarts whatever crashes; stops everything on Ctrl-C or SIGTERM. Writes ``run/state.json`` under
the data dir (URLs and pids) for ``cairn status`` and for tests.

It never shares: a second ``cairn up`` on the same data dir stops at once (``run/supervisor.lock``,
an flock held for the supervisor's life, names the first one's pid), a NATS or gateway port in use
is an error before anything starts, and a nats-server that cannot come back on its port stops the
platform instead of letting the services attach to whatever holds the port now. NATS and the
services listen on 127.0.0.1 only; ``--host`` moves the gateway alone.
"""

from __future__ import annotations

import ctypes
import fcntl
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

from cairn.kernel.errors import ConfigurationError
from cairn.kernel.natsauth import ADMIN_USER, AGENT_USER, NatsCredentials, ensure_credentials
from cairn.kernel.subscriber_sync import USERS_FILE, local_argv
from cairn.natsserver import free_ports, listening, port_in_use, start_nats_server

SERVICES = ("registry", "artifacts", "metrics", "scheduler", "lineage", "deployments", "monitor", "pipelines")
PROCESSES = (*SERVICES, "gateway")  # each connects to NATS as a user of its own
NATS_USERS = (*PROCESSES, AGENT_USER, ADMIN_USER)
LOOPBACK = "127.0.0.1"
# Services that ``--service-replicas N`` starts N of (docs/cluster.md "Service replicas and
# read-your-writes"): each replica projects the log into a read model of its own, answers reads,
# and runs commands that the event log keeps safe (expected sequences, idempotency keys); loops
# that must run once run on the holder of their lease (cairn.kernel.leader). Artifacts replicas
# share the blobs (one folder on one machine, or the S3 bucket) and collect garbage under the
# ``artifacts.gc`` lease. Metrics replicas each write every point into a Parquet folder of their own
# (a durable each on the metrics stream, all of them listed in CAIRN_WRITER_REPLICAS) and announce
# summaries under the ``metrics.announce`` lease.
REPLICABLE = ("registry", "lineage", "scheduler", "artifacts", "deployments", "monitor", "pipelines", "metrics")


def service_wiring(services: dict[str, str], *, direct_artifacts: bool = False) -> dict[str, dict[str, str]]:
    """Extra environment per service: the URLs of the other services it calls over HTTP.

    ``services`` maps every name in SERVICES to its URL. ``cairn up`` and the test harness both use
    this, so a new service is wired in one place. ``direct_artifacts``: clients reach the artifacts
    service at its URL, so it hands out direct transfer URLs (services/artifacts/direct.py).
    """
    direct = {"artifacts": {"CAIRN_ARTIFACTS_DIRECT_URL": services["artifacts"]}} if direct_artifacts else {}
    return {**direct,"scheduler": {"CAIRN_METRICS_URL": services["metrics"]},
            "deployments": {"CAIRN_SCHEDULER_URL": services["scheduler"]},
            "monitor": {"CAIRN_DEPLOYMENTS_URL": services["deployments"],
                        "CAIRN_ARTIFACTS_URL": services["artifacts"]},
            "pipelines": {f"CAIRN_{name.upper()}_URL": services[name]
                          for name in ("scheduler", "registry", "artifacts", "metrics", "deployments", "monitor")},
            "gateway": {"CAIRN_SERVICES": json.dumps(services)}}


def metrics_writers(replicas: int) -> dict[str, str]:
    """The metrics replicas' CAIRN_WRITER_REPLICAS for ``replicas`` of each service (the unnamed
    one is ``main``, then ``r2``, ``r3``...): every replica makes all their durables up front."""
    names = ["main", *(f"r{n}" for n in range(2, replicas + 1))]
    return {"CAIRN_WRITER_REPLICAS": ",".join(names)} if replicas > 1 else {}


def gateway_services(services: dict[str, str], replicas: list["Child"]) -> dict[str, str | list[str]]:
    """The gateway's CAIRN_SERVICES: each service's URL, or the list of its replicas' URLs (the
    first replica first; other services keep calling that one at its single URL)."""
    listed: dict[str, str | list[str]] = {**services}
    for child in replicas:
        name = child.name.rsplit("-", 1)[0]
        if child.url:
            current = listed[name]
            listed[name] = [*([current] if isinstance(current, str) else current), child.url]
    return listed


def nats_wiring(own: dict[str, Path | None], agents: Path | None) -> dict[str, dict[str, str]]:
    """Extra environment per process for NATS: the file with its own credentials (a path, never
    the password), and for the scheduler the file with the agents' credentials, which it hands to
    each agent that registers."""
    wiring = {name: {"CAIRN_NATS_CREDS": str(path)} if path else {} for name, path in own.items()}
    if agents is not None:
        wiring.setdefault("scheduler", {})["CAIRN_SCHEDULER_AGENT_NATS_CREDS"] = str(agents)
    return wiring


def start_private_nats(nats_dir: Path, secrets_dir: Path, port: int | None = None, *,
                       log_file: Path | None = None,
                       **popen: Any) -> tuple[subprocess.Popen[bytes], str, dict[str, Path]]:
    """A nats-server on loopback that takes only Cairn's users (credentials made once under
    ``secrets_dir``, kept after that); returns it, its URL and each user's credentials file."""
    files = ensure_credentials(secrets_dir, NATS_USERS)
    proc, url = start_nats_server(nats_dir, port, LOOPBACK, log_file,
                                  users=[NatsCredentials.read(path) for path in files.values()],
                                  auth_file=nats_dir / USERS_FILE, **popen)  # outside subscribers: docs/cluster.md
    return proc, url, files


def hold_data_dir(data_dir: Path) -> int:
    """Lock the data dir for this process's life (the kernel drops an flock when its holder dies,
    so a crash leaves nothing to clean up); another holder is an error naming its pid."""
    path = data_dir / "run" / "supervisor.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigurationError(f"another cairn up (pid {holder}) is running on the data dir {data_dir}; "
                                 "stop it first, or give this one another --data-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _reachable(host: str) -> str:
    """An address to reach a server listening on ``host`` from this machine."""
    if host in ("", "0.0.0.0"):
        return LOOPBACK
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Children get SIGTERM if the supervisor dies, so nothing is left running."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff: float = 0.5
    started_at: float = 0.0
    next_start: float = 0.0
    log_path: Path | None = None

    def start(self) -> None:
        assert self.log_path is not None
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        self.started_at = time.monotonic()


@dataclass
class Supervisor:
    """``nats_port``: the port for the NATS server we start (0: a free one, chosen and printed);
    ``nats_url``: an existing NATS instead, with ``nats_creds`` (the services' and gateway's user)
    and ``nats_agent_creds`` (the agents' user), files like the ones we make."""

    data_dir: Path
    port: int = 8080
    host: str = LOOPBACK
    nats_url: str | None = None
    nats_port: int = 4222
    nats_creds: Path | None = None
    nats_agent_creds: Path | None = None
    quiet: bool = False
    service_replicas: int = 1  # of each REPLICABLE service (CAIRN_SERVICE_REPLICAS)
    # how long a nats-server that exited is started again on its port before the platform stops
    # (the port may be an outgoing connection's for a moment): CAIRN_NATS_RESTART_GRACE_S
    nats_restart_grace_s: float = field(default_factory=lambda: float(os.environ.get("CAIRN_NATS_RESTART_GRACE_S", "5")))
    children: list[Child] = field(default_factory=list)
    nats: subprocess.Popen[bytes] | None = None
    stopping: bool = False
    lock_fd: int | None = None

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    @property
    def state_path(self) -> Path:
        return self.data_dir / "run" / "state.json"

    @property
    def gateway_url(self) -> str:
        """Where the gateway answers from this machine (``--host 0.0.0.0`` included)."""
        return f"http://{_reachable(self.host)}:{self.port}"

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "gateway_url": self.gateway_url,
            "gateway_listen": f"{self.host}:{self.port}",
            "nats_url": self.nats_url,
            "nats_pid": self.nats.pid if self.nats else None,
            "services": {c.name: {"url": c.url, "pid": c.proc.pid if c.proc else None,
                                  "restarts": c.restarts} for c in self.children if c.url is not None},
            # processes that serve no HTTP (the outside subscribers' users-file sync)
            "helpers": {c.name: {"pid": c.proc.pid if c.proc else None, "restarts": c.restarts}
                        for c in self.children if c.url is None},
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_path)

    def claim(self) -> None:
        """Everything that can refuse to start, before anything starts: the data dir's lock, the
        gateway's port, the NATS port (or the given NATS's credentials files)."""
        (self.data_dir / "run").mkdir(parents=True, exist_ok=True)
        self.lock_fd = hold_data_dir(self.data_dir)
        if self.port == 0:  # a free one, chosen now and printed with the URL
            self.port = free_ports(1, "127.0.0.1" if self.host == "0.0.0.0" else self.host)[0]
        if port_in_use(self.host, self.port):
            raise ConfigurationError(f"the gateway port {self.host}:{self.port} is in use by another process; "
                                     "stop it or choose another --port")
        if self.nats_url is None:
            if self.nats_port and port_in_use(LOOPBACK, self.nats_port):
                raise ConfigurationError(
                    f"the NATS port {LOOPBACK}:{self.nats_port} is in use by another process (another Cairn, "
                    "or a NATS server); stop it, choose another --nats-port, or --nats-port 0 for a free one")
            return
        if "@" in self.nats_url:
            raise ConfigurationError("--nats-url must not carry a user or password (it would be visible in every "
                                     "process's environment); put them in a file for --nats-creds")
        for path in (self.nats_creds, self.nats_agent_creds):
            if path is not None:
                NatsCredentials.read(path)  # unreadable or too open: say so now, not in a service's log

    def start(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.nats_url is None:
            files = self._start_nats(self.nats_port or None)
            assert self.nats_url is not None  # _start_nats set it
            self.nats_port = int(self.nats_url.rsplit(":", 1)[1])
            self.say(f"nats: {self.nats_url} (JetStream store in {self.data_dir / 'nats'}; "
                     f"credentials in {self.data_dir / 'secrets' / 'nats'})")
            wiring = nats_wiring({name: files[name] for name in PROCESSES}, files[AGENT_USER])
        else:
            if self.nats_creds is None:
                self.say(f"nats: {self.nats_url} without credentials (--nats-creds gives them)")
            wiring = nats_wiring({name: self.nats_creds for name in PROCESSES}, self.nats_agent_creds)
        assert self.nats_url is not None
        env = {**os.environ, "CAIRN_NATS_URL": self.nats_url, "CAIRN_DATA_DIR": str(self.data_dir),
               "PYTHONUNBUFFERED": "1"}
        for name in ("CAIRN_NATS_CREDS", "CAIRN_SCHEDULER_AGENT_NATS_CREDS"):
            env.pop(name, None)  # each process gets its own below, not whatever this shell had
        for attempt in range(3):
            try:
                self._start_children(env, wiring)
                break
            except PortTaken as taken:
                # A free port picked for a service can be taken by another process before the
                # service binds it (other stacks may start on this machine at the same moment).
                if attempt == 2:
                    raise RuntimeError(f"{taken.name} could not bind a port three times; see the logs in "
                                       f"{self.data_dir / 'logs'}") from None
                self.say(f"{taken.name} lost its port to another process: starting the services again on new ports")
                self._stop_children()
        self.say(f"Cairn is up: http://{self.host}:{self.port}  (data: {self.data_dir}; Ctrl-C stops)")
        token_file = self.data_dir / "admin.token"
        if token_file.exists():
            self.say(f"site-admin token: {token_file} (readable only by you; the CLI and SDK use it)")

    def _start_children(self, env: dict[str, str], base_wiring: dict[str, dict[str, str]]) -> None:
        """Every service on fresh free loopback ports, and the gateway; raises PortTaken when a
        service's port went to another process before it could bind it."""
        wiring = {name: dict(extra) for name, extra in base_wiring.items()}
        services = {name: f"http://{LOOPBACK}:{port}"
                    for name, port in zip(SERVICES, free_ports(len(SERVICES), LOOPBACK), strict=True)}
        # a gateway on loopback has every client on this machine, and they reach the artifacts
        # service too: blob bytes skip the gateway (services/artifacts/direct.py)
        direct = self.host in (LOOPBACK, "localhost", "::1") and "CAIRN_ARTIFACTS_DIRECT_URL" not in env
        for name, extra in service_wiring(services, direct_artifacts=direct).items():
            wiring.setdefault(name, {}).update(extra)
        wiring.setdefault("metrics", {}).update(metrics_writers(self.service_replicas))
        for name in SERVICES:
            url = services[name]
            port = int(url.rsplit(":", 1)[1])
            self.children.append(Child(name, [sys.executable, "-m", f"cairn.services.{name}"],
                                       {**env, **wiring.get(name, {}), "CAIRN_HOST": LOOPBACK,
                                        "CAIRN_PORT": str(port)}, url=url,
                                       log_path=self.data_dir / "logs" / f"{name}.log"))
        replicas = self._replica_children(env, wiring, services)
        if replicas:  # the gateway spreads requests over every replica (services/gateway/replicas.py)
            wiring["gateway"]["CAIRN_SERVICES"] = json.dumps(gateway_services(services, replicas))
        if self.nats is not None:  # the NATS we started learns outside subscribers from the log
            self.children.append(Child("subscriber-sync", local_argv(self.data_dir / "nats",
                                                                     self.data_dir / "secrets" / "nats"),
                                       env, log_path=self.data_dir / "logs" / "subscriber-sync.log"))
        self.children.append(Child("gateway", [sys.executable, "-m", "cairn.services.gateway"],
                                   {**env, **wiring["gateway"], "CAIRN_HOST": self.host,
                                    "CAIRN_PORT": str(self.port)},
                                   url=self.gateway_url, log_path=self.data_dir / "logs" / "gateway.log"))
        for child in self.children:  # all at once: their start-up (mostly imports) overlaps
            child.start()
        self.write_state()
        self._wait_listening()
        self._wait_healthy(children=True)

    def _wait_listening(self, timeout: float = 60.0) -> None:
        """Until every child with a URL listens. One that exits meanwhile is started again with
        the supervisor's backoff, within the same deadline: a start can fail for a moment that
        passes (on a fresh NATS cluster a bucket a service needs may still be electing its
        leader), and the whole platform used to give up after waiting 60 s for that one port.
        A child that exited because its port was taken raises PortTaken (all start again on
        other ports)."""
        deadline = time.monotonic() + timeout
        waiting = []  # (child, host, port)
        for child in self.children:
            if child.url:
                host, port_text = child.url.removeprefix("http://").rsplit(":", 1)
                waiting.append((child, host.strip("[]"), int(port_text)))
        while waiting:
            taken = self._port_taken()
            if taken is not None:
                raise PortTaken(taken)
            now = time.monotonic()
            left = []
            for child, host, port in waiting:
                if child.proc is not None and child.proc.poll() is not None:
                    self._revive(child, now)
                    left.append((child, host, port))
                elif not listening(host, port):
                    left.append((child, host, port))
            waiting = left
            if waiting and now > deadline:
                raise TimeoutError(f"nothing listens for {', '.join(c.name for c, _, _ in waiting)} after "
                                   f"{timeout:.0f}s; see their logs in {self.data_dir / 'logs'}")
            if waiting:
                time.sleep(0.05)

    def _replica_children(self, env: dict[str, str], wiring: dict[str, dict[str, str]],
                          services: dict[str, str]) -> list[Child]:
        """Replicas 2..N of each REPLICABLE service, added to the children: the first keeps the
        unnamed replica's read model and consumer (a data dir from before replicas goes on as it
        was), the others are named ``r2``, ``r3``... with read models of their own."""
        extra = [(name, number) for name in REPLICABLE for number in range(2, self.service_replicas + 1)]
        added: list[Child] = []
        for (name, number), port in zip(extra, free_ports(len(extra), LOOPBACK) if extra else [], strict=True):
            url = f"http://{LOOPBACK}:{port}"
            own = dict(wiring.get(name, {}))
            if "CAIRN_ARTIFACTS_DIRECT_URL" in own:  # direct transfers to this replica itself
                own["CAIRN_ARTIFACTS_DIRECT_URL"] = url
            added.append(Child(f"{name}-{number}", [sys.executable, "-m", f"cairn.services.{name}"],
                               {**env, **own, "CAIRN_HOST": LOOPBACK, "CAIRN_PORT": str(port),
                                "CAIRN_REPLICA": f"r{number}"}, url=url,
                               log_path=self.data_dir / "logs" / f"{name}-{number}.log"))
        self.children.extend(added)
        return added

    def _stop_children(self) -> None:
        procs = [c.proc for c in self.children if c.proc and c.proc.poll() is None]
        for proc in procs:
            proc.kill()
        _wait_all(procs, 10.0)
        self.children = []

    def _port_taken(self) -> str | None:
        """The name of a child that exited because its port was in use, if any."""
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None and child.log_path is not None:
                tail = child.log_path.read_text(errors="replace")[-4000:] if child.log_path.exists() else ""
                if "address already in use" in tail:
                    return child.name
        return None

    def _start_nats(self, port: int | None) -> dict[str, Path]:
        self.nats, self.nats_url, files = start_private_nats(
            self.data_dir / "nats", self.data_dir / "secrets" / "nats", port,
            log_file=self.data_dir / "logs" / "nats.log", preexec_fn=_die_with_parent)
        return files

    def _wait_healthy(self, timeout: float = 60.0, children: bool = False) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:  # one client: each new one loads a CA bundle (~20 ms)
            while time.monotonic() < deadline:
                taken = self._port_taken() if children else None
                if taken is not None:
                    raise PortTaken(taken)
                try:
                    if client.get(f"{self.gateway_url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError("the platform did not become healthy; see the logs in "
                           f"{self.data_dir / 'logs'}")

    def supervise(self) -> None:
        """Restart children that exit, with backoff, until asked to stop."""
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                proc = child.proc
                if proc is None or proc.poll() is None:
                    if proc is not None and now - child.started_at > 60:
                        child.backoff = 0.5
                    continue
                self._revive(child, now)
            if self.nats is not None and self.nats.poll() is not None and not self.stopping:
                self._restart_nats()
            time.sleep(0.2)

    def _revive(self, child: Child, now: float) -> None:
        """For a child that exited: the first call says so and schedules its start after the
        backoff, a call after that time starts it (and doubles the backoff, up to 30 s)."""
        assert child.proc is not None
        if child.next_start == 0.0:
            self.say(f"{child.name} exited with {child.proc.returncode}; restarting in {child.backoff:.1f}s")
            child.next_start = now + child.backoff
        elif now >= child.next_start:
            child.restarts += 1
            child.backoff = min(child.backoff * 2, 30.0)
            child.next_start = 0.0
            child.start()
            self.write_state()

    def _restart_nats(self) -> None:
        """Bring nats-server back on its port, or stop: on any other port the services would not
        find it, and whatever holds the port now is not ours. A port in the ephemeral range may
        be some outgoing connection's local port for a moment, hence a few tries first."""
        assert self.nats is not None
        self.say(f"nats-server exited with {self.nats.returncode}; restarting it on port {self.nats_port}")
        deadline = time.monotonic() + self.nats_restart_grace_s
        while True:
            try:
                self._start_nats(self.nats_port)
                break
            except ConfigurationError as err:
                if time.monotonic() < deadline and not self.stopping:
                    time.sleep(0.5)
                    continue
                raise ConfigurationError(
                    f"nats-server could not come back on port {self.nats_port}, so the platform stops "
                    f"(its services must not attach to another server): {err.message}") from None
        self.write_state()

    def stop(self) -> None:
        self.stopping = True
        procs = [c.proc for c in reversed(self.children) if c.proc and c.proc.poll() is None]
        for proc in procs:
            proc.terminate()
        _wait_all(procs, 10.0)
        if self.nats is not None and self.nats.poll() is None:
            self.nats.terminate()
            _wait_all([self.nats], 10.0)
        try:
            self.state_path.unlink()
        except FileNotFoundError:
            pass
        self.say("Cairn stopped")


class PortTaken(Exception):
    """A service exited at start because another process had taken its port."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _wait_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(data_dir: Path, port: int, host: str, nats_url: str | None, nats_port: int,
        nats_creds: Path | None = None, nats_agent_creds: Path | None = None, service_replicas: int = 1) -> None:
    """Run the platform until SIGTERM/SIGINT. A ConfigurationError before anything started (the
    data dir in use, a port taken) leaves everything as it was, the other instance's files too."""
    supervisor = Supervisor(data_dir=data_dir, port=port, host=host, nats_url=nats_url, nats_port=nats_port,
                            nats_creds=nats_creds, nats_agent_creds=nats_agent_creds,
                            service_replicas=service_replicas)
    supervisor.claim()

    def request_stop(*_: Any) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        supervisor.start()
        supervisor.supervise()
    finally:
        supervisor.stop()
