"""``cairn up`` end to end in a subprocess: health, SDK, a crashed service comes back, Ctrl-C
stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

import cairn
from cairn.natsserver import free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not a running process
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_cairn_up_end_to_end(tmp_path: Path) -> None:
    data_dir, port, nats_port = tmp_path / "data", free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    cli = [sys.executable, "-c", "from cairn.cli.main import cli; cli()"]
    up = subprocess.Popen([*cli, "up", "--data-dir", str(data_dir), "--port", str(port),
                           "--nats-port", str(nats_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _healthy(url), 60, "cairn up to be healthy")
        state = json.loads((data_dir / "run" / "state.json").read_text())
        pids = [state["nats_pid"]] + [s["pid"] for s in state["services"].values()]

        token_file = data_dir / "admin.token"
        assert token_file.stat().st_mode & 0o777 == 0o600, "the first admin token is private to its owner"
        client = cairn.Client(url, token=token_file.read_text().strip())
        with cairn.start_run(project="e2e", experiment="smoke", params={"lr": 0.1}, client=client) as run:
            run.set_tag("stage", "test")
        assert client.get_run("e2e", run.id)["status"] == "finished"

        registry_pid = state["services"]["registry"]["pid"]
        os.kill(registry_pid, signal.SIGKILL)

        def restarted() -> bool:
            current = json.loads((data_dir / "run" / "state.json").read_text())
            return current["services"]["registry"]["pid"] != registry_pid and _healthy(url)

        _wait(restarted, 30, "the registry to be restarted")
        record = client.get_run("e2e", run.id)
        assert (record["status"], record["params"], record["tags"]) == ("finished", {"lr": "0.1"}, {"stage": "test"})
        new_pids = json.loads((data_dir / "run" / "state.json").read_text())
        pids += [s["pid"] for s in new_pids["services"].values()]
        client.close()
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=30)
    assert up.returncode == 0, out.decode()
    assert b"Cairn is up" in out and b"Cairn stopped" in out
    _wait(lambda: not any(_alive(pid) for pid in pids), 10, "every child process to exit")
    assert not (data_dir / "run" / "state.json").exists()
