"""Every route of every service, read from the services' own OpenAPI documents, called through the
gateway by every kind of caller, in the caller's project and in another one; each answer is
checked against the role the route declares (``x-cairn-role``), and a refused call appends nothing.

The expectations below are written out independently of the services' enforcement code: the test
knows what each declared requirement means, not how a service checks it.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import loopback
import pytest

from cairn.kernel import jobtoken
from cairn.kernel.eventlog import EventLog
from cairn.kernel.identity import Signer, load_service_key
from cairn.up import SERVICES

from platform_harness import Platform, stream_last_seq

MINE, OTHER = "perm-mine", "perm-other"
RANK = {"viewer": 1, "editor": 2, "admin": 3}
GATEWAY_OWN = ("/api/v1/tokens", "/api/v1/projects", "/api/v1/audit", "/api/v1/status", "/api/v1/whoami",
               "/api/v1/events", "/api/v1/gateway/",  # the gateway's own rebuild, hash, parked events
               # open: code hosts send no token; the pipelines service verifies the hook's signature or
               # token on the body (an unsigned call is a 400 for no event header, a 401 for a bad one)
               "/api/v1/pipelines/hooks/git",
               # the web UI's sign-in (open: the body's token proves who signs in) and its session
               # (the cookie only: a bearer caller gets 401; tests/access/test_sessions.py)
               "/api/v1/session")
SHADOWED = {"/api/v1/pipelines/hooks/git"}  # service routes the gateway answers itself (above)
PARAM_VALUES = {"digest": "0" * 64, "version": "1", "name": "none.txt", "token_id": "000000000000",
                "user": "nobody", "alias": "staging", "key": "k", "sequence": "999999999"}


@dataclass(frozen=True)
class Who:
    """A kind of caller: its token, its kind, and its roles (project -> role)."""

    name: str
    token: str | None
    kind: str = "user"
    site_admin: bool = False
    roles: dict[str, str] = field(default_factory=dict)


def allowed(who: Who, requirement: str, project: str | None) -> bool:
    """What a declared requirement means, for a caller through the gateway."""
    if requirement == "open":
        return True
    if who.token is None or requirement in ("internal", "session", "signed-url"):
        return False  # "session": the web UI's cookie only; these callers send bearer tokens
    if who.site_admin:
        return True
    if requirement in RANK:
        if project is None:
            return False  # a project role over every project: site admins only
        return RANK.get(who.roles.get(project, ""), 0) >= RANK[requirement]
    return {"signed-in": True, "person": who.kind == "user", "account": who.kind != "job",
            "agent": who.kind == "service", "site-admin": False}[requirement]


def refused(status: int, body: str) -> bool:
    """A refusal: no or bad credentials, missing role, or the not-a-member 404 (which never
    confirms that a project exists)."""
    return status in (401, 403) or (status == 404 and "does not exist or you are not a member" in body)


@pytest.fixture(scope="module")
def callers(platform: Platform) -> dict[str, Who]:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    for project in (MINE, OTHER):
        admin.post("/registry/projects", json={"name": project}).raise_for_status()
    who = {"anonymous": Who("anonymous", None), "site-admin": Who("site-admin", platform.token, site_admin=True)}
    for role in ("viewer", "editor", "admin"):
        token = admin.post("/tokens", json={"user": f"perm-{role}"}).json()["token"]
        admin.post(f"/projects/{MINE}/members", json={"user": f"perm-{role}", "role": role}).raise_for_status()
        who[role] = Who(role, token, roles={MINE: role})
    who["outsider"] = Who("outsider", admin.post("/tokens", json={"user": "perm-outsider"}).json()["token"])
    service = admin.post("/tokens", json={"user": "perm-bot", "kind": "service"}).json()["token"]
    admin.post(f"/projects/{MINE}/members", json={"user": "perm-bot", "role": "editor"}).raise_for_status()
    who["service"] = Who("service", service, kind="service", roles={MINE: "editor"})
    who["job"] = Who("job", _job_token(platform, "perm-editor", MINE), kind="job", roles={MINE: "editor"})
    return who


def _job_token(platform: Platform, user: str, project: str) -> str:
    async def key() -> bytes:
        log = await EventLog.open(platform.nats_url, name="test-perm")
        try:
            return await jobtoken.shared_key(log.js)
        finally:
            await log.close()

    claims = jobtoken.JobClaims(user=user, project=project, job_id="permjob", run_id="permrun", attempt=1,
                                expires_at=int(time.time()) + 3600)
    return jobtoken.mint(asyncio.run(key()), claims)


def _service_routes(platform: Platform) -> list[tuple[str, str, str]]:
    """(method, gateway path template, requirement) of every service route, /admin ones included."""
    signer = Signer(load_service_key(platform.root / "data"), "gateway")
    routes = []
    for service in SERVICES:
        doc = loopback.get(f"{platform.service_url(service)}/openapi.json", headers=signer.internal(), timeout=10).json()
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if path == "/healthz":
                    continue
                assert "x-cairn-role" in op, f"{service} {method.upper()} {path} declares no role"
                if f"/api/v1/{service}{path}" not in SHADOWED:
                    routes.append((method.upper(), f"/api/v1/{service}{path}", op["x-cairn-role"]))
    return routes


def _gateway_routes(platform: Platform) -> list[tuple[str, str, str]]:
    doc = loopback.get(f"{platform.gateway}/openapi.json", timeout=10).json()
    routes = []
    for path, item in doc["paths"].items():
        if not path.startswith(GATEWAY_OWN):
            continue
        for method, op in item.items():
            assert "x-cairn-role" in op, f"gateway {method.upper()} {path} declares no role"
            routes.append((method.upper(), path, op["x-cairn-role"]))
    return routes


def _concrete(template: str, project: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return project if name == "project" else PARAM_VALUES.get(name, "zz0none")

    return re.sub(r"\{([^}]+)\}", value, template)


def _call(platform: Platform, who: Who, method: str, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {who.token}"} if who.token else {}
    body = None
    if method in ("POST", "PUT", "PATCH"):
        body = {"kind": who.kind} if path == "/api/v1/tokens" else {}  # a token of one's own kind
    return loopback.request(method, f"{platform.gateway}{path}", headers=headers, json=body, timeout=30)


def test_every_route_declares_a_role_and_enforces_it(platform: Platform, callers: dict[str, Who]) -> None:
    routes = _service_routes(platform) + _gateway_routes(platform)
    assert len(routes) > 100  # every service answered with its document
    failures: list[str] = []

    def check(who: Who, method: str, path: str, requirement: str, want: bool) -> httpx.Response:
        resp = _call(platform, who, method, path)
        if resp.status_code >= 500:
            failures.append(f"{who.name:10} {method:6} {path}: {resp.status_code} {resp.text[:100]}")
        elif refused(resp.status_code, resp.text) == want:
            failures.append(f"{who.name:10} {method:6} {path} [{requirement}]: {resp.status_code} "
                            f"(want {'allowed' if want else 'refused'}) {resp.text[:100]}")
        return resp

    calls = []  # (who, method, path, requirement, allowed)
    for method, template, requirement in routes:
        if template.endswith("/events/stream"):
            continue  # a stream that stays open: covered by tests/test_events_stream.py
        for project in (MINE, OTHER) if "{project}" in template else (None,):
            path = _concrete(template, project or MINE)
            if template.startswith("/api/v1/audit"):
                path, project = f"{path}?project={MINE}", MINE
            calls += [(who, method, path, requirement, allowed(who, requirement, project)) for who in callers.values()]
    before = stream_last_seq(platform)
    with ThreadPoolExecutor(max_workers=4) as pool:  # the refusals first, all of them: they change nothing
        list(pool.map(lambda call: check(*call), [call for call in calls if not call[4]]))
    if stream_last_seq(platform) != before:
        failures.append("refused calls appended events to the log")
    allowed_calls = [call for call in calls if call[4]]
    archiving = [call for call in allowed_calls if call[2].endswith(("/archive", "/restore"))]
    # a rebuild of the gateway's read model drops the tokens every other call authenticates with
    # until it is replayed: rebuilds go last, one at a time
    rebuilds = [call for call in allowed_calls if call[2].endswith("/admin/rebuild")]
    with ThreadPoolExecutor(max_workers=4) as pool:  # then the allowed ones (dummy ids: most are 404/422)
        list(pool.map(lambda call: check(*call),
                      [call for call in allowed_calls if call not in archiving and call not in rebuilds]))
    for who, method, path, requirement, _ in archiving:  # one at a time, each archive undone
        resp = check(who, method, path, requirement, True)
        if path.endswith("/archive") and resp.status_code < 300:
            loopback.post(f"{platform.gateway}{path.removesuffix('archive')}restore",
                       headers=platform.headers, timeout=30).raise_for_status()
    for call in rebuilds:
        check(*call)
    assert not failures, f"{len(failures)} wrong answers:\n" + "\n".join(failures)


PATH_VARIANTS = {  # what replaces the project segment (or, without one, the last segment); more
    # spellings of each (upper case, backslash, NUL...) are in test_paths.py and test_path_attacks.py
    "dot segments": lambda seg: f"{MINE}/%2e%2e/{OTHER}",
    "encoded slash": lambda seg: f"{MINE}/..%2f{OTHER}",
    "double encoding": lambda seg: f"{MINE}/%252e%252e/{OTHER}",
    "encoded question mark": lambda seg: f"{seg}%3f",
    "encoded hash": lambda seg: f"{seg}%23",
}


def test_every_route_refuses_path_variants_before_routing(platform: Platform, callers: dict[str, Who]) -> None:
    """Each route, its path bent the ways that walked around the roles (``..`` into another
    project, an encoded ``?`` that hid the last segment), is a 400 for any caller, and a trailing
    slash is the route itself (the same answer)."""
    routes = _service_routes(platform) + _gateway_routes(platform)
    editor = {"Authorization": f"Bearer {callers['editor'].token}"}
    failures: list[str] = []
    before = stream_last_seq(platform)

    def variant_answers(route: tuple[str, str, str]) -> None:
        method, template, requirement = route
        path = _concrete(template, MINE)
        segments = path.split("/")
        at = segments.index(MINE) if "{project}" in template else len(segments) - 1
        body = {} if method in ("POST", "PUT", "PATCH") else None
        for name, bend in PATH_VARIANTS.items():
            bent = "/".join([*segments[:at], bend(segments[at]), *segments[at + 1:]])
            resp = loopback.request(method, f"{platform.gateway}{bent}", headers=editor, json=body, timeout=30)
            if resp.status_code != 400:
                failures.append(f"{name:22} {method:6} {bent}: {resp.status_code} {resp.text[:100]}")
        if method == "GET" and not template.endswith("/events/stream"):
            plain = loopback.get(f"{platform.gateway}{path}", headers=editor, timeout=30)
            slashed = loopback.get(f"{platform.gateway}{path}/", headers=editor, timeout=30)
            if slashed.status_code != plain.status_code:
                failures.append(f"trailing slash GET {path}/: {slashed.status_code}, without {plain.status_code}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(variant_answers, routes))
    assert stream_last_seq(platform) == before, "a bent path changed something"
    assert not failures, f"{len(failures)} wrong answers:\n" + "\n".join(failures)


def test_a_service_refuses_requests_that_do_not_come_from_the_gateway(platform: Platform) -> None:
    url = f"{platform.service_url('registry')}/projects"
    assert loopback.get(url, timeout=10).status_code == 401
    forged = {"X-Cairn-Actor": "admin:x", "X-Cairn-Projects": "*",
              "X-Cairn-Identity": "gateway.eyJ1IjoiYWRtaW4ifQ.AAAA"}
    resp = loopback.post(url, json={"name": "forged"}, headers=forged, timeout=10)
    assert resp.status_code == 401, resp.text
    other_key = Signer(b"\0" * 32, "gateway").internal()
    assert loopback.post(url, json={"name": "forged"}, headers=other_key, timeout=10).status_code == 401
    assert loopback.get(f"{platform.service_url('registry')}/healthz", timeout=10).status_code == 200
    listing = loopback.get(f"{platform.gateway}/api/v1/registry/projects", headers=platform.headers, timeout=10).json()
    assert "forged" not in [p["name"] for p in listing["projects"]]


def test_an_identity_header_from_a_client_is_not_passed_on(platform: Platform, callers: dict[str, Who]) -> None:
    """A viewer who sends a site admin's signed identity (e.g. one seen in a log) stays a viewer."""
    signed = Signer(load_service_key(platform.root / "data"), "gateway").internal()
    headers = {"Authorization": f"Bearer {callers['viewer'].token}", **signed}
    resp = loopback.post(f"{platform.gateway}/api/v1/registry/projects/{MINE}/runs", json={}, headers=headers,
                      timeout=10)
    assert resp.status_code == 403, resp.text


def test_the_service_key_file_is_readable_only_by_its_owner(platform: Platform) -> None:
    path = platform.root / "data" / "secrets" / "service.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o077 == 0
