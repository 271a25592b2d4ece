"""A Cairn stack for the cluster benchmark: a 3-node NATS cluster made as an operator makes it
(``cairn cluster certs`` + ``cairn cluster config``: TLS, Cairn's users) and ``cairn up`` over it
or over its own nats-server; every process on loopback, on free ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.natsserver import free_ports, start_configured_server

NODES = ("n1", "n2", "n3")
START_TIMEOUT_S = float(os.environ.get("CAIRN_TEST_START_TIMEOUT_S", "180"))


def cli(*args: str) -> dict[str, Any]:
    """``cairn --json ARGS`` as an operator runs it."""
    out = subprocess.run([sys.executable, "-m", "cairn.cli.main", "--json", *args], check=True,
                         capture_output=True, text=True)
    return dict(json.loads(out.stdout))


@dataclass
class NatsCluster:
    """Three nats-servers from ``cairn cluster config`` (TLS, Cairn's users), on free ports."""

    root: Path
    configs: dict[str, Path] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def make(self) -> "NatsCluster":
        ports = free_ports(3 * len(NODES))
        cli("cluster", "certs", "--out", str(self.root / "tls"), "--name", "bench",
            *(f"--host={n}=127.0.0.1" for n in NODES))
        nodes = [f"--node={n}=127.0.0.1:{ports[3 * i]}:{ports[3 * i + 1]}:{ports[3 * i + 2]}"
                 for i, n in enumerate(NODES)]
        written = cli("cluster", "config", "--out", str(self.out), "--name", "bench",
                      "--tls-dir", str(self.root / "tls"), *nodes)
        self.configs = {name: Path(path) for name, path in written["nodes"].items()}
        self.ports = {n: ports[3 * i] for i, n in enumerate(NODES)}
        for name in NODES:
            self.start(name)
        return self

    @property
    def out(self) -> Path:
        return self.root / "nats"

    @property
    def url(self) -> str:
        return ",".join(f"tls://127.0.0.1:{port}" for port in self.ports.values())

    @property
    def ca(self) -> str:
        return str(self.root / "tls" / "ca.pem")

    def creds(self, role: str) -> Path:
        return self.out / "creds" / f"{role}.json"

    def start(self, name: str) -> None:
        self.procs[name], _ = start_configured_server(self.configs[name], self.out / "store" / name,
                                                      self.root / f"{name}.log")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_cairn(data_dir: Path, args: list[str], env: dict[str, str], tries: int = 3) -> tuple[subprocess.Popen[bytes], dict]:
    """``cairn up`` with free ports and ``args``; returns it and its state.json once healthy.
    ``cairn up`` gives each process 60 s to listen: on a machine shared with other heavy work a
    stack of 15 processes can take longer, so a start that gave up is tried again."""
    for attempt in range(1, tries + 1):
        try:
            return _start_cairn(data_dir, args, env)
        except SystemExit:
            if attempt == tries:
                raise
            print(f"cairn up did not start (try {attempt} of {tries}); trying again", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def _start_cairn(data_dir: Path, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict]:
    log_path = data_dir.parent / f"{data_dir.name}-up.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cairn.cli.main", "up", "--data-dir", str(data_dir),
                                 "--port", "0", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    state_file = data_dir / "run" / "state.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cairn up exited ({proc.returncode}); see {log_path}")
        if b"Cairn is up" in log_path.read_bytes()[offset:] and state_file.exists():
            return proc, json.loads(state_file.read_text())
        time.sleep(0.2)
    stop_cairn(proc)
    raise SystemExit(f"cairn up did not become healthy in time; see {log_path}")


def stop_cairn(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
