"""Errors on the MLflow routes come back in MLflow's shape, with the codes its client knows, and
change nothing."""

from __future__ import annotations

import httpx
import loopback
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture(scope="module")
def ml(platform: Platform) -> httpx.Client:
    with httpx.Client(base_url=f"{platform.gateway}/api/2.0/mlflow", headers=platform.headers, timeout=30) as c:
        yield c


def _run(ml: httpx.Client) -> str:
    resp = ml.post("/runs/create", json={"experiment_id": "0", "run_name": "r"})
    assert resp.status_code == 200, resp.text
    return resp.json()["run"]["info"]["run_id"]


def test_unknown_run_is_resource_does_not_exist(ml: httpx.Client) -> None:
    resp = ml.get("/runs/get", params={"run_id": "0" * 32})
    assert resp.status_code == 404 and resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_duplicate_experiment_is_resource_already_exists(ml: httpx.Client) -> None:
    assert ml.post("/experiments/create", json={"name": "dup"}).status_code == 200
    resp = ml.post("/experiments/create", json={"name": "dup"})
    assert resp.json()["error_code"] == "RESOURCE_ALREADY_EXISTS" and "dup" in resp.json()["message"]


def test_changing_a_param_is_invalid_and_keeps_the_old_value(ml: httpx.Client) -> None:
    run = _run(ml)
    assert ml.post("/runs/log-parameter", json={"run_id": run, "key": "lr", "value": "0.1"}).status_code == 200
    resp = ml.post("/runs/log-parameter", json={"run_id": run, "key": "lr", "value": "0.2"})
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    params = ml.get("/runs/get", params={"run_id": run}).json()["run"]["data"]["params"]
    assert params == [{"key": "lr", "value": "0.1"}]


def test_missing_required_argument_names_it(ml: httpx.Client) -> None:
    resp = ml.get("/experiments/get-by-name")
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE" and "experiment_name" in resp.json()["message"]


def test_bad_metric_value_is_refused_without_logging(ml: httpx.Client) -> None:
    run = _run(ml)
    resp = ml.post("/runs/log-batch", json={"run_id": run, "metrics": [{"key": "a", "value": "x", "timestamp": 1}]})
    assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert ml.get("/metrics/get-history", params={"run_id": run, "metric_key": "a"}).json().get("metrics", []) == []


def test_unknown_endpoint_is_endpoint_not_found(ml: httpx.Client) -> None:
    resp = ml.post("/runs/teleport", json={})
    assert resp.status_code == 404 and resp.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_ajax_prefix_and_bad_filter(platform: Platform) -> None:
    resp = loopback.post(f"{platform.gateway}/ajax-api/2.0/mlflow/runs/search", headers=platform.headers,
                      json={"experiment_ids": ["0"], "filter": "attributes.artifact_uri = 'x'"})
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
