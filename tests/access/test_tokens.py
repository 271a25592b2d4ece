"""Tokens: shown once, stored as hashes, revocable, expiring, never outliving the token that made
them; service accounts; audit paging."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from cairn.kernel.envelope import Event
from cairn.kernel.errors import InvalidInput
from cairn.kernel.schemas import current_version, known_schemas
from cairn.services.gateway import domain
from cairn.services.gateway.projection import projection
from cairn.services.gateway.store import GatewayStore

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


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
    sam = _client(platform, short["token"])
    assert sam.get("/whoami").status_code == 200
    deadline = time.monotonic() + 30  # refused from its expiry on, not from a fixed sleep
    while (resp := sam.get("/whoami")).status_code == 200:
        assert time.monotonic() < deadline, f"a token that expired at {short['expires_at']} is still accepted"
        time.sleep(0.05)
    assert resp.status_code == 401 and "expired" in resp.json()["error"]["message"]
    assert datetime.now(timezone.utc) >= _at(short["expires_at"])  # refused no earlier than it expired


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


def _at(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _refused_as_too_long(resp: httpx.Response, latest: str) -> None:
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["details"]["field"] == "expires_in_days"
    assert err["details"]["latest_expires_at"] == latest and latest in err["message"]
    assert 0 <= err["details"]["max_expires_in_days"] <= 1


def test_an_expiring_token_cannot_mint_one_that_outlives_it(platform: Platform) -> None:
    admin = _client(platform, platform.token)
    made = admin.post("/tokens", json={"user": "ivy", "expires_in_days": 1}).json()
    ivy = _client(platform, made["token"])
    before = ivy.get("/tokens").json()["tokens"]
    never = ivy.post("/tokens", json={"description": "forever"})
    _refused_as_too_long(never, made["expires_at"])
    assert "never expires" in never.json()["error"]["message"]
    _refused_as_too_long(ivy.post("/tokens", json={"expires_in_days": 2}), made["expires_at"])
    assert ivy.get("/tokens").json()["tokens"] == before  # a refused request created nothing

    child = ivy.post("/tokens", json={"expires_in_days": 0.5, "description": "laptop"})
    assert child.status_code == 201
    assert child.json()["parent_token_id"] == made["token_id"]
    assert _at(child.json()["expires_at"]) <= _at(made["expires_at"])
    assert _client(platform, child.json()["token"]).get("/whoami").json()["user"] == "ivy"
    listed = {t["token_id"]: t for t in ivy.get("/tokens").json()["tokens"]}
    assert listed[child.json()["token_id"]]["parent_token_id"] == made["token_id"]


def test_minting_chains_keep_the_earliest_expiry_and_revoking_does_not_cascade(platform: Platform) -> None:
    admin = _client(platform, platform.token)
    first = admin.post("/tokens", json={"user": "jon", "expires_in_days": 1}).json()
    second = _client(platform, first["token"]).post("/tokens", json={"expires_in_days": 0.5}).json()
    jon2 = _client(platform, second["token"])
    _refused_as_too_long(jon2.post("/tokens", json={"expires_in_days": 0.75}), second["expires_at"])
    third = jon2.post("/tokens", json={"expires_in_days": 0.25})
    assert third.status_code == 201 and third.json()["parent_token_id"] == second["token_id"]
    jon3 = _client(platform, third.json()["token"])
    _refused_as_too_long(jon3.post("/tokens", json={}), third.json()["expires_at"])

    # revoking a token leaves the tokens it minted alone (revoke those by parent_token_id)
    assert admin.delete(f"/tokens/{second['token_id']}").status_code == 200
    assert jon2.get("/whoami").status_code == 401
    assert jon3.get("/whoami").json()["token_id"] == third.json()["token_id"]


def test_a_site_admins_expiring_token_caps_the_tokens_it_makes_for_others(platform: Platform) -> None:
    admin = _client(platform, platform.token)
    made = admin.post("/tokens", json={"user": "ops", "site_admin": True, "expires_in_days": 1}).json()
    ops = _client(platform, made["token"])
    _refused_as_too_long(ops.post("/tokens", json={"user": "kim"}), made["expires_at"])
    _refused_as_too_long(ops.post("/tokens", json={"user": "kim-ci", "kind": "service", "expires_in_days": 30}),
                         made["expires_at"])
    kim = ops.post("/tokens", json={"user": "kim", "expires_in_days": 0.5})
    assert kim.status_code == 201 and kim.json()["user"] == "kim"
    assert kim.json()["parent_token_id"] == made["token_id"]
    # a token that never expires may mint one that never expires
    assert admin.post("/tokens", json={"user": "kim"}).json()["expires_at"] is None


def test_token_expiry_is_capped_by_the_minting_token() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    parent = (now + timedelta(days=2)).isoformat()
    assert domain.token_expiry(now, None, None) is None
    assert domain.token_expiry(now, 3, None) == (now + timedelta(days=3)).isoformat()
    assert domain.token_expiry(now, 2, parent) == parent  # exactly the parent's expiry is allowed
    for days in (None, 2.001):
        with pytest.raises(InvalidInput) as err:
            domain.token_expiry(now, days, parent)
        assert err.value.details == {"field": "expires_in_days", "latest_expires_at": parent,
                                     "max_expires_in_days": 2}
    with pytest.raises(InvalidInput) as err:  # the parent expired already: nothing fits
        domain.token_expiry(now, 1, (now - timedelta(seconds=1)).isoformat())
    assert err.value.details["max_expires_in_days"] == 0


def test_token_created_v1_events_still_apply(tmp_path: Path) -> None:
    """v2 added parent_token_id as optional: a v1 event is a valid v2 event and projects with no parent."""
    assert current_version("token.created") == 2
    v1 = {"user": "old", "token_id": "0123456789ab", "secret_hash": "f" * 64, "kind": "user",
          "site_admin": False, "expires_at": None, "description": ""}
    import jsonschema  # here, not at collection: ~1 s on every xdist worker

    jsonschema.validate(v1, known_schemas()["token.created.v2"])
    store = GatewayStore(tmp_path / "gateway.sqlite3")
    try:
        store.apply([Event(type="token.created", version=1, project=domain.SITE, aggregate="user",
                           aggregate_id="old", data=v1, sequence=1)], projection())
        assert store.token("0123456789ab")["parent_token_id"] is None
    finally:
        store.close()


def test_a_store_made_before_parent_token_ids_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE tokens (token_id TEXT PRIMARY KEY, user TEXT NOT NULL, kind TEXT NOT NULL, "
                 "site_admin INTEGER NOT NULL, secret_hash TEXT NOT NULL, expires_at TEXT, description TEXT "
                 "NOT NULL, revoked INTEGER NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL)")
    conn.execute("INSERT INTO tokens VALUES('0123456789ab', 'old', 'user', 0, ?, NULL, '', 0, 't', 'a')",
                 ("f" * 64,))
    conn.commit()
    conn.close()
    store = GatewayStore(path)
    try:
        assert store.tokens("old")[0]["parent_token_id"] is None
    finally:
        store.close()
