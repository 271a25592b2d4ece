"""``cairn agent`` while its platform is away: one log line when the link is lost and one when it
is back, never a traceback per retry. A real agent process talks to the real platform through
two loopback TCP proxies (gateway and NATS) that the test cuts and restores."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # cuts only its own proxies; its agent serves a queue of its own


class Proxy:
    """A loopback TCP forwarder that can be cut: while down it closes every connection at once
    (the peer sees a dead server and retries), and counts the attempts it refused."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.is_down = False
        self.refused = 0
        self._live: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self.is_down:
                    self.refused += 1
                    conn.close()
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._live += [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self) -> None:
        with self._lock:
            self.is_down = True
            for sock in self._live:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._live.clear()

    def up(self) -> None:
        with self._lock:
            self.is_down = False

    def close(self) -> None:
        self.down()
        self.listener.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.1)


@pytest.fixture()
def proxies(platform: Platform) -> Iterator[tuple[Proxy, Proxy]]:
    gateway = Proxy(urlparse(platform.gateway).port or 80)
    nats = Proxy(urlparse(platform.nats_server_url).port or 4222)
    yield gateway, nats
    gateway.close()
    nats.close()


def test_agent_logs_one_line_per_link_change(platform: Platform, proxies: tuple[Proxy, Proxy],
                                             tmp_path: Path) -> None:
    gateway, nats = proxies
    gateway.down()  # the agent starts before its gateway is reachable
    log = tmp_path / "agent.log"
    env = {**os.environ, "CAIRN_LOG_LEVEL": "info", "CAIRN_DEBUG": ""}
    env.pop("CAIRN_TOKEN", None)
    argv = [sys.executable, "-m", "cairn.cli.main", "--url", f"http://127.0.0.1:{gateway.port}", "agent",
            "--queue", "link-test", "--cpus", "1", "--memory", "1Gi", "--gpus", "0", "--name", "link-agent",
            "--work-dir", str(tmp_path / "work"), "--token", platform.token,
            "--nats-url", f"nats://127.0.0.1:{nats.port}", "--system-metrics-interval", "0"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, start_new_session=True)

    def lines(marker: str) -> list[str]:
        return [line for line in log.read_text().splitlines() if marker in line]

    try:
        wait_for(lambda: gateway.refused >= 12, "the agent to retry registering twice")
        assert len(lines("link=lost what=gateway")) == 1, log.read_text()
        gateway.up()
        wait_for(lambda: "ready" in log.read_text(), "the agent to register once the gateway is back")
        assert len(lines("link=back what=gateway")) == 1, log.read_text()

        nats.down()  # as when `cairn up` stops: NATS goes away under a connected agent
        wait_for(lambda: nats.refused >= 10, "nats-py to retry connecting ten times")
        wait_for(lambda: bool(lines("link=lost what=nats")), "the agent to say the NATS link is lost")
        nats.up()
        wait_for(lambda: bool(lines("link=back what=nats")), "the agent to say the NATS link is back")

        text = log.read_text()
        assert "Traceback" not in text, text
        assert len(lines("link=lost")) == 2 and len(lines("link=back")) == 2, text
        assert proc.poll() is None, text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
