"""The permission matrix: every route x {anonymous, viewer, editor, admin, other project's admin}.
A denied request changes nothing."""

from __future__ import annotations

import itertools

import httpx
import loopback
import pytest

from model_helpers import push_model_folder
from platform_harness import Platform, stream_last_seq

ROLES = ["anonymous", "viewer", "editor", "admin", "outsider"]
RANK = {"viewer": 1, "editor": 2, "admin": 3}
_n = itertools.count()


@pytest.fixture(scope="module")
def world(platform: Platform) -> dict:
    """A project with a run, a model version and one member per role; an outsider project."""
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    tokens = {"anonymous": None}
    for user in ("viewer", "editor", "admin", "outsider"):
        tokens[user] = admin.post("/tokens", json={"user": f"{user}-u"}).json()["token"]
    admin.post("/registry/projects", json={"name": "perm"}).raise_for_status()
    admin.post("/registry/projects", json={"name": "perm-other"}).raise_for_status()
    for user in ("viewer", "editor", "admin"):
        admin.post("/projects/perm/members", json={"user": f"{user}-u", "role": user}).raise_for_status()
    admin.post("/projects/perm-other/members", json={"user": "outsider-u", "role": "admin"}).raise_for_status()
    run = admin.post("/registry/projects/perm/runs", json={}).json()
    admin.post("/registry/projects/perm/models", json={"name": "m"}).raise_for_status()
    admin.post("/registry/projects/perm/models/m/versions",
               json={"run_id": run["id"], "artifact_digest": push_model_folder(platform.gateway, platform.headers, "perm")},
               ).raise_for_status()
    return {"tokens": tokens, "run": run["id"], "admin": admin}


def _routes(world: dict) -> list[tuple[str, str, object, str]]:
    r = world["run"]
    return [
        ("GET", "/registry/projects/perm", None, "viewer"),
        ("GET", "/registry/projects/perm/runs", None, "viewer"),
        ("POST", "/registry/projects/perm/runs/search", {}, "viewer"),
        ("GET", f"/registry/projects/perm/runs/{r}", None, "viewer"),
        ("GET", "/registry/projects/perm/models/m/versions", None, "viewer"),
        ("GET", "/projects/perm/members", None, "viewer"),
        ("POST", "/registry/projects/perm/runs", {}, "editor"),
        ("PUT", f"/registry/projects/perm/runs/{r}/tags/k", {"value": "v"}, "editor"),
        ("POST", f"/registry/projects/perm/runs/{r}/params", "fresh-param", "editor"),
        ("PATCH", f"/registry/projects/perm/runs/{r}", "fresh-name", "editor"),
        ("POST", "/registry/projects/perm/experiments", "fresh-experiment", "editor"),
        ("PUT", f"/registry/projects/perm/runs/{r}/environment", "fresh-seed", "editor"),
        ("GET", f"/registry/projects/perm/runs/{r}/environment", None, "viewer"),
        ("GET", f"/registry/runs/diff?a={r}&b={r}", None, "viewer"),
        ("PUT", "/registry/projects/perm/models/m/aliases/staging", {"version": 1}, "editor"),
        ("PUT", "/registry/projects/perm/models/m/aliases/production", {"version": 1}, "admin"),
        ("DELETE", f"/registry/projects/perm/runs/{r}/tags/gone", "tag-first", "admin"),
        ("POST", f"/registry/projects/perm/runs/{r}/archive", None, "admin"),
        ("POST", f"/registry/projects/perm/runs/{r}/restore", None, "admin"),
        ("POST", "/projects/perm/members", {"user": "someone", "role": "viewer"}, "admin"),
        ("GET", "/audit?project=perm", None, "admin"),
        ("POST", "/projects/perm/webhooks", {"url": "http://127.0.0.1:9/x", "types": ["run.*"]}, "admin"),
        ("GET", "/registry/admin/content-hash", None, "site-admin"),
        ("GET", "/audit", None, "site-admin"),
    ]


def _expected(role: str, required: str, path: str) -> int:
    if role == "anonymous":
        return 401
    if required == "site-admin":
        return 403
    if role == "outsider":
        return 404
    return 200 if RANK[role] >= RANK[required] else 403


def test_permission_matrix(platform: Platform, world: dict) -> None:
    failures = []
    for method, path, body, required in _routes(world):
        for role in ROLES:
            if body == "tag-first":
                world["admin"].put(f"/registry/projects/perm/runs/{world['run']}/tags/gone", json={"value": "x"})
            payload = {"fresh-param": {"params": {f"p{next(_n)}": 1}}, "fresh-name": {"name": f"n{next(_n)}"},
                       "fresh-experiment": {"name": f"e{next(_n)}"}, "tag-first": None,
                       "fresh-seed": {"seeds": {f"s{next(_n)}": 1}}}.get(body, body) \
                if isinstance(body, str) else body
            token = world["tokens"][role]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            before = stream_last_seq(platform)
            resp = loopback.request(method, f"{platform.gateway}/api/v1{path}", json=payload, headers=headers, timeout=30)
            want = _expected(role, required, path)
            got = resp.status_code if resp.status_code >= 300 else 200
            if got != want:
                failures.append(f"{role:9} {method:6} {path}: {resp.status_code} (want {want}) {resp.text[:120]}")
            if got >= 400 and stream_last_seq(platform) != before:
                failures.append(f"{role:9} {method:6} {path}: denied but the log grew")
    assert not failures, "\n".join(failures)


def test_project_list_shows_only_my_projects(platform: Platform, world: dict) -> None:
    resp = loopback.get(f"{platform.gateway}/api/v1/registry/projects",
                     headers={"Authorization": f"Bearer {world['tokens']['outsider']}"})
    assert [p["name"] for p in resp.json()["projects"]] == ["perm-other"]


def test_creator_becomes_project_admin(platform: Platform, world: dict) -> None:
    headers = {"Authorization": f"Bearer {world['tokens']['viewer']}"}
    assert loopback.post(f"{platform.gateway}/api/v1/registry/projects", json={"name": "mine"},
                      headers=headers).status_code == 201
    members = loopback.get(f"{platform.gateway}/api/v1/projects/mine/members", headers=headers).json()["members"]
    assert [(m["user"], m["role"]) for m in members] == [("viewer-u", "admin")]


def test_actor_and_request_id_are_recorded(platform: Platform, world: dict) -> None:
    headers = {"Authorization": f"Bearer {world['tokens']['editor']}", "X-Request-Id": "req-42"}
    loopback.put(f"{platform.gateway}/api/v1/registry/projects/perm/runs/{world['run']}/tags/who",
              json={"value": "me"}, headers=headers).raise_for_status()
    page = world["admin"].get("/audit", params={"project": "perm", "actor": "editor-u", "type": "run.tag_set"}).json()
    last = page["events"][-1]
    assert last["actor"].startswith("editor-u:") and last["correlation_id"] == "req-42"
    assert last["data"] == {"key": "who", "value": "me"}
