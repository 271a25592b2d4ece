"""``cairn serve`` as a real subprocess for tests: started against the test platform, its URL read
from the line it prints once it listens (every wait has a deadline)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import loopback

LISTENING = re.compile(r"serving \S+ version \d+ on (http://\S+)")


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    headers: dict[str, str]
    output: list[str] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30, **kwargs)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus series' samples whose labels include ``labels``."""
        text = loopback.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


def serve_env(platform: Any, cache: Path) -> dict[str, str]:
    return {**os.environ, "CAIRN_URL": platform.gateway, "CAIRN_TOKEN": platform.token,
            "CAIRN_MODEL_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}


def run_serve_cli(platform: Any, cache: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``cairn serve`` expecting it to stop by itself (a model that cannot load)."""
    return subprocess.run([sys.executable, "-m", "cairn.cli.main", "serve", "--port", "0", *args],
                          env=serve_env(platform, cache), capture_output=True, text=True, timeout=timeout)


def listening_url(proc: subprocess.Popen[str], lines: list[str], deadline_s: float) -> str:
    """The URL ``cairn serve`` prints once it listens (AssertionError with its output if it does
    not within ``deadline_s``). Its output keeps being read into ``lines`` afterwards, so the pipe
    never fills."""
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = LISTENING.search(line)
            if match and not url:
                url.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(deadline_s) or not url:
        raise AssertionError("cairn serve did not start:\n" + "".join(lines[-40:]))
    return url[0]


@contextmanager
def serving(platform: Any, cache: Path, *args: str, deadline_s: float = 120) -> Iterator[Served]:
    proc = subprocess.Popen([sys.executable, "-m", "cairn.cli.main", "serve", "--port", "0", *args],
                            env=serve_env(platform, cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    try:
        url = listening_url(proc, lines, deadline_s)
        yield Served(proc, url, {"Authorization": f"Bearer {platform.token}"}, lines)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_until(check: Callable[[], Any], deadline_s: float = 60, what: str = "condition") -> Any:
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


ANSWER_SIGNATURE = [{"name": "x", "type": "double"}]


def log_answer_versions(client: Any, project: str, src: Path, *, broken: bool = False) -> None:
    """Model ``answer`` in ``project``: versions 1 and 2 are Python ``predict(batch)`` modules that
    answer their own number (every answer says which version made it); with ``broken``, version 3
    cannot be imported."""
    from cairn.sdk.run import start_run

    bodies = {1: "def predict(batch):\n    return [1] * len(batch)\n",
              2: "def predict(batch):\n    return [2] * len(batch)\n"}
    if broken:
        bodies[3] = "raise RuntimeError('broken on purpose')\n"
    with start_run(project, client=client, system_metrics=False, record_environment=False) as run:
        for number, text in bodies.items():
            module = src / f"v{number}" / "predict.py"
            module.parent.mkdir()
            module.write_text(text)
            assert run.log_model(module, "answer", signature=ANSWER_SIGNATURE)["version"] == number
