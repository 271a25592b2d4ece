"""MLflow's ``/graphql`` on Cairn: the queries MLflow's UI and tests send, answered from the same
handlers as the REST API, in MLflow's shapes (64-bit numbers as strings, NaN as null), with
MLflow's limits on root fields, aliases, depth and selections, and Cairn's access rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture(scope="module")
def http(platform: Platform) -> httpx.Client:
    with httpx.Client(base_url=platform.gateway, headers=platform.headers, timeout=30) as c:
        yield c


def _rest(http: httpx.Client, project: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
    resp = http.request(method, f"/mlflow/{project}/api/2.0/mlflow/{path}", **kw)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _gql(http: httpx.Client, project: str, query: str, *, path: str = "graphql") -> dict[str, Any]:
    resp = http.post(f"/mlflow/{project}/{path}", json={"query": query, "operationName": "q"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _experiment_and_run(http: httpx.Client, project: str, name: str) -> tuple[str, str]:
    exp = _rest(http, project, "POST", "experiments/create", json={"name": name})["experiment_id"]
    run = _rest(http, project, "POST", "runs/create", json={"experiment_id": exp})["run"]["info"]["run_id"]
    return exp, run


def test_get_experiment_and_run_with_nan_metric(http: httpx.Client, project: str) -> None:
    exp, run = _experiment_and_run(http, project, "GraphqlTest")
    for key, value, ts, step in (("normal", 123, 1, 1), ("nan_metric", "NaN", 2, 2)):
        resp = http.post(f"/mlflow/{project}/api/2.0/mlflow/runs/log-metric",  # NaN: as MLflow's client sends it
                         content=f'{{"run_id": "{run}", "key": "{key}", "value": {value}, "timestamp": {ts}, '
                                 f'"step": {step}}}', headers={"content-type": "application/json"})
        assert resp.status_code == 200, resp.text
    got = _gql(http, project, f'query q @component(name: "Test") {{ mlflowGetExperiment(input: {{experimentId: "{exp}"}})'
                              ' { experiment { name experimentId } } }')
    assert got == {"data": {"mlflowGetExperiment": {"experiment": {"name": "GraphqlTest", "experimentId": exp}}},
                   "errors": None}
    got = _gql(http, project, f'query q {{ mlflowGetRun(input: {{runId: "{run}"}}) {{ run {{ info {{ status runId }} '
                              'experiment { name } modelVersions { name } data { metrics { key value timestamp step } } } } }')
    assert got["errors"] is None
    found = got["data"]["mlflowGetRun"]["run"]
    assert found["info"] == {"status": "RUNNING", "runId": run}
    assert found["experiment"] == {"name": "GraphqlTest"} and found["modelVersions"] == []
    metrics = {m["key"]: m for m in found["data"]["metrics"]}
    assert metrics["normal"] == {"key": "normal", "value": 123, "timestamp": "1", "step": "1"}
    assert metrics["nan_metric"] == {"key": "nan_metric", "value": None, "timestamp": "2", "step": "2"}


def test_search_runs_list_artifacts_and_metric_history(http: httpx.Client, project: str) -> None:
    exp, first = _experiment_and_run(http, project, "searched")
    second = _rest(http, project, "POST", "runs/create", json={"experiment_id": exp})["run"]["info"]["run_id"]
    for step in range(5):
        _rest(http, project, "POST", "runs/log-metric",
              json={"run_id": first, "key": "m", "value": step, "timestamp": 1000 + step, "step": step})
    base = f"/api/2.0/mlflow-artifacts/artifacts/{project}/{first}/artifacts"
    assert http.put(f"{base}/test.txt", content=b"hello world").status_code == 200
    assert http.put(f"{base}/testDir/test.txt", content=b"hello world").status_code == 200

    got = _gql(http, project, f'mutation q {{ mlflowSearchRuns(input: {{experimentIds: ["{exp}"]}}) '
                              '{ runs { info { runId } } } }')
    assert {r["info"]["runId"] for r in got["data"]["mlflowSearchRuns"]["runs"]} == {first, second}
    rest_order = [r["info"]["run_id"] for r in _rest(http, project, "POST", "runs/search",
                                                     json={"experiment_ids": [exp]})["runs"]]
    assert [r["info"]["runId"] for r in got["data"]["mlflowSearchRuns"]["runs"]] == rest_order

    got = _gql(http, project, f'query q {{ files: mlflowListArtifacts(input: {{runId: "{first}"}}) '
                              '{ files { path isDir fileSize } } }')
    assert got["data"]["files"]["files"] == [{"path": "test.txt", "isDir": False, "fileSize": "11"},
                                             {"path": "testDir", "isDir": True, "fileSize": "0"}]
    got = _gql(http, project, f'query q {{ sub: mlflowListArtifacts(input: {{runId: "{first}", path: "testDir"}}) '
                              '{ files { path isDir fileSize } } }', path="ajax-api/graphql")
    assert got["data"]["sub"]["files"] == [{"path": "testDir/test.txt", "isDir": False, "fileSize": "11"}]

    got = _gql(http, project, f'query q {{ mlflowGetMetricHistoryBulkInterval(input: {{runIds: ["{first}"], '
                              'metricKey: "m"}) { metrics { key value step runId } } }')
    assert got["data"]["mlflowGetMetricHistoryBulkInterval"]["metrics"] == [
        {"key": "m", "value": step, "step": str(step), "runId": first} for step in range(5)]


def test_search_datasets_summarizes_the_runs_inputs(http: httpx.Client, project: str) -> None:
    exp, run = _experiment_and_run(http, project, "datasets")
    dataset = {"name": "train-set", "digest": "12346", "source_type": "script", "source": "test"}
    _rest(http, project, "POST", "runs/log-inputs", json={"run_id": run, "datasets": [
        {"dataset": {**dataset, "name": "plain", "digest": "12345"}, "tags": []},
        {"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "training"}]}]})
    got = _gql(http, project, f'mutation q {{ mlflowSearchDatasets(input: {{experimentIds: ["{exp}"]}}) '
                              '{ datasetSummaries { experimentId name digest context } } }')
    summaries = got["data"]["mlflowSearchDatasets"]["datasetSummaries"]
    assert sorted(summaries, key=lambda s: s["name"]) == [
        {"experimentId": exp, "name": "plain", "digest": "12345", "context": ""},
        {"experimentId": exp, "name": "train-set", "digest": "12346", "context": "training"}]


def test_limits_and_errors_come_back_as_mlflow_does(http: httpx.Client, project: str) -> None:
    assert _gql(http, project, 'query q { test(inputString: "abc") { output } }') == {
        "data": {"test": {"output": "abc"}}, "errors": None}
    many = "query q {" + " ".join(f'k{i}: test(inputString: "a") {{ output }}' for i in range(12)) + "}"
    assert "GraphQL queries should have at most 10 root fields" in _gql(http, project, many)["errors"][0]
    aliases = ('query q { mlflowGetExperiment(input: {experimentId: "1"}) {'
               + " ".join(f"e{i}: experiment {{ name }}" for i in range(12)) + "} }")
    assert "queries should have at most 10 aliases" in _gql(http, project, aliases)["errors"][0]
    inner = "name"
    for _ in range(12):
        inner = f"name {{ {inner} }}"
    deep = f'query q {{ mlflowGetExperiment(input: {{experimentId: "1"}}) {{ experiment {{ {inner} }} }} }}'
    assert "Query exceeds maximum depth of 10" in _gql(http, project, deep)["errors"][0]
    wide = ('query q { mlflowGetExperiment(input: {experimentId: "1"}) { experiment { '
            + " ".join(f"f{i} {{ name }}" for i in range(1002)) + " } } }")
    assert "Query exceeds maximum total selections of 1000" in _gql(http, project, wide)["errors"][0]
    missing = _gql(http, project, 'query q { mlflowGetRun(input: {runId: "' + "0" * 32 + '"}) { run { info { runId } } } }')
    assert missing["data"] == {"mlflowGetRun": None} and missing["errors"]


def test_graphql_needs_a_token_and_a_member(platform: Platform, project: str) -> None:
    query = {"query": 'query q { test(inputString: "a") { output } }'}
    with httpx.Client(base_url=platform.gateway, timeout=30) as anonymous:
        resp = anonymous.post(f"/mlflow/{project}/graphql", json=query)
        assert resp.status_code == 401 and resp.json()["error_code"] == "UNAUTHENTICATED"
