"""cairn-supervise (cairn.cluster.supervise): systemd unit files run without systemd, as the hosts
module uses them on machines that have none. Real processes; every wait has a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cairn.cluster.supervise import alive, read_pid

SLEEPER = """import os, sys, time
with open(sys.argv[1], "a") as log:
    log.write(f"{os.getpid()} {os.environ['MARK']}\\n")
time.sleep(600)
"""


def wait_until(check: Callable[[], object], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def supervise(*args: Path | str) -> str:
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "cairn.cluster.supervise", *map(str, args)], env=env,
                          capture_output=True, text=True, check=True, timeout=60).stdout


def write_unit(units: Path, name: str, log: Path, env_file: Path) -> None:
    script = units.parent / "sleeper.py"
    script.write_text(SLEEPER)
    (units / f"{name}.service").write_text(
        "[Service]\n"
        f"EnvironmentFile={env_file}\n"
        f"Environment=\"PYTHONPATH={os.environ.get('PYTHONPATH', '')}\"\n"
        f"ExecStart={sys.executable} {script} {log}\n"
        "RestartSec=0.1\nTimeoutStopSec=5\n")


def starts(log: Path) -> list[tuple[int, str]]:
    lines = log.read_text().split("\n") if log.exists() else []
    return [(int(pid), mark) for pid, mark in (line.split() for line in lines if line)]


def test_units_start_restart_on_change_and_crash_and_stop(tmp_path: Path) -> None:
    units, state, env_file = tmp_path / "units", tmp_path / "state", tmp_path / "a.env"
    units.mkdir()
    env_file.write_text("# comment\nMARK='one'\n")
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    write_unit(units, "cairn-a", log_a, env_file)
    write_unit(units, "cairn-b", log_b, tmp_path / "b.env")
    (tmp_path / "b.env").write_text("MARK=b\n")
    try:
        supervise("apply", units, state)
        wait_until(lambda: starts(log_a) and starts(log_b))
        assert starts(log_a)[0][1] == "one"  # quotes stripped, as systemd does
        keeper_b = read_pid(state, "cairn-b")
        assert '"restarted": []' in supervise("apply", units, state)  # nothing changed: nothing restarts
        env_file.write_text("MARK=two\n")  # an env file changed: that unit restarts, the other stays
        supervise("apply", units, state)
        wait_until(lambda: len(starts(log_a)) == 2)
        assert starts(log_a)[1][1] == "two" and not alive(starts(log_a)[0][0])
        assert read_pid(state, "cairn-b") == keeper_b
        os.kill(starts(log_b)[0][0], signal.SIGKILL)  # a crash: the keeper starts it again
        wait_until(lambda: len(starts(log_b)) == 2)
        (units / "cairn-b.service").unlink()  # a unit gone: stopped
        supervise("apply", units, state)
        assert not alive(starts(log_b)[1][0]) and read_pid(state, "cairn-b") is None
    finally:
        supervise("stop", units, state)
    wait_until(lambda: not any(alive(pid) for pid, _ in starts(log_a) + starts(log_b)))
    assert list(state.glob("*.pid")) == []
