"""Real ``cairn agent`` processes for the scheduler tests, and a polling wait."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from platform_harness import Platform

_names = itertools.count()


@dataclass
class AgentProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    agent_id: str = ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Agents:
    platform: Platform
    root: Path
    started: list[AgentProcess] = field(default_factory=list)

    def start(self, queue: str, *, cpus: float = 2, name: str | None = None, work_dir: Path | None = None,
              extra: tuple[str, ...] = ()) -> AgentProcess:
        """Start ``cairn agent`` as a subprocess and wait until the scheduler lists it as live."""
        name = name or f"agent-{next(_names)}"
        log = self.root / f"{name}.log"
        argv = [sys.executable, "-m", "cairn.cli.main", "--url", self.platform.gateway, "agent", "--queue", queue,
                "--cpus", str(cpus), "--memory", "4Gi", "--gpus", "0", "--name", name,
                "--work-dir", str(work_dir or self.root / name), "--token", self.platform.token,
                "--grace", "2", "--system-metrics-interval", "0.5", *extra]
        env = {**os.environ, "CAIRN_LOG_LEVEL": "warning"}
        env.pop("CAIRN_TOKEN", None)
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, start_new_session=True)
        agent = AgentProcess(name, proc, log)
        self.started.append(agent)
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.platform.gateway, headers=self.platform.headers, timeout=10) as http:
            while time.monotonic() < deadline:
                assert proc.poll() is None, f"agent {name} exited: {log.read_text()[-3000:]}"
                listed = http.get("/api/v1/scheduler/agents").json()["agents"]
                mine = [a for a in listed if a["name"] == name and a["live"]]
                if mine and "ready" in log.read_text():
                    agent.agent_id = mine[0]["id"]
                    return agent
                time.sleep(0.1)
        raise TimeoutError(f"agent {name} did not register: {log.read_text()[-3000:]}")

    def stop_all(self) -> None:
        for agent in self.started:
            agent.stop()


def wait_until(check: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
