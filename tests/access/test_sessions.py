"""The web UI's side of the gateway: cookie sessions made from a token (sign in, use on the API
and the event stream, CSRF on writes, sign out, revocation, expiry, a restart) and the app's files
(security and cache headers, the SPA fallback, the page shown when the app is not built)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import loopback
import pytest

from cairn.kernel import jobtoken
from cairn.kernel.eventlog import EventLog
from cairn.services.gateway.sessions import SessionStore

from platform_harness import Platform, running

PROJECT = "sess-proj"
INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-1a2b3c.js"></script></head>' \
        '<body><div id="app">cairn-ui-fixture</div></body></html>'


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform of this module's own whose gateway serves a tiny fixture build (CAIRN_UI_DIST);
    the restart test changes the gateway's settings, so it is not the shared one."""
    dist = tmp_path_factory.mktemp("ui-dist")
    (dist / "assets").mkdir()
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "app-1a2b3c.js").write_text("console.log('cairn');\n")
    (dist / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    root = tmp_path_factory.mktemp("sessions-platform")
    with running(Platform(root, service_env={"gateway": {"CAIRN_UI_DIST": str(dist)}})) as p:
        admin = httpx.Client(base_url=f"{p.gateway}/api/v1", headers=p.headers, timeout=30)
        admin.post("/registry/projects", json={"name": PROJECT}).raise_for_status()
        yield p


def _user_token(plat: Platform, user: str, role: str | None = "viewer") -> str:
    admin = httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30)
    token = admin.post("/tokens", json={"user": user}).json()["token"]
    if role:
        admin.post(f"/projects/{PROJECT}/members", json={"user": user, "role": role}).raise_for_status()
    return str(token)


def _sign_in(plat: Platform, token: str) -> tuple[str, dict]:
    resp = loopback.post(f"{plat.gateway}/api/v1/session", json={"token": token}, timeout=30)
    assert resp.status_code == 200, resp.text
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie  # RFC 6265: any case
    assert "Secure" not in cookie  # plain http on loopback
    return resp.cookies["cairn_session"], resp.json()


def _with(session_id: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"cairn_session={session_id}", **headers}


def _wait_status(url: str, headers: dict[str, str], want: int, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = loopback.get(url, headers=headers, timeout=10)
        if resp.status_code == want or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


def test_admin_and_user_sign_in_and_the_cookie_is_the_caller(plat: Platform) -> None:
    admin_sid, admin = _sign_in(plat, plat.token)
    assert admin["user"] == "admin" and admin["site_admin"] is True and admin["csrf"]
    user_sid, user = _sign_in(plat, _user_token(plat, "sess-viewer"))
    assert user == {"user": "sess-viewer", "kind": "user", "site_admin": False,
                    "projects": {PROJECT: "viewer"}, "csrf": user["csrf"]}
    assert user["csrf"] != admin["csrf"] and user_sid != admin_sid
    again = loopback.get(f"{plat.gateway}/api/v1/session", headers=_with(user_sid), timeout=10)
    assert again.status_code == 200 and again.json() == user
    whoami = loopback.get(f"{plat.gateway}/api/v1/whoami", headers=_with(user_sid), timeout=10).json()
    assert whoami["user"] == "sess-viewer"
    runs = loopback.post(f"{plat.gateway}/api/v1/registry/projects/{PROJECT}/runs/search", json={},
                         headers=_with(admin_sid, **{"X-CSRF-Token": admin["csrf"]}), timeout=10)
    assert runs.status_code == 200, runs.text  # a forwarded write, signed as the session's caller
    listing = loopback.get(f"{plat.gateway}/api/v1/registry/projects", headers=_with(user_sid), timeout=10)
    assert listing.status_code == 200 and PROJECT in [p["name"] for p in listing.json()["projects"]]
    write = loopback.post(f"{plat.gateway}/api/v1/registry/projects/{PROJECT}/runs", json={},
                          headers=_with(user_sid, **{"X-CSRF-Token": user["csrf"]}), timeout=10)
    assert write.status_code == 403 and "editor" in write.json()["error"]["message"]  # still a viewer


def test_the_event_stream_takes_the_cookie(plat: Platform) -> None:
    sid, _ = _sign_in(plat, _user_token(plat, "sess-streamer"))
    with httpx.stream("GET", f"{plat.gateway}/api/v1/events/stream", params={"project": PROJECT},
                      headers=_with(sid), timeout=10) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        assert next(resp.iter_bytes()).startswith(b": connected")


def test_writes_with_the_cookie_need_the_right_csrf_header(plat: Platform) -> None:
    sid, body = _sign_in(plat, plat.token)
    url = f"{plat.gateway}/api/v1/registry/projects"
    for headers in (_with(sid), _with(sid, **{"X-CSRF-Token": "0" * 64}), _with(sid, **{"X-CSRF-Token": ""})):
        resp = loopback.post(url, json={"name": "sess-csrf"}, headers=headers, timeout=10)
        assert resp.status_code == 403 and "X-CSRF-Token" in resp.json()["error"]["message"], resp.text
    other_sid, other = _sign_in(plat, plat.token)  # another session's value is wrong here too
    resp = loopback.post(url, json={"name": "sess-csrf"}, headers=_with(sid, **{"X-CSRF-Token": other["csrf"]}),
                         timeout=10)
    assert resp.status_code == 403
    listing = loopback.get(url, headers=plat.headers, timeout=10).json()
    assert "sess-csrf" not in [p["name"] for p in listing["projects"]]  # nothing was created
    ok = loopback.post(url, json={"name": "sess-csrf"}, headers=_with(sid, **{"X-CSRF-Token": body["csrf"]}),
                       timeout=10)
    assert ok.status_code == 201, ok.text
    token = loopback.post(f"{plat.gateway}/api/v1/tokens", json={"user": "admin"}, timeout=10,
                          headers=_with(other_sid, **{"X-CSRF-Token": other["csrf"]}))
    assert token.status_code == 201, token.text  # the gateway's own routes too
    bearer = loopback.post(url, json={"name": "sess-bearer"}, headers=plat.headers, timeout=10)
    assert bearer.status_code == 201  # a bearer token needs no CSRF header


def test_sign_out_ends_the_session_on_the_server(plat: Platform) -> None:
    sid, body = _sign_in(plat, _user_token(plat, "sess-leaver"))
    assert loopback.delete(f"{plat.gateway}/api/v1/session", headers=_with(sid), timeout=10).status_code == 403
    out = loopback.delete(f"{plat.gateway}/api/v1/session", headers=_with(sid, **{"X-CSRF-Token": body["csrf"]}),
                          timeout=10)
    assert out.status_code == 204 and 'cairn_session=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    for path in ("/api/v1/session", "/api/v1/whoami", "/api/v1/registry/projects"):
        resp = loopback.get(f"{plat.gateway}{path}", headers=_with(sid), timeout=10)
        assert resp.status_code == 401 and "sign in again" in resp.json()["error"]["message"], resp.text


def test_revoking_the_token_ends_its_sessions(plat: Platform) -> None:
    token = _user_token(plat, "sess-revoked")
    sid_a, _ = _sign_in(plat, token)
    sid_b, _ = _sign_in(plat, token)
    token_id = token.split("_")[1]
    resp = loopback.delete(f"{plat.gateway}/api/v1/tokens/{token_id}", headers=plat.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    gone = _wait_status(f"{plat.gateway}/api/v1/whoami", _with(sid_a), 401)
    assert gone.status_code == 401 and "revoked" in gone.json()["error"]["message"]
    other = loopback.get(f"{plat.gateway}/api/v1/session", headers=_with(sid_b), timeout=10)
    assert other.status_code == 401 and "ended" in other.json()["error"]["message"]  # every session of the token
    again = loopback.post(f"{plat.gateway}/api/v1/session", json={"token": token}, timeout=10)
    assert again.status_code == 401 and "revoked" in again.json()["error"]["message"]


def test_bad_tokens_and_job_tokens_cannot_sign_in(plat: Platform) -> None:
    url = f"{plat.gateway}/api/v1/session"
    for token, words in (("nonsense", "not a Cairn token"), ("cairn_000000000000_nope", "not valid")):
        resp = loopback.post(url, json={"token": token}, timeout=10)
        assert resp.status_code == 401 and words in resp.json()["error"]["message"]
        assert "set-cookie" not in resp.headers
    assert loopback.post(url, json={}, timeout=10).status_code == 422
    job = loopback.post(url, json={"token": _job_token(plat, "admin", PROJECT)}, timeout=10)
    assert job.status_code == 403 and "job" in job.json()["error"]["message"]
    assert "set-cookie" not in job.headers
    assert loopback.get(url, timeout=10).status_code == 401  # no cookie
    assert loopback.get(url, headers=plat.headers, timeout=10).status_code == 401  # a bearer token is no session
    assert loopback.get(url, headers=_with("forged"), timeout=10).status_code == 401


def _job_token(plat: Platform, user: str, project: str) -> str:
    async def key() -> bytes:
        log = await EventLog.open(plat.nats_url, name="test-sessions")
        try:
            return await jobtoken.shared_key(log.js)
        finally:
            await log.close()

    claims = jobtoken.JobClaims(user=user, project=project, job_id="sessjob", run_id="sessrun", attempt=1,
                                expires_at=int(time.time()) + 3600)
    return jobtoken.mint(asyncio.run(key()), claims)


def test_the_app_is_served_with_security_and_cache_headers(plat: Platform) -> None:
    for path in ("/", "/projects/x/runs/y", "/projects"):  # client-side routes reload fine
        page = loopback.get(f"{plat.gateway}{path}", timeout=10)
        assert page.status_code == 200 and "cairn-ui-fixture" in page.text, path
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        _assert_security_headers(page)
    asset = loopback.get(f"{plat.gateway}/assets/app-1a2b3c.js", timeout=10)
    assert asset.status_code == 200 and asset.text == "console.log('cairn');\n"
    assert "javascript" in asset.headers["content-type"]
    assert "immutable" in asset.headers["cache-control"] and "max-age=31536000" in asset.headers["cache-control"]
    _assert_security_headers(asset)
    assert loopback.get(f"{plat.gateway}/favicon.svg", timeout=10).headers["content-type"].startswith("image/svg")
    missing = loopback.get(f"{plat.gateway}/assets/app-gone.js", timeout=10)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")


def _assert_security_headers(resp: httpx.Response) -> None:
    csp = resp.headers["content-security-policy"]
    for directive in ("script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "http" not in csp and "unsafe" not in csp  # no CDN, no inline code
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "same-origin"
    assert resp.headers["x-frame-options"] == "DENY"


def test_api_paths_stay_the_api(plat: Platform) -> None:
    # (/mlflow/<project> itself is the page MLflow's "View run" links open: tests/test_api_docs.py)
    for path in ("/api/v1/nosuch", "/api", "/mlflow/x/nosuch", "/api/v1/nosuch/thing"):
        resp = loopback.get(f"{plat.gateway}{path}", headers=plat.headers, timeout=10)
        assert resp.status_code == 404 and resp.headers["content-type"].startswith("application/json"), path
        assert "cairn-ui-fixture" not in resp.text
    assert loopback.get(f"{plat.gateway}/healthz", timeout=10).json() == {"ready": True}
    assert "paths" in loopback.get(f"{plat.gateway}/openapi.json", timeout=10).json()


def test_a_restart_keeps_sessions_and_a_missing_build_shows_how_to_build(plat: Platform, tmp_path: Path) -> None:
    """Last in this module: it restarts the gateway, pointed at a build that is not there."""
    sid, body = _sign_in(plat, _user_token(plat, "sess-stayer"))
    plat.service_env["gateway"]["CAIRN_UI_DIST"] = str(tmp_path / "not-built")
    plat.restart("gateway")
    plat.wait_healthy()
    again = loopback.get(f"{plat.gateway}/api/v1/session", headers=_with(sid), timeout=10)
    assert again.status_code == 200 and again.json() == body
    page = loopback.get(f"{plat.gateway}/", timeout=10)
    assert page.status_code == 200 and "npm run build" in page.text
    _assert_security_headers(page)
    assert loopback.get(f"{plat.gateway}/projects/x", timeout=10).status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_sessions_expire_when_idle_and_after_their_lifetime(nats_url: str, tmp_path: Path) -> None:
    clock = Clock()
    event_log = await EventLog.open(nats_url, name="sessions-test")
    try:
        store = await SessionStore.open(event_log.js, idle_s=3600, max_s=4 * 3600, clock=clock)
        sid = await store.create("tok1", "ann")
        assert await store.find(sid) is not None
        raw = b"".join(p.read_bytes() for p in (tmp_path / "nats").rglob("*") if p.is_file())
        assert sid.encode() not in raw  # only its hash is stored
        for _ in range(5):  # used every 50 minutes: never idle for an hour...
            clock.now += 3000
            if clock.now - 1_000_000.0 >= 4 * 3600:
                break
            assert await store.find(sid) is not None
        assert await store.find(sid) is None  # ...but 4 hours after sign-in it ends all the same
        idle = await store.create("tok1", "ann")
        clock.now += 3599
        assert await store.find(idle) is not None
        clock.now += 3600  # an hour without a use
        assert await store.find(idle) is None
        assert await store.find("never-made") is None
        a, b, other = (await store.create("tok2", "bo"), await store.create("tok2", "bo"),
                       await store.create("tok3", "bo"))
        assert await store.count("tok2") == 2
        assert await store.end_token("tok2") == 2 and await store.find(a) is None and await store.find(b) is None
        assert await store.count("tok2") == 0 and await store.end_token("tok2") == 0
        assert await store.find(other) is not None
        await store.end(other)
        assert await store.find(other) is None
        kept = await store.create("tok3", "bo")
        reopened = await SessionStore.open(event_log.js, idle_s=3600, max_s=4 * 3600, clock=clock)
        assert await reopened.find(kept) is not None  # kept in the bucket, not in the process
    finally:
        await event_log.close()
