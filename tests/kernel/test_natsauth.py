"""NATS credentials files and users on a real nats-server: made once and private, refused when
wrong (at once, not after retrying forever), accepted when right."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cairn.kernel.errors import ConfigurationError
from cairn.kernel.eventlog import connect
from cairn.kernel.natsauth import NatsCredentials, ensure_credentials
from cairn.natsserver import start_nats_server


def test_credentials_are_made_once_private_and_kept(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets" / "nats"
    first = ensure_credentials(secrets_dir, ["registry", "agent"])
    passwords = {user: NatsCredentials.read(path).password for user, path in first.items()}
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in first.values())
    assert passwords["registry"] != passwords["agent"] and len(passwords["registry"]) >= 40

    again = ensure_credentials(secrets_dir, ["registry", "agent", "admin"])
    assert {user: NatsCredentials.read(again[user]).password for user in first} == passwords
    assert "admin" in again and "password" not in repr(NatsCredentials.read(again["admin"]))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_credentials_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "svc.json"
    path.write_text(json.dumps({"user": "svc", "password": "x" * 20}))
    path.chmod(mode)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        NatsCredentials.read(path)


@pytest.mark.parametrize("text", ["not json", "[]", '{"user": "svc"}', '{"user": "", "password": "p"}'])
def test_a_malformed_credentials_file_is_refused_with_its_name(tmp_path: Path, text: str) -> None:
    path = tmp_path / "svc.json"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="svc.json"):
        NatsCredentials.read(path)


def test_a_user_name_nats_config_cannot_hold_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a NATS user name"):
        ensure_credentials(tmp_path, ['bad"name'])


def test_a_server_with_users_takes_the_right_password_and_refuses_others_at_once(tmp_path: Path) -> None:
    files = ensure_credentials(tmp_path / "secrets", ["registry", "admin"])
    users = [NatsCredentials.read(path) for path in files.values()]
    proc, url = start_nats_server(tmp_path / "nats", users=users)
    assert (tmp_path / "nats" / "nats.conf").stat().st_mode & 0o777 == 0o600

    async def scenario() -> None:
        nc = await connect(url, name="ok", credentials=users[0])
        await nc.jetstream().add_stream(name="T", subjects=["cairn.t.>"])  # a service may use JetStream
        await nc.close()
        for wrong in (None, NatsCredentials("registry", "wrong"), NatsCredentials("nobody", users[0].password)):
            with pytest.raises(ConfigurationError, match="refused"):
                await asyncio.wait_for(connect(url, name="bad", credentials=wrong), timeout=30)

    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait()


def test_a_server_cannot_start_on_a_port_another_server_holds(tmp_path: Path) -> None:
    first, url = start_nats_server(tmp_path / "first")
    try:
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(ConfigurationError, match=f"NATS port 127.0.0.1:{port} is in use"):
            start_nats_server(tmp_path / "second", port)
        assert not list((tmp_path / "second").glob("nats.log")), "nothing was started"
    finally:
        first.terminate()
        first.wait()
