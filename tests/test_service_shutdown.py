"""Every service stops by itself on SIGTERM, with exit code 0, well before anything would kill
it: a part left running (a pull subscription that holds the NATS connection's drain, a task that
is never cancelled) shows as a service that only a SIGKILL stops. The harness kills after 10 s;
this waits up to 8 s for each, a deadline, not a measurement."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from platform_harness import Platform

DEADLINE_S = 8.0


@pytest.fixture()
def plat(tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(tmp_path / "platform")
    try:
        yield platform.start()
    finally:
        platform.stop()


def test_every_service_exits_on_sigterm_by_itself(plat: Platform) -> None:
    # some work first, so that every service has live parts (consumers, writers, loops)
    with httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30) as http:
        assert http.post("/registry/projects", json={"name": "shutdown"}).status_code == 201
        run = http.post("/registry/projects/shutdown/runs", json={"name": "r"}).json()
        assert http.post(f"/metrics/projects/shutdown/runs/{run['id']}/metrics",
                         json={"batch_id": "b1", "points": [{"key": "loss", "value": 0.5, "step": 1}]}).status_code == 202
    for proc in plat.procs.values():
        proc.terminate()
    codes: dict[str, object] = {}
    stuck: list[str] = []
    for name, proc in plat.procs.items():
        try:
            codes[name] = proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            codes[name] = "still running"
            proc.send_signal(signal.SIGUSR1)  # its threads' and asyncio tasks' stacks into its log:
            proc.send_signal(signal.SIGUSR2)  # where it waits
            stuck.append(name)
    time.sleep(1 if stuck else 0)
    where = {name: (plat.root / f"{name}.log").read_text(errors="replace")[-6000:] for name in stuck}
    assert codes == {name: 0 for name in plat.procs}, (codes, where)


def test_sigusr1_and_sigusr2_write_the_threads_and_the_tasks_stacks_to_the_log(plat: Platform) -> None:
    """The diagnostics the harness takes from a service that does not stop (docs/architecture.md
    "Processes"): the service goes on serving afterwards."""
    proc, log = plat.procs["registry"], plat.root / "registry.log"
    proc.send_signal(signal.SIGUSR1)
    proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 10
    # the task dump's header comes before its stacks: wait for a stack, not the header
    while time.monotonic() < deadline and not ("Stack for <Task" in log.read_text() and "File " in log.read_text()):
        time.sleep(0.1)
    text = log.read_text()
    assert "Current thread" in text or "Thread 0x" in text, text[-2000:]
    assert "asyncio tasks" in text and "Stack for <Task" in text, text[-2000:]
    assert httpx.get(f"{plat.gateway}/healthz", timeout=10).status_code == 200
