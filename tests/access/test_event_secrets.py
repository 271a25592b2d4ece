"""Secrets stay in the log: what leaves the gateway (event stream, audit, webhook deliveries) has
a webhook's signing secret and a token's secret hash removed."""

from __future__ import annotations

import asyncio
import json

import httpx
import loopback

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog
from cairn.kernel.sealing import seal_key, unseal
from cairn.services.gateway.events import public_dict

from platform_harness import Platform, read_all_events


def _stream(platform: Platform, token: str, count: int, **params: str) -> list[dict]:
    events: list[dict] = []
    with loopback.stream("GET", f"{platform.gateway}/api/v1/events/stream", params={**params, "since": "0"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=20) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == count:
                    break
    return events


def test_stream_and_audit_leave_out_webhook_and_token_secrets(platform: Platform) -> None:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    admin.post("/registry/projects", json={"name": "hushed"}).raise_for_status()
    viewer = admin.post("/tokens", json={"user": "vera"}).json()
    admin.post("/projects/hushed/members", json={"user": "vera", "role": "viewer"}).raise_for_status()
    hook = admin.post("/projects/hushed/webhooks",
                      json={"url": "http://127.0.0.1:9/closed", "types": ["run.*"]}).json()
    assert hook["secret"].startswith("whsec_")  # shown once, to the admin who made it

    # a project viewer following the project's events sees the webhook, not its secret
    [created] = _stream(platform, viewer["token"], 1, project="hushed", types="webhook.created")
    assert created["data"]["webhook_id"] == hook["id"]
    assert created["data"]["url"] == "http://127.0.0.1:9/closed"
    assert "secret" not in created["data"]
    assert hook["secret"] not in json.dumps(created)

    page = admin.get("/audit", params={"project": "hushed", "type": "webhook.*"}).json()
    assert [e["data"]["webhook_id"] for e in page["events"]] == [hook["id"]]
    assert all("secret" not in e["data"] for e in page["events"])

    tokens = _stream(platform, platform.token, 2, types="token.created")
    assert len(tokens) == 2 and all("secret_hash" not in e["data"] and "token_id" in e["data"] for e in tokens)
    audit = admin.get("/audit", params={"type": "token.created"}).json()["events"]
    assert audit and all("secret_hash" not in e["data"] for e in audit)

    # the log itself keeps them (the gateway's projection is rebuilt from it), the webhook's secret
    # sealed with the key in cairn-keys: readers of the project's events cannot use it
    logged = [e for e in read_all_events(platform.nats_url) if e["type"] == "webhook.created"]
    [sealed] = [e["data"]["secret"] for e in logged if e["data"]["webhook_id"] == hook["id"]]
    assert sealed.startswith("sealed:v1:") and hook["secret"] not in sealed
    key = asyncio.run(_seal_key(platform.nats_url))
    assert unseal(key, sealed, hook["id"]) == hook["secret"]


async def _seal_key(nats_url: str) -> bytes:
    log = await EventLog.open(nats_url, name="test-seal-key")
    try:
        return await seal_key(log.js)
    finally:
        await log.close()


def test_public_dict_removes_only_the_secret_fields() -> None:
    token = Event(id="e1", type="token.created", version=1, project="_site", aggregate="token",
                  aggregate_id="abc", sequence=7, time="2026-11-27T00:00:00Z", actor="admin",
                  data={"user": "vera", "token_id": "0123456789ab", "secret_hash": "f" * 64, "kind": "user",
                        "site_admin": False, "expires_at": None, "description": ""})
    shown = public_dict(token)
    assert "secret_hash" not in shown["data"]
    assert {k: v for k, v in token.data.items() if k != "secret_hash"} == shown["data"]
    assert token.data["secret_hash"] == "f" * 64  # the event itself is untouched
    run = Event(id="e2", type="run.tag_set", version=1, project="p", aggregate="run", aggregate_id="r",
                sequence=8, time="2026-11-27T00:00:00Z", actor="admin", data={"key": "secret", "value": "x"})
    assert public_dict(run) == run.to_dict()
