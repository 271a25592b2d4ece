"""A tiny process supervisor for systemd unit files, for machines without systemd.

The Terraform ``hosts`` module (infra/terraform/modules/hosts) writes one systemd unit per process
(nats-server, each service replica, gateways, agents). On real machines systemd runs them; that is
the production path. Containers and network-namespace test machines have no systemd, so the module
can run the same unit files with this instead (``service_manager = "cairn-supervise"``):

    python -m cairn.cluster.supervise apply UNIT_DIR STATE_DIR   # start, restart what changed, stop what went
    python -m cairn.cluster.supervise stop UNIT_DIR STATE_DIR    # stop everything (terraform destroy)
    python -m cairn.cluster.supervise status UNIT_DIR STATE_DIR  # JSON: each unit, its pid, alive

Each unit runs under a keeper process of its own (``keep``), in a new session so that it outlives
the SSH connection that started it; the keeper restarts its process when it exits (``RestartSec``,
doubling up to 30 s) and, on SIGTERM, stops it (SIGTERM, then SIGKILL after ``TimeoutStopSec``).
``STATE_DIR/NAME.pid`` holds the keeper's pid and a digest of the unit and its environment files,
so ``apply`` restarts exactly the units whose definition changed, one at a time, waiting for a
unit's ``X-Cairn-Ready-Url`` (a key systemd ignores) to answer 200 before the next: a rolling
restart. Only what systemd units here use is understood: ``ExecStart``, ``Environment``,
``EnvironmentFile``, ``WorkingDirectory``, ``RestartSec``, ``TimeoutStopSec``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Unit:
    """The parts of a systemd service unit that this supervisor acts on."""

    name: str
    argv: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[Path] = field(default_factory=list)
    working_directory: str | None = None
    restart_s: float = 1.0
    stop_timeout_s: float = 10.0
    ready_url: str | None = None

    @classmethod
    def read(cls, path: Path) -> "Unit":
        unit = cls(name=path.name.removesuffix(".service"), argv=[])
        for raw in path.read_text().splitlines():
            key, sep, value = raw.strip().partition("=")
            if not sep or key.startswith(("#", ";")):
                continue
            if key == "ExecStart":
                unit.argv = shlex.split(value.lstrip("-@+!"))
            elif key == "Environment":
                for pair in shlex.split(value):
                    name, _, text = pair.partition("=")
                    unit.environment[name] = text
            elif key == "EnvironmentFile":
                unit.environment_files.append(Path(value.lstrip("-")))
            elif key == "WorkingDirectory":
                unit.working_directory = value
            elif key == "RestartSec":
                unit.restart_s = float(value.rstrip("s"))
            elif key == "TimeoutStopSec":
                unit.stop_timeout_s = float(value.rstrip("s"))
            elif key == "X-Cairn-Ready-Url":
                unit.ready_url = value
        if not unit.argv:
            raise ValueError(f"{path}: no ExecStart=")
        return unit

    def env(self) -> dict[str, str]:
        """A clean environment, as systemd gives: PATH, HOME, then the files, then Environment=."""
        values = {"PATH": BASE_PATH, "HOME": os.environ.get("HOME", "/"), "LANG": "C.UTF-8"}
        for path in self.environment_files:
            values.update(read_environment_file(path))
        values.update(self.environment)
        return values


def read_environment_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments; a value may be wrapped in single or double quotes)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if not sep or name.startswith(("#", ";")):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def digest(unit_path: Path) -> str:
    """What a unit is: its file and its environment files (a changed env file restarts it too)."""
    unit = Unit.read(unit_path)
    text = unit_path.read_bytes() + b"".join(p.read_bytes() for p in unit.environment_files if p.exists())
    return hashlib.sha256(text).hexdigest()[:16]


def alive(pid: int) -> bool:
    """A process that runs (a zombie, waiting for a reaper that may never come, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(state: Path, name: str) -> tuple[int, str] | None:
    try:
        pid, unit_digest = (state / f"{name}.pid").read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid), unit_digest


def start(unit_path: Path, state: Path) -> int:
    """Start a keeper for the unit in a session of its own; returns its pid."""
    (state / "logs").mkdir(parents=True, exist_ok=True)
    keeper = subprocess.Popen([sys.executable, "-m", "cairn.cluster.supervise", "keep", str(unit_path), str(state)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, close_fds=True)
    name = unit_path.name.removesuffix(".service")
    (state / f"{name}.pid").write_text(f"{keeper.pid} {digest(unit_path)}\n")
    return keeper.pid


def stop(state: Path, name: str, timeout_s: float = 30.0) -> None:
    """SIGTERM the unit's keeper (which stops its process) and wait for it; SIGKILL the group at
    the deadline so nothing of the unit is left running."""
    found = read_pid(state, name)
    if found is not None:
        pid = found[0]
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
    (state / f"{name}.pid").unlink(missing_ok=True)


def stop_all(state: Path, names: list[str], timeout_s: float = 30.0) -> None:
    """Stop every unit at once (terraform destroy): SIGTERM to each keeper, then wait for all."""
    keepers = {name: found[0] for name in names if (found := read_pid(state, name)) and alive(found[0])}
    for pid in keepers.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in keepers.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for name in names:
        stop(state, name, timeout_s=0.0)  # SIGKILLs the group of any keeper still there


def wait_ready(url: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our own unit's URL
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer 200 within {timeout_s:.0f} s; the rolling restart stops here")


def apply(units: Path, state: Path) -> list[str]:
    """Converge: stop units that are gone, start new ones, restart changed ones one at a time."""
    state.mkdir(parents=True, exist_ok=True)
    wanted = {p.name.removesuffix(".service"): p for p in sorted(units.glob("*.service"))}
    for pid_file in sorted(state.glob("*.pid")):
        if pid_file.stem not in wanted:
            stop(state, pid_file.stem)
    changed = []
    for name, path in wanted.items():
        found = read_pid(state, name)
        if found is not None and alive(found[0]) and found[1] == digest(path):
            continue
        stop(state, name)
        start(path, state)
        changed.append(name)
        ready = Unit.read(path).ready_url
        if ready and found is not None:  # a restart: wait before touching the next (rolling)
            wait_ready(ready)
    return changed


def keep(unit_path: Path, state: Path) -> None:
    """Run the unit's process until SIGTERM, restarting it when it exits."""
    unit = Unit.read(unit_path)
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    backoff = unit.restart_s
    while not stopping:
        with open(state / "logs" / f"{unit.name}.log", "ab") as log:
            child = subprocess.Popen(unit.argv, env=unit.env(), cwd=unit.working_directory, stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL)
        started = time.monotonic()
        while child.poll() is None:
            try:
                child.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue
        if stopping:
            break
        backoff = unit.restart_s if time.monotonic() - started > 60 else min(backoff * 2, 30.0)
        deadline = time.monotonic() + backoff
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    if child is not None and child.poll() is None:
        try:
            child.wait(timeout=unit.stop_timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def status(units: Path, state: Path) -> dict[str, dict[str, object]]:
    names = {p.name.removesuffix(".service") for p in units.glob("*.service")} | {p.stem for p in state.glob("*.pid")}
    report: dict[str, dict[str, object]] = {}
    for name in sorted(names):
        found = read_pid(state, name)
        report[name] = {"pid": found[0] if found else None, "alive": bool(found and alive(found[0]))}
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("apply", "stop", "status", "keep"):
        print(__doc__, file=sys.stderr)
        return 2
    command, first, second = argv[0], Path(argv[1]), Path(argv[2])
    if command == "keep":
        keep(first, second)
    elif command == "apply":
        print(json.dumps({"restarted": apply(first, second)}))
    elif command == "stop":
        stop_all(second, sorted(status(first, second)))
    else:
        print(json.dumps(status(first, second), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
