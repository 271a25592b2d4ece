"""Driving ``cairn up`` as a subprocess in tests: start it, wait for it, read its state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import loopback

from cairn.natsserver import free_ports

CLI = [sys.executable, "-c", "from cairn.cli.main import cli; cli()"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not a running process
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def healthy(url: str) -> bool:
    try:
        return loopback.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Up:
    """A running ``cairn up``; ``url`` reaches its gateway from this machine."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    out_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "run" / "state.json").read_text())

    def output(self) -> str:
        """What it printed so far (stdout and stderr)."""
        return self.out_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 90) -> "Up":
        """Healthy through the gateway AND the supervisor past its own start: it prints "Cairn
        is up" when its health wait is over. A test that stops the supervisor or kills NATS
        before that line caught it still waiting for health, which then never came."""
        wait(lambda: (healthy(self.url) and "Cairn is up" in self.output()) or self.proc.poll() is not None,
             timeout, "cairn up to be healthy")
        assert self.proc.poll() is None, self.output()
        return self

    def wait_exit(self, timeout: float = 60) -> str:
        """Its output once it exits; one still running after ``timeout`` is killed (with its
        process group's services left to its death signal) and fails with what it printed and
        its services' log tails, so that a hang says where it hung."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            logs = "".join(f"\n--- {log.name}\n" + log.read_text(errors="replace")[-2000:]
                           for log in sorted((self.data_dir / "logs").glob("*.log")))
            raise AssertionError(f"cairn up did not exit within {timeout:.0f}s; it printed:\n"
                                 f"{self.output()}{logs}") from None
        return self.output()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT, as Ctrl-C
        return self.wait_exit(30)


def start_up(data_dir: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None) -> Up:
    """``cairn up`` on free ports (gateway and NATS) unless ``args`` say otherwise; ``env`` is
    added to this process's environment for the stack only."""
    gateway_port, nats_port = free_ports(2)
    port = port or gateway_port
    argv = [*CLI, "up", "--data-dir", str(data_dir), "--port", str(port)]
    if "--nats-port" not in args:
        argv += ["--nats-port", str(nats_port)]
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    out_path = data_dir.parent / f"cairn-up-{port}.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([*argv, *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env} if env else None)
    return Up(data_dir, port, proc, out_path)


def run_up(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """``cairn up`` that is expected to stop by itself (a refusal)."""
    return subprocess.run([*CLI, "up", "--data-dir", str(data_dir), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
