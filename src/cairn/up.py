"""``cairn up``: the whole platform on one machine, supervised.

Starts a NATS server (unless one is given), every service as its own process, then the gateway;
restarts whatever crashes; stops everything on Ctrl-C or SIGTERM. Writes ``run/state.json`` under
the data dir (URLs and pids) for ``cairn status`` and for tests.
"""

from __future__ import annotations

import ctypes
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

from cairn.natsserver import free_ports, start_nats_server, wait_for_tcp

SERVICES = ("registry", "artifacts", "metrics", "scheduler", "lineage")


def service_wiring(services: dict[str, str]) -> dict[str, dict[str, str]]:
    """Extra environment per service: the URLs of the other services it calls over HTTP.

    ``services`` maps every name in SERVICES to its URL. ``cairn up`` and the test harness both use
    this, so a new service is wired in one place.
    """
    return {"metrics": {"CAIRN_REGISTRY_URL": services["registry"]},
            "registry": {"CAIRN_METRICS_URL": services["metrics"]},
            "scheduler": {"CAIRN_METRICS_URL": services["metrics"]},
            "gateway": {"CAIRN_SERVICES": json.dumps(services)}}
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
    data_dir: Path
    port: int = 8080
    host: str = "127.0.0.1"
    nats_url: str | None = None
    nats_port: int | None = None
    quiet: bool = False
    children: list[Child] = field(default_factory=list)
    nats: subprocess.Popen[bytes] | None = None
    stopping: bool = False

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    @property
    def state_path(self) -> Path:
        return self.data_dir / "run" / "state.json"

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "gateway_url": f"http://{self.host}:{self.port}",
            "nats_url": self.nats_url,
            "nats_pid": self.nats.pid if self.nats else None,
            "services": {c.name: {"url": c.url, "pid": c.proc.pid if c.proc else None,
                                  "restarts": c.restarts} for c in self.children},
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_path)

    def start(self) -> None:
        (self.data_dir / "run").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.nats_url is None:
            self.nats, self.nats_url = start_nats_server(
                self.data_dir / "nats", self.nats_port or 4222, log_file=self.data_dir / "logs" / "nats.log",
                preexec_fn=_die_with_parent)
            self.say(f"nats: {self.nats_url} (JetStream store in {self.data_dir / 'nats'})")
        env = {**os.environ, "CAIRN_NATS_URL": self.nats_url, "CAIRN_DATA_DIR": str(self.data_dir),
               "PYTHONUNBUFFERED": "1"}
        services = {name: f"http://{self.host}:{port}"
                    for name, port in zip(SERVICES, free_ports(len(SERVICES), self.host), strict=True)}
        wiring = service_wiring(services)
        for name in SERVICES:
            url = services[name]
            port = int(url.rsplit(":", 1)[1])
            extra = wiring.get(name, {})
            self.children.append(Child(name, [sys.executable, "-m", f"cairn.services.{name}"],
                                       {**env, **extra, "CAIRN_HOST": self.host, "CAIRN_PORT": str(port)}, url=url,
                                       log_path=self.data_dir / "logs" / f"{name}.log"))
        self.children.append(Child("gateway", [sys.executable, "-m", "cairn.services.gateway"],
                                   {**env, **wiring["gateway"], "CAIRN_HOST": self.host,
                                    "CAIRN_PORT": str(self.port)},
                                   url=f"http://{self.host}:{self.port}",
                                   log_path=self.data_dir / "logs" / "gateway.log"))
        for child in self.children:
            child.start()
            self.write_state()
            if child.url:
                host, port_text = child.url.rsplit(":", 1)
                wait_for_tcp(host.removeprefix("http://"), int(port_text), timeout=60)
        self.write_state()
        self._wait_healthy()
        self.say(f"Cairn is up: http://{self.host}:{self.port}  (data: {self.data_dir}; Ctrl-C stops)")
        token_file = self.data_dir / "admin.token"
        if token_file.exists():
            self.say(f"site-admin token: {token_file} (readable only by you; the CLI and SDK use it)")

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{self.host}:{self.port}/healthz", timeout=2).status_code == 200:
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
                if child.next_start == 0.0:
                    self.say(f"{child.name} exited with {proc.returncode}; restarting in {child.backoff:.1f}s")
                    child.next_start = now + child.backoff
                elif now >= child.next_start:
                    child.restarts += 1
                    child.backoff = min(child.backoff * 2, 30.0)
                    child.next_start = 0.0
                    child.start()
                    self.write_state()
            if self.nats is not None and self.nats.poll() is not None and not self.stopping:
                self.say("nats-server exited; restarting it")
                assert self.nats_url is not None  # set when this supervisor started the server
                self.nats, _ = start_nats_server(self.data_dir / "nats", int(self.nats_url.rsplit(":", 1)[1]),
                                                 log_file=self.data_dir / "logs" / "nats.log",
                                                 preexec_fn=_die_with_parent)
                self.write_state()
            time.sleep(0.2)

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


def _wait_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(data_dir: Path, port: int, host: str, nats_url: str | None, nats_port: int | None) -> None:
    supervisor = Supervisor(data_dir=data_dir, port=port, host=host, nats_url=nats_url, nats_port=nats_port)

    def request_stop(*_: Any) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        supervisor.start()
        supervisor.supervise()
    finally:
        supervisor.stop()


def read_state(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / "run" / "state.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
