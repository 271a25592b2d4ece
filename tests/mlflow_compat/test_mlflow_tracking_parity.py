"""Experiments, runs, search, validation and metric history answer as MLflow's server does (the
behaviour MLflow's own REST tests check), over raw HTTP through the gateway, one fresh project per
test (``/mlflow/<project>/...``), with Cairn's guarantees kept underneath: the actor stays the
token's, and a refused request appends nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from platform_harness import Platform, stream_last_seq

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture()
def ml(platform: Platform, project: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/mlflow/{project}/api/2.0/mlflow",
                      headers=platform.headers, timeout=30) as client:
        yield client


def _ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def _experiment(ml: httpx.Client, name: str, **extra: object) -> str:
    return _ok(ml.post("/experiments/create", json={"name": name, **extra}))["experiment_id"]


def _run(ml: httpx.Client, experiment_id: str, **extra: object) -> dict:
    return _ok(ml.post("/runs/create", json={"experiment_id": experiment_id, **extra}))["run"]


def _wait_history(ml: httpx.Client, run_id: str, key: str, count: int) -> list[dict]:
    """Metric points are readable once the metrics service has written them; wait, with a deadline."""
    deadline = time.monotonic() + 30
    while True:
        points = _ok(ml.get("/metrics/get-history", params={"run_id": run_id, "metric_key": key})).get("metrics", [])
        if len(points) >= count or time.monotonic() > deadline:
            return points
        time.sleep(0.05)


def test_default_experiment_is_mlflows_default(ml: httpx.Client) -> None:
    found = _ok(ml.get("/experiments/search"))["experiments"]
    assert [(e["experiment_id"], e["name"]) for e in found] == [("0", "Default")]
    assert _ok(ml.get("/experiments/get-by-name", params={"experiment_name": "Default"}))["experiment"][
        "experiment_id"] == "0"
    assert _run(ml, "0")["info"]["experiment_id"] == "0"
    assert _ok(ml.post("/runs/create", json={"experiment_id": 0}))["run"]["info"]["experiment_id"] == "0"
    resp = ml.post("/experiments/create", json={"name": "Default"})
    assert resp.status_code == 400 and resp.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"


def test_client_fields_are_kept_and_the_actor_stays_the_tokens(platform: Platform, project: str,
                                                               ml: httpx.Client) -> None:
    experiment_id = _experiment(ml, "kept", artifact_location="s3://bucket/where")
    assert _ok(ml.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"][
        "artifact_location"] == "s3://bucket/where"
    run = _run(ml, experiment_id, start_time=456, user_id="username", run_name="my name")
    run_id = run["info"]["run_id"]
    got = _ok(ml.get("/runs/get", params={"run_id": run_id}))["run"]
    assert got["info"]["start_time"] == 456 and got["info"]["user_id"] == "username"
    assert {"key": "mlflow.user", "value": "username"} in got["data"]["tags"]
    assert not any(t["key"].startswith("mlflow.cairn.") for t in got["data"]["tags"])
    _ok(ml.post("/runs/update", json={"run_id": run_id, "status": "FINISHED", "end_time": 789}))
    info = _ok(ml.get("/runs/get", params={"run_id": run_id}))["run"]["info"]
    assert info["status"] == "FINISHED" and info["end_time"] == 789
    cairn_run = httpx.get(f"{platform.gateway}/api/v1/registry/projects/{project}/runs/{run_id}",
                          headers=platform.headers).json()
    assert not cairn_run["created_by"].startswith("username")  # the audit log keeps the real actor


def test_experiment_tags_can_be_deleted(ml: httpx.Client) -> None:
    experiment_id = _experiment(ml, "tagged", tags=[{"key": "dataset", "value": "imagenet"}])
    _ok(ml.post("/experiments/delete-experiment-tag", json={"experiment_id": experiment_id, "key": "dataset"}))
    assert _ok(ml.get("/experiments/get", params={"experiment_id": experiment_id}))["experiment"]["tags"] == []
    resp = ml.post("/experiments/delete-experiment-tag", json={"experiment_id": experiment_id, "key": "dataset"})
    assert resp.status_code == 404 and resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize(("path", "payload", "message"), [
    ("/experiments/create", {"name": 123}, "Invalid value 123 for parameter 'name' supplied"),
    ("/experiments/create", {}, "Missing value for required parameter 'name'."),
    ("/experiments/create", {"name": "x", "artifact_location": 9.0},
     "Invalid value 9.0 for parameter 'artifact_location' supplied"),
    ("/experiments/create", {"name": "x", "tags": "5"}, "Invalid value \"5\" for parameter 'tags' supplied"),
    ("/runs/log-metric", {"run_id": 31, "key": "m", "value": 41, "timestamp": 59},
     "Invalid value 31 for parameter 'run_id' supplied"),
    ("/runs/log-metric", {"run_id": "RUN", "key": "m", "value": 1, "timestamp": 59, "step": "foo"},
     "Invalid value \"foo\" for parameter 'step' supplied"),
    ("/runs/log-metric", {"run_id": "RUN", "key": None, "value": 1, "timestamp": 59},
     "Missing value for required parameter 'key'"),
    ("/runs/log-metric", {"run_id": "RUN", "key": "m", "value": 1}, "Missing value for required parameter 'timestamp'"),
    ("/runs/log-parameter", {"run_id": "RUN", "key": 31, "value": "v"}, "Invalid value 31 for parameter 'key' supplied"),
    ("/runs/set-tag", {"run_id": "RUN", "key": "k", "value": 41}, "Invalid value 41 for parameter 'value' supplied"),
    ("/runs/log-batch", {"run_id": "RUN", "params": "foo"}, "Invalid value \"foo\" for parameter 'params' supplied"),
    ("/runs/log-batch", {"run_id": "RUN", "metrics": [{"key": "mae", "value": 2.5}]},
     "Missing value for required parameter 'metrics[0].timestamp'"),
    ("/runs/search", {"max_results": 123456789}, "Invalid value 123456789 for parameter 'max_results' supplied"),
])
def test_bad_arguments_are_refused_as_mlflow_refuses_them(platform: Platform, ml: httpx.Client, path: str,
                                                          payload: dict, message: str) -> None:
    run_id = _run(ml, "0")["info"]["run_id"]
    body = {k: (run_id if v == "RUN" else v) for k, v in payload.items()}
    before = stream_last_seq(platform)
    resp = ml.post(path, json=body)
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in resp.json()["message"]
    assert stream_last_seq(platform) == before  # refused before anything was appended


def test_run_search_breaks_ties_as_mlflow(ml: httpx.Client) -> None:
    experiment_id = _experiment(ml, "ties")
    ids = sorted(_run(ml, experiment_id, start_time=1)["info"]["run_id"] for _ in range(5))
    later = _run(ml, experiment_id, start_time=2)["info"]["run_id"]
    seen, token = [], None
    while True:
        page = _ok(ml.post("/runs/search", json={"experiment_ids": [experiment_id], "max_results": 2,
                                                  **({"page_token": token} if token else {})}))
        seen += [r["info"]["run_id"] for r in page["runs"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == [later, *ids]  # start_time DESC, then run_id ASC


def test_experiment_search_order_filter_and_pages(ml: httpx.Client) -> None:
    for name, tags in (("a", [{"key": "key", "value": "value"}]), ("ab", [{"key": "key", "value": "vaLue"}]),
                       ("Abc", [])):
        _experiment(ml, name, tags=tags)

    def names(**query: object) -> list[str]:
        return [e["name"] for e in _ok(ml.post("/experiments/search", json=query))["experiments"]]

    assert names() == ["Abc", "ab", "a", "Default"]
    assert names(filter="attribute.name != 'a'") == ["Abc", "ab", "Default"]
    assert names(filter="tag.key ILIKE '%alu%'") == ["ab", "a"]
    assert names(order_by=["name DESC"]) == ["ab", "a", "Default", "Abc"]
    first = _ok(ml.post("/experiments/search", json={"max_results": 2}))
    assert [e["name"] for e in first["experiments"]] == ["Abc", "ab"]
    assert names(max_results=2, page_token=first["next_page_token"]) == ["a", "Default"]


def test_metric_history_keeps_milliseconds_and_bulk_reads(ml: httpx.Client) -> None:
    run_id = _run(ml, "0")["info"]["run_id"]
    _ok(ml.post("/runs/log-batch", json={"run_id": run_id, "metrics": [
        {"key": "m", "value": float(i), "timestamp": 1001 + i, "step": i} for i in range(10)]}))
    points = _wait_history(ml, run_id, "m", 10)
    assert [p["timestamp"] for p in points] == [1001 + i for i in range(10)]
    bulk = _ok(ml.get("/metrics/get-history-bulk", params={"run_id": run_id, "metric_key": "m", "max_results": 2}))
    assert bulk["metrics"] == [{"key": "m", "value": 0.0, "timestamp": 1001, "step": 0, "run_id": run_id},
                               {"key": "m", "value": 1.0, "timestamp": 1002, "step": 1, "run_id": run_id}]
    sampled = _ok(ml.get("/metrics/get-history-bulk-interval",
                         params={"run_ids": run_id, "metric_key": "m", "max_results": 5}))
    assert [p["step"] for p in sampled["metrics"]] == [0, 2, 4, 6, 8, 9]


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/metrics/get-history-bulk", {"metric_key": "k"}, "GetMetricHistoryBulk request must specify at least one run_id"),
    ("/metrics/get-history-bulk", {"run_id": "r"}, "GetMetricHistoryBulk request must specify a metric_key"),
    ("/metrics/get-history-bulk-interval", {"metric_key": "k"}, "Missing value for required parameter 'run_ids'."),
    ("/metrics/get-history-bulk-interval", {"run_ids": "r", "metric_key": "k", "max_results": 0},
     "max_results must be between 1 and 2500"),
    ("/metrics/get-history-bulk-interval", {"run_ids": "r", "metric_key": "k", "start_step": 1},
     "If either start step or end step are specified, both must be specified."),
    ("/metrics/get-history-bulk-interval", {"run_ids": "r", "metric_key": "k", "start_step": 1, "end_step": 0},
     "end_step must be greater than start_step. "),
])
def test_bulk_reads_refuse_bad_requests(ml: httpx.Client, path: str, params: dict, message: str) -> None:
    resp = ml.get(path, params=params)
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in resp.json()["message"]


def test_search_datasets_and_promptlab_run(ml: httpx.Client) -> None:
    experiment_id = _experiment(ml, "inputs")
    run_id = _run(ml, experiment_id)["info"]["run_id"]
    _ok(ml.post("/runs/log-inputs", json={"run_id": run_id, "datasets": [{
        "dataset": {"name": "name1", "digest": "digest1", "source_type": "t", "source": "s"},
        "tags": [{"key": "mlflow.data.context", "value": "training"}]}]}))
    found = _ok(ml.post("/experiments/search-datasets", json={"experiment_ids": [experiment_id]}))
    assert found["dataset_summaries"] == [{"experiment_id": experiment_id, "name": "name1", "digest": "digest1",
                                           "context": "training"}]
    resp = ml.post("/experiments/search-datasets", json={"experiment_ids": []})
    assert resp.status_code == 400 and "must specify at least one experiment_id" in resp.json()["message"]

    made = _ok(ml.post("/runs/create-promptlab-run", json={
        "experiment_id": experiment_id, "run_name": "trial", "prompt_template": "tell {x}",
        "prompt_parameters": [{"key": "x", "value": "a joke"}], "model_route": "chat",
        "model_parameters": [{"key": "temperature", "value": "0.1"}], "model_input": "tell a joke",
        "model_output": "no", "mlflow_version": "3.6.0", "user_id": "username", "start_time": 456}))["run"]
    assert made["info"]["status"] == "FINISHED" and made["info"]["start_time"] == 456
    assert {"key": "temperature", "value": "0.1"} in made["data"]["params"]
    files = _ok(ml.get("/artifacts/list", params={"run_id": made["info"]["run_id"]}))["files"]
    assert [f["path"] for f in files] == ["eval_results_table.json"]
    resp = ml.post("/runs/create-promptlab-run", json={"experiment_id": experiment_id})
    assert resp.status_code == 400 and "must specify prompt_template" in resp.json()["message"]


def test_delete_tag_says_what_is_wrong(ml: httpx.Client) -> None:
    run_id = _run(ml, "0")["info"]["run_id"]
    resp = ml.post("/runs/delete-tag", json={"run_id": "fake_run_id", "key": "t"})
    assert resp.status_code == 404 and "Run with id=fake_run_id not found" in resp.json()["message"]
    resp = ml.post("/runs/delete-tag", json={"run_id": run_id, "key": "fakeTag"})
    assert "No tag with name: fakeTag" in resp.json()["message"]
    _ok(ml.post("/runs/set-tag", json={"run_id": run_id, "key": "t", "value": "v"}))
    _ok(ml.post("/runs/delete", json={"run_id": run_id}))
    resp = ml.post("/runs/delete-tag", json={"run_id": run_id, "key": "t"})
    assert f"The run {run_id} must be in the 'active' state" in resp.json()["message"]
    for view in ("DELETED_ONLY", 2):  # the enum's name or number
        deleted = _ok(ml.post("/runs/search", json={"experiment_ids": ["0"], "run_view_type": view}))["runs"]
        assert [r["info"]["run_id"] for r in deleted] == [run_id]


def test_unknown_v3_endpoint_is_mlflow_shaped(platform: Platform, project: str) -> None:
    resp = httpx.post(f"{platform.gateway}/mlflow/{project}/api/3.0/mlflow/teleport", json={},
                      headers=platform.headers)
    assert resp.status_code == 404 and resp.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_artifact_listing_refuses_dot_segments(ml: httpx.Client) -> None:
    run_id = _run(ml, "0")["info"]["run_id"]
    resp = ml.get("/artifacts/list", params={"run_id": run_id, "path": "../path"})
    assert resp.status_code == 400
    assert resp.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
