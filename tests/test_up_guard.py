"""``cairn up`` refuses to share: a port in use or a data dir in use is an error before anything
starts, NATS and the services stay on loopback whatever ``--host`` says, and a nats-server that
cannot come back on its own port stops the platform."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import loopback
import psutil
import pytest
from up_driver import Up, alive, healthy, run_up, start_up, wait

from cairn.kernel.natsauth import NatsCredentials
from cairn.natsserver import free_ports, port_in_use
from cairn.up import start_private_nats


def _listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _take_port_soon(port: int, timeout: float = 10.0) -> socket.socket:
    """Listen on a port that was just freed; another process's outgoing connection may use it as
    its local port for a moment (it is in the ephemeral range), so try until a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _listener(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _nothing_started(data_dir: Path) -> None:
    assert not (data_dir / "run" / "state.json").exists()
    for started in ("logs", "nats", "secrets", "admin.token"):
        assert not (data_dir / started).exists(), f"{started} was made"


def test_cairn_up_with_its_nats_port_taken_fails_before_starting_anything(tmp_path: Path) -> None:
    gateway_port, nats_port = free_ports(2)
    with _listener(nats_port):
        done = run_up(tmp_path / "data", "--port", str(gateway_port), "--nats-port", str(nats_port))
    out = done.stdout.decode()
    assert done.returncode == 1, out
    assert f"the NATS port 127.0.0.1:{nats_port} is in use by another process" in out
    assert "--nats-port 0" in out, "the message says how to get a free port"
    _nothing_started(tmp_path / "data")


def test_cairn_up_with_its_gateway_port_taken_fails_before_starting_anything(tmp_path: Path) -> None:
    gateway_port, nats_port = free_ports(2)
    with _listener(gateway_port):
        done = run_up(tmp_path / "data", "--port", str(gateway_port), "--nats-port", str(nats_port))
    out = done.stdout.decode()
    assert done.returncode == 1, out
    assert f"the gateway port 127.0.0.1:{gateway_port} is in use" in out
    _nothing_started(tmp_path / "data")


def test_a_password_in_the_nats_url_is_refused(tmp_path: Path) -> None:
    (gateway_port,) = free_ports(1)
    done = run_up(tmp_path / "data", "--port", str(gateway_port), "--nats-url", "nats://svc:secret@127.0.0.1:1")
    assert done.returncode == 1 and "--nats-creds" in done.stdout.decode()
    _nothing_started(tmp_path / "data")


@pytest.fixture(scope="module")
def everywhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """``cairn up --host 0.0.0.0 --nats-port 0``: the gateway on every address, NATS on a free port."""
    up = start_up(tmp_path_factory.mktemp("up") / "data", "--host", "0.0.0.0", "--nats-port", "0")
    try:
        yield up.wait_healthy()
    finally:
        up.stop()


def _listening(pid: int) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN}


def test_with_host_0_0_0_0_only_the_gateway_listens_beyond_loopback(everywhere: Up) -> None:
    state = everywhere.state()
    assert state["gateway_listen"] == f"0.0.0.0:{everywhere.port}"
    assert ("0.0.0.0", everywhere.port) in _listening(state["services"]["gateway"]["pid"])
    nats_port = int(state["nats_url"].rsplit(":", 1)[1])
    assert _listening(state["nats_pid"]) == {("127.0.0.1", nats_port)}
    for name, service in state["services"].items():
        if name == "gateway":
            continue
        assert service["url"].startswith("http://127.0.0.1:"), service
        assert _listening(service["pid"]) == {("127.0.0.1", int(service["url"].rsplit(":", 1)[1]))}, name


def test_a_second_cairn_up_on_the_same_data_dir_stops_at_once_naming_the_first_pid(everywhere: Up) -> None:
    first = everywhere.state()
    done = run_up(everywhere.data_dir, "--port", str(free_ports(1)[0]), "--nats-port", "0")
    out = done.stdout.decode()
    assert done.returncode == 1, out
    assert f"another cairn up (pid {first['pid']}) is running on the data dir {everywhere.data_dir}" in out
    assert everywhere.state() == first, "the second one touched nothing of the first's"
    assert healthy(everywhere.url)


def test_each_process_names_its_own_nats_credentials_file_and_holds_no_password(everywhere: Up) -> None:
    state = everywhere.state()
    secrets_dir = everywhere.data_dir / "secrets" / "nats"
    files = {path.stem: path for path in secrets_dir.glob("*.json")}
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in files.values())
    assert (everywhere.data_dir / "nats" / "nats.conf").stat().st_mode & 0o777 == 0o600
    passwords = [NatsCredentials.read(path).password for path in files.values()]
    for name, service in state["services"].items():
        environ = psutil.Process(service["pid"]).environ()
        assert environ["CAIRN_NATS_CREDS"] == str(files[name]), name
        assert not [p for p in passwords if any(p in value for value in environ.values())], name
        assert psutil.Process(service["pid"]).cmdline()[-1] == f"cairn.services.{name}"


def test_with_nats_port_0_a_free_port_is_chosen_and_printed(everywhere: Up) -> None:
    nats_url = everywhere.state()["nats_url"]
    assert re.fullmatch(r"nats://127\.0\.0\.1:\d+", nats_url) and not nats_url.endswith(":4222")
    assert f"nats: {nats_url} " in everywhere.output()


def test_a_nats_server_whose_port_was_taken_while_it_was_down_stops_the_platform(tmp_path: Path) -> None:
    up = start_up(tmp_path / "data", env={"CAIRN_NATS_RESTART_GRACE_S": "1"}).wait_healthy()  # not 5 s of tries
    state = up.state()
    nats_port = int(state["nats_url"].rsplit(":", 1)[1])
    children = [state["nats_pid"], *(s["pid"] for s in [*state["services"].values(), *state["helpers"].values()])]
    os.kill(state["pid"], signal.SIGSTOP)  # the supervisor cannot restart NATS before the port is taken
    try:
        os.kill(state["nats_pid"], signal.SIGKILL)
        wait(lambda: not alive(state["nats_pid"]), 10, "nats-server to die")
        squatter = _take_port_soon(nats_port)
    finally:
        os.kill(state["pid"], signal.SIGCONT)
    with squatter:
        out = up.wait_exit(60)
    assert up.proc.returncode == 1, out
    assert f"nats-server could not come back on port {nats_port}, so the platform stops" in out
    wait(lambda: not any(alive(pid) for pid in children), 30, "every service to stop")


def test_cairn_up_on_an_external_nats_connects_with_the_credentials_files_given(tmp_path: Path) -> None:
    """--nats-url with --nats-creds/--nats-agent-creds: the services get in as the given user, and
    agents are handed the agents' user (here a server like ours, with its files)."""
    nats, url, files = start_private_nats(tmp_path / "nats", tmp_path / "secrets")
    try:
        up = start_up(tmp_path / "data", "--nats-url", url, "--nats-creds", str(files["gateway"]),
                      "--nats-agent-creds", str(files["agent"])).wait_healthy()
        try:
            token = (tmp_path / "data" / "admin.token").read_text().strip()
            answer = loopback.post(f"{up.url}/api/v1/scheduler/agents", headers={"Authorization": f"Bearer {token}"},
                                json={"agent_id": "ext-1", "name": "ext", "queue": "ext", "host": "127.0.0.1",
                                      "capacity": {"cpus": 1, "memory_mib": 64}}, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["nats_url"] == url
            assert answer.json()["nats_credentials"] == NatsCredentials.read(files["agent"]).to_dict()
            assert up.state()["nats_pid"] is None and not (tmp_path / "data" / "secrets" / "nats").exists()
        finally:
            out = up.stop()
        assert up.proc.returncode == 0, out
    finally:
        nats.terminate()
        nats.wait()


def test_with_port_0_the_gateway_gets_a_free_port_before_anything_starts(tmp_path: Path) -> None:
    from cairn.up import Supervisor

    sup = Supervisor(data_dir=tmp_path / "data", port=0, quiet=True)
    sup.claim()
    try:
        assert sup.port > 0 and sup.gateway_url.endswith(f":{sup.port}")
        assert not port_in_use("127.0.0.1", sup.port)  # chosen, not held: the gateway binds it
    finally:
        assert sup.lock_fd is not None
        os.close(sup.lock_fd)


def test_a_service_whose_port_was_taken_before_it_bound_it_starts_again_on_a_new_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Another process takes a port between `cairn up` choosing it and the service binding it (a
    race with other stacks on the machine): the services start again on new ports."""
    from cairn import up as up_module
    from cairn.up import SERVICES, Supervisor

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    rigged: list[int] = []

    def first_service_port_taken(n: int, host: str = "127.0.0.1") -> list[int]:
        ports = free_ports(n, host)
        if n == len(SERVICES) and not rigged:
            rigged.append(squatter.getsockname()[1])
            ports[0] = rigged[0]
        return ports

    monkeypatch.setattr(up_module, "free_ports", first_service_port_taken)
    sup = Supervisor(data_dir=tmp_path / "data", port=0, nats_port=0)
    sup.claim()
    try:
        sup.start()
        assert healthy(sup.gateway_url)
        assert rigged and all(not (c.url or "").endswith(f":{rigged[0]}") for c in sup.children)
        assert f"{SERVICES[0]} lost its port to another process" in capsys.readouterr().out
    finally:
        sup.stop()
        squatter.close()
        if sup.lock_fd is not None:
            os.close(sup.lock_fd)


FLAKY_CHILD = """
import pathlib, socket, sys, time
marker = pathlib.Path(sys.argv[1])
if not marker.exists():  # the first start fails (as one waiting for a stream's leader did)
    marker.write_text("failed once")
    sys.exit(3)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[2])))
sock.listen()
time.sleep(120)
"""


def test_a_child_that_fails_its_first_start_is_started_again_within_the_start_deadline(tmp_path: Path) -> None:
    from cairn.up import Child, Supervisor

    port = free_ports(1)[0]
    flaky = Child("flaky", [sys.executable, "-c", FLAKY_CHILD, str(tmp_path / "marker"), str(port)], dict(os.environ),
                  url=f"http://127.0.0.1:{port}", log_path=tmp_path / "flaky.log")
    never = Child("never", [sys.executable, "-c", "raise SystemExit(4)"], dict(os.environ),
                  url=f"http://127.0.0.1:{free_ports(1)[0]}", log_path=tmp_path / "never.log")
    supervisor = Supervisor(tmp_path, quiet=True, children=[flaky])
    (tmp_path / "run").mkdir()
    try:
        flaky.start()
        supervisor._wait_listening(timeout=60)
        assert flaky.restarts == 1 and flaky.proc is not None and flaky.proc.poll() is None

        supervisor.children = [never]
        never.start()
        # it exits at once, so it is started again after the first backoff (0.5 s), well within 2 s
        with pytest.raises(TimeoutError, match="nothing listens for never after 2s"):
            supervisor._wait_listening(timeout=2)
        assert never.restarts >= 1  # it was started again (and failed again) before the deadline
    finally:
        for child in (flaky, never):
            if child.proc is not None and child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
