"""MLflow's registry behaviour through Cairn: search syntax, tag deletion, any version source,
deletion flows. Raw MLflow REST calls through the gateway, plus the real client where it adds
something of its own (the prompt clause of ``search_registered_models``). Each test has a project."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from cairn.kernel.errors import InvalidInput
from cairn.serving.package import held_digest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture()
def project(platform: Platform) -> str:
    name = f"reg-{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/registry", headers=platform.headers) as cairn:
        assert cairn.post("/projects", json={"name": name}).status_code == 201
    return name


@pytest.fixture()
def mlflow(platform: Platform, project: str) -> Iterator[httpx.Client]:
    """MLflow's REST API in the test's project."""
    with httpx.Client(base_url=f"{platform.gateway}/mlflow/{project}/api/2.0/mlflow",
                      headers=platform.headers, timeout=60) as http:
        yield http


@pytest.fixture()
def cairn(platform: Platform, project: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/registry/projects/{project}",
                      headers=platform.headers, timeout=60) as http:
        yield http


def _ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def _version(mlflow: httpx.Client, name: str, source: str, run_id: str | None = None, **extra: object) -> dict:
    body = {"name": name, "source": source, **({"run_id": run_id} if run_id else {}), **extra}
    return _ok(mlflow.post("/model-versions/create", json=body))["model_version"]


def test_client_search_with_prompt_clause_filters_orders_and_pages(platform: Platform, project: str,
                                                                  run_mlflow) -> None:
    out = run_mlflow("""
        import json
        from mlflow import MlflowClient
        c = MlflowClient()
        for i in range(5):
            c.create_registered_model(f"clf-{i}", tags={"team": "a" if i % 2 else "b"})
        c.create_registered_model("other")
        def names(**kw):
            got, token = [], None
            while True:
                page = c.search_registered_models(page_token=token, **kw)
                got += [m.name for m in page]
                token = page.token
                if not token:
                    return got
        print(json.dumps({
            "all": names(),
            "like": names(filter_string="name LIKE 'clf-%'", max_results=2),
            "tag_and_name": names(filter_string="tags.team = 'a' AND name != 'clf-3'"),
            "ilike_desc": names(filter_string="name ILIKE 'CLF%'", order_by=["name DESC"], max_results=3),
        }))
    """, uri=f"{platform.gateway}/mlflow/{project}").result
    assert out["all"] == ["clf-0", "clf-1", "clf-2", "clf-3", "clf-4", "other"]
    assert out["like"] == ["clf-0", "clf-1", "clf-2", "clf-3", "clf-4"]
    assert out["tag_and_name"] == ["clf-1"]
    assert out["ilike_desc"] == ["clf-4", "clf-3", "clf-2", "clf-1", "clf-0"]


def test_bad_search_input_is_invalid_parameter_value(mlflow: httpx.Client) -> None:
    for params in ({"filter": "description = 'x'"}, {"filter": "name = unquoted"},
                   {"max_results": "1001"}, {"order_by": "size DESC"}):
        resp = mlflow.get("/registered-models/search", params=params)
        assert resp.status_code == 400, params
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    resp = mlflow.get("/model-versions/search", params={"filter": "run_id LIKE 'x%'"})
    assert resp.status_code == 400 and "run_id" in resp.json()["message"]


def test_model_and_version_tags_can_be_deleted(mlflow: httpx.Client, cairn: httpx.Client) -> None:
    _ok(mlflow.post("/registered-models/create", json={"name": "tagged", "tags": [
        {"key": "keep", "value": "1"}, {"key": "drop", "value": "2"}]}))
    _version(mlflow, "tagged", "runs:/run_id/model", "run_id", tags=[{"key": "drop", "value": "x"},
                                                                     {"key": "keep", "value": "y"}])
    _ok(mlflow.request("DELETE", "/registered-models/delete-tag", json={"name": "tagged", "key": "drop"}))
    _ok(mlflow.request("DELETE", "/model-versions/delete-tag", json={"name": "tagged", "version": "1", "key": "drop"}))
    model = _ok(mlflow.get("/registered-models/get", params={"name": "tagged"}))["registered_model"]
    version = _ok(mlflow.get("/model-versions/get", params={"name": "tagged", "version": "1"}))["model_version"]
    assert model["tags"] == [{"key": "keep", "value": "1"}]
    assert version["tags"] == [{"key": "keep", "value": "y"}]
    assert cairn.get("/models/tagged").json()["tags"] == {"keep": "1"}


def test_unresolvable_source_is_a_version_without_files(mlflow: httpx.Client, cairn: httpx.Client) -> None:
    _ok(mlflow.post("/registered-models/create", json={"name": "ghost"}))
    v = _version(mlflow, "ghost", "runs:/run_id/model", "run_id_1")
    assert (v["version"], v["source"], v["run_id"]) == ("1", "runs:/run_id/model", "run_id_1")
    uri = _ok(mlflow.get("/model-versions/get-download-uri", params={"name": "ghost", "version": "1"}))
    assert uri["artifact_uri"] == "runs:/run_id/model"
    record = cairn.get("/models/ghost/versions/1").json()
    assert record["artifact_digest"] is None
    assert record["files_unavailable"]["source"] == "runs:/run_id/model"
    assert "run 'run_id'" in record["files_unavailable"]["reason"]
    with pytest.raises(InvalidInput, match="whose files Cairn does not hold"):
        held_digest(record)  # serving refuses it instead of fetching nothing


def test_local_paths_are_refused_and_never_read(mlflow: httpx.Client, cairn: httpx.Client, tmp_path) -> None:
    secret = tmp_path / "model"
    secret.mkdir()
    (secret / "MLmodel").write_text("flavors: {}")
    _ok(mlflow.post("/registered-models/create", json={"name": "local"}))
    for source in (str(secret), secret.as_uri(), "model", "C:\\models\\m"):
        resp = mlflow.post("/model-versions/create", json={"name": "local", "source": source, "run_id": "r1"})
        assert resp.status_code == 400, source
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "To use a local path as a model version source" in resp.json()["message"]
    # naming a logged model does not make a local source acceptable (MLflow refuses it too)
    model = _ok(mlflow.post("/logged-models", json={"experiment_id": "0", "name": "lm"}))["model"]["info"]
    resp = mlflow.post("/model-versions/create", json={"name": "local", "source": secret.as_uri(),
                                                       "model_id": model["model_id"]})
    assert resp.status_code == 400 and "To use a local path" in resp.json()["message"]
    assert cairn.get("/models/local").json()["latest_version"] is None


@pytest.mark.parametrize("source", ["mlflow-artifacts://host:9000/models/../../../", "runs:/x/a/../../b",
                                    "s3a://bucket/a/..%2f..%2fb", "mlflow-artifacts:/models/artifact%00"])
def test_sources_with_dot_segments_or_control_characters_change_nothing(mlflow: httpx.Client, cairn: httpx.Client,
                                                                         source: str) -> None:
    _ok(mlflow.post("/registered-models/create", json={"name": "guarded"}))
    resp = mlflow.post("/model-versions/create", json={"name": "guarded", "source": source, "run_id": "r"})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Invalid model version source" in resp.json()["message"]
    assert cairn.get("/models/guarded").json()["latest_version"] is None


def test_version_search_orders_filters_and_pages_as_mlflow(mlflow: httpx.Client) -> None:
    for name in ("a", "b"):
        _ok(mlflow.post("/registered-models/create", json={"name": name}))
    made = [_version(mlflow, n, f"runs:/run_{i}/model", f"run_{i}") for i, n in enumerate("abab")]

    def search(**params: object) -> list[tuple[str, str]]:
        got, token = [], None
        while True:
            page = _ok(mlflow.get("/model-versions/search", params={**params, **({"page_token": token} if token else {})}))
            got += [(v["name"], v["version"]) for v in page.get("model_versions", [])]
            token = page.get("next_page_token")
            if not token:
                return got

    newest_first = [(v["name"], v["version"]) for v in reversed(made)]
    assert search(max_results=1) == newest_first
    assert search(order_by="version_number DESC") == [("a", "2"), ("b", "2"), ("a", "1"), ("b", "1")]
    assert search(filter="run_id IN ('run_0', 'run_3')") == [("b", "2"), ("a", "1")]
    assert search(filter="name = 'a' AND source_path = 'runs:/run_2/model'") == [("a", "2")]


def test_deleted_versions_and_models_are_gone_for_mlflow(mlflow: httpx.Client, cairn: httpx.Client) -> None:
    _ok(mlflow.post("/registered-models/create", json={"name": "gone"}))
    for _ in range(2):
        _version(mlflow, "gone", "runs:/run_id/model", "run_id")
    _ok(mlflow.post("/model-versions/transition-stage", json={"name": "gone", "version": "1", "stage": "Archived"}))
    _ok(mlflow.request("DELETE", "/model-versions/delete", json={"name": "gone", "version": "2"}))
    resp = mlflow.get("/model-versions/get", params={"name": "gone", "version": "2"})
    assert resp.status_code == 404 and "Model Version (name=gone, version=2) not found" in resp.json()["message"]
    latest = _ok(mlflow.post("/registered-models/get-latest-versions", json={"name": "gone"}))["model_versions"]
    assert [(v["version"], v["current_stage"]) for v in latest] == [("1", "Archived")]
    assert _version(mlflow, "gone", "runs:/run_id/model", "run_id")["version"] == "3"  # numbers never reused

    _ok(mlflow.request("DELETE", "/registered-models/delete", json={"name": "gone"}))
    resp = mlflow.get("/registered-models/get", params={"name": "gone"})
    assert resp.status_code == 404 and "Registered Model with name=gone not found" in resp.json()["message"]
    _ok(mlflow.post("/registered-models/create", json={"name": "gone"}))  # the name is free again
    kept = [m for m in cairn.get("/models", params={"include_archived": "true"}).json()["models"]
            if m["name"].startswith("gone.deleted-")]
    assert len(kept) == 1 and kept[0]["archived"] and kept[0]["latest_version"] == 3


def test_copy_model_version_keeps_the_models_uri_and_resolves_the_download(mlflow: httpx.Client) -> None:
    _ok(mlflow.post("/registered-models/create", json={"name": "src"}))
    _version(mlflow, "src", "runs:/run_id/model", "run_id_1")
    copy = _version(mlflow, "src", "models:/src/1", "run_id_1")
    assert copy["source"] == "models:/src/1"
    uri = _ok(mlflow.get("/model-versions/get-download-uri", params={"name": "src", "version": copy["version"]}))
    assert uri["artifact_uri"] == "runs:/run_id/model"


def test_a_stage_change_updates_the_version_and_its_model_but_a_description_edit_only_the_version(
        mlflow: httpx.Client) -> None:
    _ok(mlflow.post("/registered-models/create", json={"name": "staged"}))
    created = _version(mlflow, "staged", "runs:/run_id/model", "run_id")

    def state() -> tuple[int, int]:
        model = _ok(mlflow.get("/registered-models/get", params={"name": "staged"}))["registered_model"]
        version = _ok(mlflow.get("/model-versions/get", params={"name": "staged", "version": "1"}))["model_version"]
        return int(model["last_updated_timestamp"]), int(version["last_updated_timestamp"])

    _ok(mlflow.post("/model-versions/transition-stage", json={"name": "staged", "version": "1", "stage": "Staging"}))
    model_time, version_time = state()
    assert model_time == version_time >= int(created["last_updated_timestamp"])
    _ok(mlflow.patch("/model-versions/update", json={"name": "staged", "version": "1", "description": "d"}))
    assert state()[0] == model_time


def test_versions_from_a_logged_model_are_listed_in_its_model_versions_tag(mlflow: httpx.Client) -> None:
    run = _ok(mlflow.post("/runs/create", json={"experiment_id": "0"}))["run"]["info"]["run_id"]
    model = _ok(mlflow.post("/logged-models", json={"experiment_id": "0", "source_run_id": run}))["model"]["info"]
    _ok(mlflow.post("/registered-models/create", json={"name": "from-logged"}))
    for _ in range(2):
        _version(mlflow, "from-logged", model["artifact_uri"], model_id=model["model_id"])
    tags = _ok(mlflow.get(f"/logged-models/{model['model_id']}"))["model"]["info"]["tags"]
    assert {t["key"]: t["value"] for t in tags}["mlflow.modelVersions"] == (
        '[{"name": "from-logged", "version": 1}, {"name": "from-logged", "version": 2}]')
