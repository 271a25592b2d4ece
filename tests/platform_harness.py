"""Test harness: a real nats-server and real service processes on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import loopback
from service_fork import ServiceProcess

from cairn.kernel.identity import IDENTITY_HEADER, Caller, Signer, load_service_key
from cairn.kernel.natsauth import ADMIN_USER, AGENT_USER, NatsCredentials
from cairn.natsserver import free_ports, wait_for_tcp
from cairn.up import PROCESSES, SERVICES, nats_wiring, service_wiring, start_private_nats

# How long a stack may take to start (imports dominate): 30 s on a quiet machine; raise it with
# CAIRN_TEST_START_TIMEOUT_S on a machine shared with other heavy work.
START_TIMEOUT_S = float(os.environ.get("CAIRN_TEST_START_TIMEOUT_S", "30"))
SITE_ADMIN = Caller("admin", "test", "user", True)
# the monitor's windows in test time: 2-second windows close within a test, and a day window that
# stays open through one (what a SIGKILL mid-window must not lose); half a second of grace
MONITOR_TEST_ENV = {"CAIRN_MONITOR_WINDOWS": "2s,1d", "CAIRN_MONITOR_GRACE_S": "0.5", "CAIRN_MONITOR_TICK_S": "0.2"}


def signed_headers(data_dir: Path, caller: Caller = SITE_ADMIN, signer: str = "gateway") -> dict[str, str]:
    """The identity header the gateway would send for ``caller``, for tests that call a service
    (or a service app in-process) directly: with the service key of ``data_dir``."""
    return {IDENTITY_HEADER: Signer(load_service_key(data_dir), signer).sign(caller)}


class SignedAsGateway:
    """ASGI wrapper that stands in for the gateway in front of a bare service app: every request
    gets a site admin's signed identity (tests that drive a service with the CLI or SDK)."""

    def __init__(self, app: object, data_dir: Path) -> None:
        self.app = app
        name, value = next(iter(signed_headers(data_dir).items()))
        self.header = (name.lower().encode(), value.encode())

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "http":
            scope = {**scope, "headers": [*scope.get("headers", []), self.header]}
        await self.app(scope, receive, send)  # type: ignore[operator]


@dataclass
class Platform:
    """NATS + registry + artifacts + metrics + gateway, each its own process, data under ``root``.
    ``extra_env`` adds environment for every service (e.g. the artifact backend).

    NATS takes only Cairn's users, as under ``cairn up``: each service connects with its own
    credentials file. ``nats_url`` carries the admin user's name and password (nats-py reads them
    from the URL) for tests that read the log; ``nats_server_url`` has none."""

    root: Path
    nats_url: str = ""
    nats_server_url: str = ""
    nats_creds: dict[str, Path] = field(default_factory=dict)
    nats: subprocess.Popen[bytes] | None = None
    procs: dict[str, subprocess.Popen[bytes] | ServiceProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        """The site admin's bearer token (created by the gateway on first start)."""
        return {"Authorization": f"Bearer {self.token}"}
    extra_env: dict[str, str] = field(default_factory=dict)
    # environment for one service, over everything else (e.g. the deployments service's scheduler URL)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # services forked from a process that has imported them all (tests/service_fork.py: a stack
    # starts in a fraction of the time), under pytest; False (or CAIRN_TEST_FORK=0 for a whole
    # run): each started with exec, as ``cairn up`` does. Benchmarks and other scripts exec (a fork
    # server re-imports the script's main module, which must then guard its top level).
    forked: bool = field(default_factory=lambda: "pytest" in sys.modules
                         and os.environ.get("CAIRN_TEST_FORK", "1") != "0")
    # the artifacts service hands out direct transfer URLs of its own (as under ``cairn up`` on loopback)
    direct_artifacts: bool = False

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def service_headers(self) -> dict[str, str]:
        """A site admin's identity as the gateway signs it, for calling a service directly."""
        return signed_headers(self.data_dir)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def start(self) -> "Platform":
        """Start NATS and every service; a start that fails part-way stops what it started (an
        interrupted or failed start leaves no orphan processes behind)."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "Platform":
        self.root.mkdir(parents=True, exist_ok=True)
        self.nats, self.nats_server_url, self.nats_creds = start_private_nats(
            self.root / "nats", self.data_dir / "secrets" / "nats")
        admin = NatsCredentials.read(self.nats_creds[ADMIN_USER])
        self.nats_url = self.nats_server_url.replace("nats://", f"nats://{admin.user}:{admin.password}@", 1)
        for attempt in range(3):
            exited = self._start_services()
            if not exited:
                break
            # A free port picked for a service can be taken by another process before the service
            # binds it (other stacks start on this machine too): every service again, on new ports.
            taken = [name for name in exited if "address already in use" in self._log_tail(name)]
            if len(taken) < len(exited) or attempt == 2:
                raise RuntimeError(f"services exited at start: {exited}; logs in {self.root}")
            for name in list(self.procs):
                self.kill(name)
        token_file = self.data_dir / "admin.token"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.token = token_file.read_text().strip()
        return self

    def _start_services(self) -> list[str]:
        """Every service and the gateway on fresh free ports; the names of those that exited."""
        names = (*SERVICES, "gateway")
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        for name in names:  # all at once: their start-up (mostly imports) overlaps
            self.start_service(name, wait=False)
        for name in names:
            wait_for_tcp("127.0.0.1", self.ports[name], timeout=START_TIMEOUT_S)
        self.wait_healthy()
        # e.g. its port was taken: something else answered the TCP check
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def _log_tail(self, name: str) -> str:
        log = self.root / f"{name}.log"
        return log.read_text(errors="replace")[-4000:] if log.exists() else ""

    def _env(self, name: str) -> dict[str, str]:
        env = {**os.environ, "CAIRN_NATS_URL": self.nats_server_url, "CAIRN_DATA_DIR": str(self.data_dir),
               "CAIRN_PORT": str(self.ports[name]), "CAIRN_HOST": "127.0.0.1", "CAIRN_LOG_LEVEL": "warning",
               "CAIRN_RATE_LIMIT": "0", "CAIRN_WEBHOOKS_ALLOW_PRIVATE": "true", "CAIRN_WEBHOOK_BACKOFF_S": "0.05",
               "CAIRN_WEBHOOK_ATTEMPTS": "4", **MONITOR_TEST_ENV, **self.env, **self.extra_env}
        wiring = service_wiring({service: self.service_url(service) for service in SERVICES},
                                direct_artifacts=self.direct_artifacts)
        env.update(wiring.get(name, {}))
        env.update(nats_wiring({process: self.nats_creds[process] for process in PROCESSES},
                               self.nats_creds[AGENT_USER]).get(name, {}))
        env.update(self.service_env.get(name, {}))
        return env

    def start_service(self, name: str, *, wait: bool = True) -> None:
        if self.forked:
            self.procs[name] = ServiceProcess(name, self._env(name), self.root / f"{name}.log")
        else:
            log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
            self.procs[name] = subprocess.Popen([sys.executable, "-m", f"cairn.services.{name}"],
                                                env=self._env(name), stdout=log, stderr=log)
            log.close()
        if wait:
            wait_for_tcp("127.0.0.1", self.ports[name], timeout=START_TIMEOUT_S)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start_service(name)

    def wait_healthy(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or START_TIMEOUT_S)
        while time.monotonic() < deadline:
            try:
                if loopback.get(f"{self.gateway}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"platform not healthy; logs in {self.root}")

    def stop(self) -> None:
        """Stop whatever is running; safe after a partial start and when called twice."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGUSR1)  # its threads' and its asyncio tasks' stacks into its
                proc.send_signal(signal.SIGUSR2)  # log, then the kill
                time.sleep(0.5)
                proc.kill()
                warnings.warn(f"{name} did not stop within 10 s of SIGTERM; its threads' and tasks' stacks are at the "
                              f"end of {self.root / f'{name}.log'}", stacklevel=2)
        if self.nats is not None and self.nats.poll() is None:
            self.nats.terminate()
            try:
                self.nats.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nats.kill()
                self.nats.wait()


@contextmanager
def running(plat: Platform) -> Iterator[Platform]:
    """``plat`` started, and stopped on the way out however the block ends (a fixture's
    ``with running(Platform(...)) as plat: yield plat`` leaves no processes behind)."""
    try:
        yield plat.start()
    finally:
        plat.stop()


def stream_last_seq(plat: Platform) -> int:
    return int(loopback.get(f"{plat.gateway}/api/v1/status", headers=plat.headers,
                         timeout=10).json()["event_log"]["last_seq"])


def read_all_events(nats_url: str) -> list[dict]:
    """Every event in the events-of-record stream, as envelopes (with sequence)."""
    import asyncio

    from cairn.kernel.envelope import Event
    from cairn.kernel.eventlog import EventLog

    async def collect() -> list[dict]:
        log = await EventLog.open(nats_url, name="test-reader")
        last = await log.last_sequence()
        out: list[dict] = []
        if last:
            sub = await log.js.subscribe("cairn.evt.>", ordered_consumer=True, stream=log.stream)
            while len(out) < last:
                msg = await sub.next_msg(timeout=10)
                out.append(Event.from_message(msg.data, msg.metadata.sequence.stream, msg.headers).to_dict())
                if msg.metadata.sequence.stream >= last:
                    break
            await sub.unsubscribe()
        await log.close()
        return out

    return asyncio.run(collect())


def registry_applied_seq(plat: Platform) -> int:
    status = loopback.get(f"{plat.gateway}/api/v1/status", headers=plat.headers, timeout=10).json()
    return int(status["services"]["registry"].get("applied_seq") or 0)


def wait_metric_summaries(plat: Platform, project: str, counts: dict[str, dict[str, int]],
                          timeout: float = 30.0) -> int:
    """Until ``metric.summarized`` events of ``project`` announce at least ``counts`` points
    (``{run_id: {key: points}}``) and the registry has applied them, so that a run search on
    metrics sees them; returns the sequence of the event that completed them. Waits on the events
    and the registry's applied position, with a deadline; never a fixed sleep."""
    import asyncio

    import nats

    async def announced() -> int:
        nc = await nats.connect(plat.nats_url)
        seen: dict[tuple[str, str], int] = {}
        try:
            sub = await nc.jetstream().subscribe(f"cairn.evt.{project}.metrics.{project}", ordered_consumer=True)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"metric.summarized never announced {counts} in {project} (saw {seen})")
                try:
                    msg = await sub.next_msg(timeout=min(left, 1.0))
                except nats.errors.TimeoutError:
                    continue
                for row in json.loads(msg.data)["data"]["summaries"]:
                    key = (row["run_id"], row["key"])
                    seen[key] = max(seen.get(key, 0), row["count"])
                if all(seen.get((run, key), 0) >= n for run, keys in counts.items() for key, n in keys.items()):
                    return int(msg.metadata.sequence.stream)
        finally:
            await nc.close()

    target = asyncio.run(announced())
    deadline = time.monotonic() + timeout
    while registry_applied_seq(plat) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the registry did not apply metric.summarized at {target}")
        time.sleep(0.05)
    return target


def wait_metrics_settled(plat: Platform, timeout: float = 30.0) -> None:
    """Until the metrics service has written every point it acknowledged and announced every
    summary (``tail_points`` 0, ``announcing`` false), so that nothing it does afterwards appends
    to the event log: what a shared platform needs between modules (tests/conftest.py)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = loopback.get(f"{plat.service_url('metrics')}/healthz", timeout=10).json()
            if not health["tail_points"] and health.get("announcing") is False:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the metrics service did not write and announce what it was sent")
        time.sleep(0.05)
