"""Every command path of the registry through the gateway, including bad input."""

from __future__ import annotations

import httpx
import pytest

from model_helpers import push_model_folder
from platform_harness import Platform, stream_last_seq

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py



def _ok(resp: httpx.Response, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json()


def _error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["code"] == code
    assert body["message"]
    return body


def test_project_lifecycle(api: httpx.Client, project: str) -> None:
    assert _ok(api.get(f"/projects/{project}"))["name"] == project
    assert _ok(api.patch(f"/projects/{project}", json={"description": "d"}))["description"] == "d"
    assert _ok(api.post(f"/projects/{project}/archive"))["archived"] is True
    assert project not in [p["name"] for p in _ok(api.get("/projects"))["projects"]]
    assert project in [p["name"] for p in _ok(api.get("/projects", params={"include_archived": True}))["projects"]]
    assert _ok(api.post(f"/projects/{project}/restore"))["archived"] is False
    _error(api.post("/projects", json={"name": project}), 409, "already_exists")


def test_experiment_lifecycle(api: httpx.Client, project: str) -> None:
    names = [e["name"] for e in _ok(api.get(f"/projects/{project}/experiments"))["experiments"]]
    assert names == ["default"]
    exp = _ok(api.post(f"/projects/{project}/experiments", json={"name": "baseline"}), 201)
    _error(api.post(f"/projects/{project}/experiments", json={"name": "baseline"}), 409, "already_exists")
    renamed = _ok(api.patch(f"/projects/{project}/experiments/{exp['id']}", json={"name": "base2"}))
    assert renamed["name"] == "base2"
    assert _ok(api.put(f"/projects/{project}/experiments/{exp['id']}/tags/team", json={"value": "cv"}))["tags"] == {"team": "cv"}
    assert _ok(api.post(f"/projects/{project}/experiments/{exp['id']}/archive"))["archived"] is True
    assert _ok(api.post(f"/projects/{project}/experiments/{exp['id']}/restore"))["archived"] is False
    found = _ok(api.get(f"/projects/{project}/experiments", params={"name": "base2"}))["experiments"]
    assert [e["id"] for e in found] == [exp["id"]]


def test_run_lifecycle(api: httpx.Client, project: str) -> None:
    run = _ok(api.post(f"/projects/{project}/runs", json={
        "name": "r1", "params": {"lr": 0.1, "layers": 3, "amp": True}, "tags": {"team": "cv"}, "start": False}), 201)
    assert run["status"] == "scheduled" and run["params"] == {"lr": "0.1", "layers": "3", "amp": "true"}
    base = f"/projects/{project}/runs/{run['id']}"
    assert _ok(api.post(f"{base}/start"))["status"] == "running"
    assert _ok(api.post(f"{base}/params", json={"params": {"bs": 32, "lr": 0.1}}))["params"]["bs"] == "32"
    assert _ok(api.put(f"{base}/tags/stage", json={"value": "eval"}))["tags"] == {"team": "cv", "stage": "eval"}
    assert _ok(api.delete(f"{base}/tags/stage"))["tags"] == {"team": "cv"}
    updated = _ok(api.patch(base, json={"name": "r1b", "description": "notes here"}))
    assert (updated["name"], updated["description"]) == ("r1b", "notes here")
    done = _ok(api.post(f"{base}/finish", json={"status": "failed", "message": "OOM"}))
    assert (done["status"], done["status_message"]) == ("failed", "OOM") and done["ended_at"]
    _error(api.post(f"{base}/finish", json={"status": "finished"}), 409, "conflict")
    _error(api.post(f"{base}/start"), 409, "conflict")
    assert _ok(api.post(f"{base}/archive"))["archived"] is True
    assert _ok(api.post(f"{base}/restore"))["archived"] is False


def test_run_in_named_experiment(api: httpx.Client, project: str) -> None:
    exp = _ok(api.post(f"/projects/{project}/experiments", json={"name": "sweep"}), 201)
    run = _ok(api.post(f"/projects/{project}/runs", json={"experiment": "sweep"}), 201)
    assert run["experiment_id"] == exp["id"] and run["status"] == "running"
    _error(api.post(f"/projects/{project}/runs", json={"experiment": "nope"}), 404, "not_found")
    _error(api.post(f"/projects/{project}/runs", json={"experiment_id": "nope"}), 404, "not_found")


def test_model_versions_and_aliases(api: httpx.Client, project: str, platform: Platform) -> None:
    run = _ok(api.post(f"/projects/{project}/runs", json={}), 201)
    model = _ok(api.post(f"/projects/{project}/models", json={"name": "resnet"}), 201)
    assert model["latest_version"] is None
    _error(api.post(f"/projects/{project}/models", json={"name": "resnet"}), 409, "already_exists")
    base = f"/projects/{project}/models/resnet"
    first, second = (push_model_folder(platform.gateway, platform.headers, project, label) for label in ("v1", "v2"))
    v1 = _ok(api.post(f"{base}/versions", json={"run_id": run["id"], "artifact_digest": first}), 201)
    v2 = _ok(api.post(f"{base}/versions", json={"run_id": run["id"], "artifact_digest": second}), 201)
    assert (v1["version"], v2["version"]) == (1, 2)
    assert _ok(api.put(f"{base}/aliases/staging", json={"version": 1}))["aliases"] == ["staging"]
    assert _ok(api.put(f"{base}/aliases/staging", json={"version": 2}))["version"] == 2
    assert _ok(api.get(f"{base}/aliases/staging"))["version"] == 2
    history = _ok(api.get(f"{base}/aliases/staging/history"))["history"]
    assert [(h["action"], h["version"], h["previous_version"]) for h in history] == [("set", 1, None), ("set", 2, 1)]
    assert api.delete(f"{base}/aliases/staging").status_code == 204
    _error(api.get(f"{base}/aliases/staging"), 404, "not_found")
    _error(api.delete(f"{base}/aliases/staging"), 404, "not_found")
    assert _ok(api.patch(f"{base}/versions/1", json={"description": "first"}))["description"] == "first"
    assert _ok(api.put(f"{base}/versions/1/tags/acc", json={"value": "0.9"}))["tags"] == {"acc": "0.9"}
    assert _ok(api.post(f"{base}/versions/1/archive"))["archived"] is True
    _error(api.put(f"{base}/aliases/production", json={"version": 1}), 409, "conflict")
    assert _ok(api.post(f"{base}/versions/1/restore"))["archived"] is False
    assert [v["version"] for v in _ok(api.get(f"{base}/versions"))["versions"]] == [1, 2]
    renamed = _ok(api.patch(base, json={"name": "resnet50", "description": "d"}))
    assert renamed["name"] == "resnet50"
    _error(api.get(base), 404, "not_found")
    assert _ok(api.put(f"/projects/{project}/models/resnet50/tags/task", json={"value": "cls"}))["tags"] == {"task": "cls"}
    assert _ok(api.post(f"/projects/{project}/models/resnet50/archive"))["archived"] is True
    assert _ok(api.post(f"/projects/{project}/models/resnet50/restore"))["archived"] is False


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/projects/nope", None),
    ("get", "/projects/{p}/runs/nope", None),
    ("post", "/projects/{p}/runs/nope/params", {"params": {"a": 1}}),
    ("put", "/projects/{p}/runs/nope/tags/a", {"value": "x"}),
    ("get", "/projects/{p}/experiments/nope", None),
    ("get", "/projects/{p}/models/nope", None),
    ("get", "/projects/{p}/models/nope/versions/1", None),
    ("post", "/projects/nope/experiments", {"name": "x"}),
    ("post", "/projects/nope/runs", {}),
    ("post", "/projects/nope/models", {"name": "m"}),
])
def test_unknown_ids_are_404_and_write_nothing(api: httpx.Client, project: str, platform: Platform,
                                               method: str, path: str, body: dict | None) -> None:
    before = stream_last_seq(platform)
    resp = api.request(method.upper(), path.format(p=project), json=body)
    error = _error(resp, 404, "not_found")
    assert stream_last_seq(platform) == before
    if "/projects/nope/" in path:  # the caller (a site admin) passes every membership check
        assert error["message"].startswith("project 'nope' does not exist"), error


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/projects", {"name": "Bad Name!"}, "name"),
    ("/projects", {"name": "ok", "unexpected": 1}, "unexpected"),
    ("/projects/{p}/runs", {"params": {"lr": [1, 2]}}, "params.lr"),
    ("/projects/{p}/runs", {"params": {"bad key!": 1}}, "params.bad key!: the key"),
    ("/projects/{p}/runs", {"name": ""}, "name"),
    ("/projects/{p}/runs/{r}/finish", {"status": "exploded"}, "status"),
    ("/projects/{p}/runs/{r}/params", {"params": {}}, "params"),
    ("/projects/{p}/models/m/versions", {"run_id": "{r}", "artifact_digest": "xyz"}, "artifact_digest"),
])
def test_invalid_payloads_are_422_naming_the_field(api: httpx.Client, project: str, platform: Platform,
                                                   path: str, body: dict, field: str) -> None:
    run = _ok(api.post(f"/projects/{project}/runs", json={}), 201)
    _ok(api.post(f"/projects/{project}/models", json={"name": "m"}), 201)
    body = {k: (v.format(r=run["id"]) if isinstance(v, str) else v) for k, v in body.items()}
    before = stream_last_seq(platform)
    resp = api.post(path.format(p=project, r=run["id"]), json=body)
    err = _error(resp, 422, "invalid_input")
    assert field in err["message"], err
    assert stream_last_seq(platform) == before


def test_changing_an_immutable_param_is_409_and_writes_nothing(api: httpx.Client, project: str,
                                                               platform: Platform) -> None:
    run = _ok(api.post(f"/projects/{project}/runs", json={"params": {"lr": 0.1}}), 201)
    before = stream_last_seq(platform)
    err = _error(api.post(f"/projects/{project}/runs/{run['id']}/params", json={"params": {"lr": 0.2, "new": 1}}),
                 409, "conflict")
    assert "lr" in err["message"] and "immutable" in err["message"]
    assert stream_last_seq(platform) == before
    assert _ok(api.get(f"/projects/{project}/runs/{run['id']}"))["params"] == {"lr": "0.1"}
    # the same value again is accepted and appends nothing
    _ok(api.post(f"/projects/{project}/runs/{run['id']}/params", json={"params": {"lr": 0.1}}))
    assert stream_last_seq(platform) == before


def test_runs_of_another_project_are_not_found(api: httpx.Client, project: str) -> None:
    other = project + "-other"
    _ok(api.post("/projects", json={"name": other}), 201)
    run = _ok(api.post(f"/projects/{other}/runs", json={}), 201)
    _error(api.get(f"/projects/{project}/runs/{run['id']}"), 404, "not_found")
    _error(api.put(f"/projects/{project}/runs/{run['id']}/tags/a", json={"value": "b"}), 404, "not_found")


def test_malformed_json_is_422(api: httpx.Client, project: str) -> None:
    resp = api.post(f"/projects/{project}/runs", content=b"{not json", headers={"content-type": "application/json"})
    _error(resp, 422, "invalid_input")
