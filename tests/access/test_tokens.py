"""Tokens: shown once, stored as hashes, revocable, expiring; service accounts; audit paging."""

from __future__ import annotations

import sqlite3
import time

import httpx

from platform_harness import Platform


def _client(platform: Platform, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{platform.gateway}/api/v1", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


def test_revoked_and_expired_tokens_are_refused(platform: Platform) -> None:
    admin = _client(platform, platform.token)
    made = admin.post("/tokens", json={"user": "rita"}).json()
    rita = _client(platform, made["token"])
    assert rita.get("/whoami").json()["user"] == "rita"
    assert admin.delete(f"/tokens/{made['token_id']}").status_code == 200
    resp = rita.get("/whoami")
    assert resp.status_code == 401 and "revoked" in resp.json()["error"]["message"]

    short = admin.post("/tokens", json={"user": "sam", "expires_in_days": 1.5e-5}).json()  # ~1.3 s
    assert _client(platform, short["token"]).get("/whoami").status_code == 200
    time.sleep(1.6)
    resp = _client(platform, short["token"]).get("/whoami")
    assert resp.status_code == 401 and "expired" in resp.json()["error"]["message"]


def test_token_store_holds_no_plaintext(platform: Platform) -> None:
    admin = _client(platform, platform.token)
    token = admin.post("/tokens", json={"user": "pat"}).json()["token"]
    secret = token.split("_", 2)[2]
    db = platform.root / "data" / "gateway" / "gateway.sqlite3"
    conn = sqlite3.connect(db)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert secret not in dump and token not in dump
    listed = admin.get("/tokens").json()["tokens"]
    assert all("secret_hash" not in t and "token" not in t for t in listed)


def test_users_manage_only_their_own_tokens(platform: Platform) -> None:
    admin = _client(platform, platform.token)
    uma = _client(platform, admin.post("/tokens", json={"user": "uma"}).json()["token"])
    own = uma.post("/tokens", json={"description": "laptop"})
    assert own.status_code == 201 and own.json()["user"] == "uma"
    assert uma.post("/tokens", json={"user": "other"}).status_code == 403
    assert uma.post("/tokens", json={"site_admin": True}).status_code == 403
    assert {t["user"] for t in uma.get("/tokens").json()["tokens"]} == {"uma"}
    assert uma.delete(f"/tokens/{admin.get('/whoami').json()['token_id']}").status_code == 404


def test_service_accounts_are_first_class(platform: Platform) -> None:
    admin = _client(platform, platform.token)
    admin.post("/registry/projects", json={"name": "svc-proj"}).raise_for_status()
    ci = admin.post("/tokens", json={"user": "ci-bot", "kind": "service", "description": "CI"}).json()
    assert ci["kind"] == "service"
    admin.post("/projects/svc-proj/members", json={"user": "ci-bot", "role": "editor"}).raise_for_status()
    bot = _client(platform, ci["token"])
    assert bot.post("/registry/projects/svc-proj/runs", json={}).status_code == 201
    assert bot.post("/registry/projects", json={"name": "bot-made"}).status_code == 403


def test_audit_pages_through_the_log(platform: Platform) -> None:
    admin = _client(platform, platform.token)
    admin.post("/registry/projects", json={"name": "audited"}).raise_for_status()
    run = admin.post("/registry/projects/audited/runs", json={}).json()
    for i in range(5):
        admin.put(f"/registry/projects/audited/runs/{run['id']}/tags/t{i}", json={"value": "x"}).raise_for_status()
    seen, cursor = [], 0
    while True:
        page = admin.get("/audit", params={"project": "audited", "type": "run.*", "limit": 2, "cursor": cursor}).json()
        seen += [e["type"] for e in page["events"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == ["run.created"] + ["run.tag_set"] * 5
    assert admin.get("/audit", params={"project": "audited", "since": "not a time"}).status_code == 422
    future = admin.get("/audit", params={"project": "audited", "since": "2999-01-01T00:00:00Z"}).json()
    assert future["events"] == []
