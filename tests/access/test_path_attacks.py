"""Regression tests for issue 17, items 1, 2, 3 and 8, on a real platform: paths that mean one
thing to the gateway and another to a service, and MLflow arguments pasted into service paths.
Each attack is refused and changes nothing (the event log does not grow; the target is as it was).

Attack requests go through http.client, which sends the request target byte for byte (httpx
would normalise some of them before they leave the test)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import httpx
import loopback
import pytest

from model_helpers import push_model_folder
from platform_harness import Platform, stream_last_seq

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

DOTS = ["%2e%2e", "%2E%2E", "%252e%252e", ".%2e", "%2e.", ".."]
SLASHED = ["..%2f", "..%2F", "..%252f", "..%5c", "..%5C", "..%255c"]


@pytest.fixture(scope="module")
def world(platform: Platform) -> Iterator[dict[str, Any]]:
    """Project pa-a (editor, viewer) and pa-b (nobody but the site admin), each with a run and a
    model whose version 1 is ``production``; pa-own belongs to an outsider (its creator)."""
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    tokens = {user: admin.post("/tokens", json={"user": f"pa-{user}"}).json()["token"]
              for user in ("editor", "viewer", "outsider")}
    for project in ("pa-a", "pa-b"):
        admin.post("/registry/projects", json={"name": project}).raise_for_status()
    admin.post("/projects/pa-a/members", json={"user": "pa-editor", "role": "editor"}).raise_for_status()
    admin.post("/projects/pa-a/members", json={"user": "pa-viewer", "role": "viewer"}).raise_for_status()
    runs = {}
    for project in ("pa-a", "pa-b"):
        run = admin.post(f"/registry/projects/{project}/runs", json={"tags": {"keep": "yes"}}).json()["id"]
        runs[project] = run
        models = f"/registry/projects/{project}/models"
        admin.post(models, json={"name": "m"}).raise_for_status()
        digest = push_model_folder(platform.gateway, platform.headers, project)
        for _ in (1, 2):
            admin.post(f"{models}/m/versions", json={"run_id": run, "artifact_digest": digest}).raise_for_status()
        for alias in ("production", "staging"):
            admin.put(f"{models}/m/aliases/{alias}", json={"version": 1}).raise_for_status()
        admin.put(f"{models}/m/tags/k", json={"value": "v"}).raise_for_status()
        admin.put(f"{models}/m/versions/1/tags/k", json={"value": "v"}).raise_for_status()
    outsider = {"Authorization": f"Bearer {tokens['outsider']}"}
    loopback.post(f"{platform.gateway}/api/v1/registry/projects", json={"name": "pa-own"},
               headers=outsider, timeout=30).raise_for_status()
    logged = loopback.post(f"{platform.gateway}/mlflow/pa-a/api/2.0/mlflow/logged-models", headers=platform.headers,
                        json={"source_run_id": runs["pa-a"], "name": "lm"}, timeout=30)
    logged.raise_for_status()
    yield {"admin": admin, "tokens": tokens, "runs": runs, "logged_model": logged.json()["model"]["info"]["model_id"]}
    admin.close()


def send(platform: Platform, method: str, target: str, token: str, body: Any = None) -> tuple[int, bytes]:
    """One request with exactly this request target."""
    conn = http.client.HTTPConnection("127.0.0.1", platform.ports["gateway"], timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, target, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def snapshot(world: dict[str, Any], project: str) -> dict[str, Any]:
    """What an attack on ``project`` could change: its runs, its model, version 1."""
    admin = world["admin"]
    base = f"/registry/projects/{project}"
    return {"runs": admin.post(f"{base}/runs/search", json={"include_archived": True}).json()["runs"],
            "model": admin.get(f"{base}/models/m").json(),
            "version": admin.get(f"{base}/models/m/versions/1").json()}


@pytest.fixture()
def unchanged(platform: Platform, world: dict[str, Any]) -> Iterator[None]:
    """The test's requests change nothing: no event is appended, pa-a and pa-b read the same."""
    before = stream_last_seq(platform), snapshot(world, "pa-a"), snapshot(world, "pa-b")
    yield
    assert (stream_last_seq(platform), snapshot(world, "pa-a"), snapshot(world, "pa-b")) == before


def assert_bad_path(status: int, body: bytes) -> None:
    assert status == 400, body
    assert json.loads(body)["error"]["code"] == "bad_request", body


# --- item 1: dot segments ------------------------------------------------------------------------

@pytest.mark.parametrize("dots", DOTS)
def test_an_editor_cannot_read_another_projects_run_through_dot_segments(
        platform: Platform, world: dict[str, Any], dots: str, unchanged: None) -> None:
    target = f"/api/v1/registry/projects/pa-a/{dots}/pa-b/runs/{world['runs']['pa-b']}"
    status, body = send(platform, "GET", target, world["tokens"]["editor"])
    assert_bad_path(status, body)
    assert b"dot segment" in body and world["runs"]["pa-b"].encode() not in body


@pytest.mark.parametrize("slashed", SLASHED)
def test_an_editor_cannot_read_another_projects_run_through_encoded_slashes(
        platform: Platform, world: dict[str, Any], slashed: str, unchanged: None) -> None:
    target = f"/api/v1/registry/projects/pa-a/{slashed}pa-b/runs/{world['runs']['pa-b']}"
    status, body = send(platform, "GET", target, world["tokens"]["editor"])
    assert_bad_path(status, body)
    assert world["runs"]["pa-b"].encode() not in body


def test_a_literal_backslash_is_refused(platform: Platform, world: dict[str, Any], unchanged: None) -> None:
    target = f"/api/v1/registry/projects/pa-a/..\\pa-b/runs/{world['runs']['pa-b']}"
    status, body = send(platform, "GET", target, world["tokens"]["editor"])
    assert status == 400 and world["runs"]["pa-b"].encode() not in body


@pytest.mark.parametrize("dots", DOTS)
def test_an_editor_cannot_create_a_run_in_another_project_through_dot_segments(
        platform: Platform, world: dict[str, Any], dots: str, unchanged: None) -> None:
    status, body = send(platform, "POST", f"/api/v1/registry/projects/pa-a/{dots}/pa-b/runs",
                        world["tokens"]["editor"], {"name": "planted"})
    assert_bad_path(status, body)


@pytest.mark.parametrize("target", [
    "/api/v1/registry/x/%2e%2e/admin/rebuild", "/api/v1/artifacts/x/%2e%2e/admin/gc",
    "/api/v1/registry/x/%252e%252e/admin/rebuild", "/api/v1/artifacts/x/..%2fadmin/gc",
    "/api/v1/registry/x/../admin/rebuild", "/api/v1/artifacts/x/%2E%2E/admin/gc"])
def test_an_editor_cannot_reach_admin_routes_through_dot_segments(
        platform: Platform, world: dict[str, Any], target: str, unchanged: None) -> None:
    assert_bad_path(*send(platform, "POST", target, world["tokens"]["editor"]))


@pytest.mark.parametrize("dots", ["%2e%2e", "%252e%252e"])
def test_an_outsider_cannot_archive_runs_or_delete_aliases_in_another_project_from_their_own(
        platform: Platform, world: dict[str, Any], dots: str, unchanged: None) -> None:
    token, run = world["tokens"]["outsider"], world["runs"]["pa-b"]
    assert_bad_path(*send(platform, "POST", f"/api/v1/registry/projects/pa-own/{dots}/pa-b/runs/{run}/archive", token))
    assert_bad_path(*send(platform, "DELETE",
                          f"/api/v1/registry/projects/pa-own/{dots}/pa-b/models/m/aliases/production", token))


# --- item 2: an encoded '?' or '#' (and control characters) --------------------------------------

def test_a_viewer_cannot_create_a_run_through_an_encoded_question_mark(
        platform: Platform, world: dict[str, Any], unchanged: None) -> None:
    for suffix in ("%3F", "%3f", "%253F"):
        assert_bad_path(*send(platform, "POST", f"/api/v1/registry/projects/pa-a/runs{suffix}/search",
                              world["tokens"]["viewer"], {}))


@pytest.mark.parametrize("suffix", ["%3F", "%3f", "%253F", "%23", "%2523", "%00", "%0a"])
def test_an_editor_cannot_move_production_through_an_encoded_suffix(
        platform: Platform, world: dict[str, Any], suffix: str, unchanged: None) -> None:
    assert_bad_path(*send(platform, "PUT", f"/api/v1/registry/projects/pa-a/models/m/aliases/production{suffix}",
                          world["tokens"]["editor"], {"version": 2}))


@pytest.mark.parametrize("action", ["archive", "restore"])
def test_an_editor_cannot_archive_or_restore_through_an_encoded_question_mark(
        platform: Platform, world: dict[str, Any], action: str, unchanged: None) -> None:
    run = world["runs"]["pa-a"]
    assert_bad_path(*send(platform, "POST", f"/api/v1/registry/projects/pa-a/runs/{run}/{action}%3F",
                          world["tokens"]["editor"]))
    assert_bad_path(*send(platform, "POST", f"/api/v1/registry/projects/pa-a/models/m/versions/1/{action}%3F",
                          world["tokens"]["editor"]))


def test_an_encoded_question_mark_is_refused_on_the_metrics_service_too(
        platform: Platform, world: dict[str, Any], unchanged: None) -> None:
    run = world["runs"]["pa-a"]
    assert_bad_path(*send(platform, "POST", f"/api/v1/metrics/projects/pa-a/runs/{run}/metrics%3F/search",
                          world["tokens"]["viewer"], {}))
    assert_bad_path(*send(platform, "GET", f"/api/v1/metrics/projects/pa-a/runs/{run}%3Fkey=x/metrics",
                          world["tokens"]["viewer"]))


def test_empty_segments_are_refused(platform: Platform, world: dict[str, Any], unchanged: None) -> None:
    assert_bad_path(*send(platform, "GET", f"/api/v1/registry/projects/pa-a//runs/{world['runs']['pa-a']}",
                          world["tokens"]["editor"]))
    assert_bad_path(*send(platform, "GET", "/api/v1/registry/projects/pa-a/runs//", world["tokens"]["editor"]))


def test_mlflow_routes_refuse_bad_paths_in_mlflows_shape(platform: Platform, world: dict[str, Any]) -> None:
    status, body = send(platform, "GET", "/mlflow/pa-a/api/2.0/mlflow/runs/%2e%2e/runs/get", world["tokens"]["editor"])
    assert status == 400 and json.loads(body)["error_code"] == "BAD_REQUEST"
    status, body = send(platform, "GET", f"/api/2.0/mlflow-artifacts/artifacts/pa-a/{world['runs']['pa-a']}"
                                         "/artifacts/%2e%2e/%2e%2e/x", world["tokens"]["editor"])
    assert status == 400 and json.loads(body)["error_code"] == "BAD_REQUEST"


# --- what still works: the checked path is forwarded exactly --------------------------------------

def test_a_trailing_slash_is_the_same_resource(platform: Platform, world: dict[str, Any]) -> None:
    run = world["runs"]["pa-a"]
    status, body = send(platform, "GET", f"/api/v1/registry/projects/pa-a/runs/{run}/", world["tokens"]["viewer"])
    assert status == 200 and json.loads(body)["id"] == run


def test_escaped_characters_reach_the_service_as_they_were_meant(platform: Platform, world: dict[str, Any]) -> None:
    run = world["runs"]["pa-b"]
    status, body = send(platform, "PUT", f"/api/v1/registry/projects/pa-b/runs/{run}/tags/my%20key%3Av2",
                        world["admin"].headers["Authorization"].removeprefix("Bearer "), {"value": "x"})
    assert status == 200, body
    assert world["admin"].get(f"/registry/projects/pa-b/runs/{run}").json()["tags"]["my key:v2"] == "x"


# --- item 3: MLflow arguments pasted into service paths ------------------------------------------

def mlflow(platform: Platform, token: str, method: str, endpoint: str, body: dict[str, Any]) -> httpx.Response:
    return loopback.request(method, f"{platform.gateway}/mlflow/pa-a/api/2.0/mlflow/{endpoint}", json=body,
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)


def assert_invalid(resp: httpx.Response, parameter: str) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE" and f"'{parameter}'" in resp.json()["message"]


@pytest.mark.parametrize("run_id", ["../../pa-b/runs/{b}", "{a}/../../../pa-b/runs/{b}", "{a}?x=1", "{a}\n",
                                    "{a}%2F..", "{a}#x"])
def test_mlflow_set_tag_cannot_reach_another_run(platform: Platform, world: dict[str, Any], run_id: str,
                                                 unchanged: None) -> None:
    run_id = run_id.format(a=world["runs"]["pa-a"], b=world["runs"]["pa-b"])
    resp = mlflow(platform, world["tokens"]["editor"], "POST", "runs/set-tag",
                  {"run_id": run_id, "key": "pwned", "value": "1"})
    assert_invalid(resp, "run_id")


@pytest.mark.parametrize("key", ["../../../pa-b/runs/x/tags/k", "k?x", "a/b", "..", "k\n", "k#"])
def test_mlflow_tag_keys_are_single_segments(platform: Platform, world: dict[str, Any], key: str,
                                             unchanged: None) -> None:
    resp = mlflow(platform, world["tokens"]["editor"], "POST", "runs/set-tag",
                  {"run_id": world["runs"]["pa-a"], "key": key, "value": "1"})
    assert_invalid(resp, "key")


@pytest.mark.parametrize("name", ["../../pa-b/models/m", "m/aliases/production?", "m/aliases/production",
                                  "..", "m?", "m\n"])
def test_mlflow_set_alias_cannot_reach_another_model_or_alias(platform: Platform, world: dict[str, Any], name: str,
                                                              unchanged: None) -> None:
    resp = mlflow(platform, world["tokens"]["editor"], "POST", "registered-models/alias",
                  {"name": name, "alias": "staging", "version": "2"})
    assert_invalid(resp, "name")


@pytest.mark.parametrize("alias", ["production?", "production%3F", "production/x", "production#", "staging\n"])
def test_mlflow_aliases_are_checked(platform: Platform, world: dict[str, Any], alias: str, unchanged: None) -> None:
    resp = mlflow(platform, world["tokens"]["editor"], "POST", "registered-models/alias",
                  {"name": "m", "alias": alias, "version": "2"})
    assert_invalid(resp, "alias")


def test_mlflow_artifact_listing_checks_the_run_in_the_path(platform: Platform, world: dict[str, Any]) -> None:
    for path in ("pa-a/../artifacts", "pa-a/x?y/artifacts", f"pa-a/{world['runs']['pa-a']}/artifacts/a//b"):
        resp = loopback.get(f"{platform.gateway}/api/2.0/mlflow-artifacts/artifacts", params={"path": path},
                         headers={"Authorization": f"Bearer {world['tokens']['editor']}"}, timeout=30)
        assert_invalid(resp, "path")


def test_mlflow_still_sets_tags_with_spaces_and_colons(platform: Platform, world: dict[str, Any]) -> None:
    run = world["runs"]["pa-a"]
    resp = mlflow(platform, world["tokens"]["editor"], "POST", "runs/set-tag",
                  {"run_id": run, "key": "note: first", "value": "ok"})
    assert resp.status_code == 200, resp.text
    assert world["admin"].get(f"/registry/projects/pa-a/runs/{run}").json()["tags"]["note: first"] == "ok"


# --- item 8: deletions through MLflow are admin-only ---------------------------------------------

def assert_denied(resp: httpx.Response) -> None:
    assert resp.status_code == 403, resp.text
    assert resp.json()["error_code"] == "PERMISSION_DENIED"


def test_an_editor_cannot_delete_a_run_tag_through_mlflow(platform: Platform, world: dict[str, Any],
                                                          unchanged: None) -> None:
    assert_denied(mlflow(platform, world["tokens"]["editor"], "POST", "runs/delete-tag",
                         {"run_id": world["runs"]["pa-a"], "key": "keep"}))


def test_an_editor_cannot_delete_an_alias_through_mlflow(platform: Platform, world: dict[str, Any],
                                                         unchanged: None) -> None:
    assert_denied(mlflow(platform, world["tokens"]["editor"], "DELETE", "registered-models/alias",
                         {"name": "m", "alias": "staging"}))


def test_an_editor_cannot_delete_model_or_version_tags_through_mlflow(platform: Platform, world: dict[str, Any],
                                                                      unchanged: None) -> None:
    editor = world["tokens"]["editor"]
    assert_denied(mlflow(platform, editor, "DELETE", "registered-models/delete-tag", {"name": "m", "key": "k"}))
    assert_denied(mlflow(platform, editor, "DELETE", "model-versions/delete-tag",
                         {"name": "m", "version": "1", "key": "k"}))


def test_an_editor_cannot_delete_a_logged_model_through_mlflow(platform: Platform, world: dict[str, Any],
                                                               unchanged: None) -> None:
    model_id = world["logged_model"]
    assert_denied(mlflow(platform, world["tokens"]["editor"], "DELETE", f"logged-models/{model_id}", {}))
    assert mlflow(platform, world["tokens"]["viewer"], "GET", f"logged-models/{model_id}", {}).status_code == 200
