"""Spans from a real OpenTelemetry SDK exporter (OTLP/HTTP protobuf) and from an OTLP/JSON body
reach Cairn's traces through the gateway; bad bodies are 400s that store nothing; assessments
(create, override, update, delete) and filter correlation through MLflow's v3 routes."""

from __future__ import annotations

import math

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture()
def ml(platform: Platform, project: str) -> httpx.Client:
    with httpx.Client(base_url=f"{platform.gateway}/mlflow/{project}", headers=platform.headers, timeout=30) as c:
        yield c


def _experiment(ml: httpx.Client, name: str) -> str:
    resp = ml.post("/api/2.0/mlflow/experiments/create", json={"name": name})
    assert resp.status_code == 200, resp.text
    return resp.json()["experiment_id"]


def _trace(ml: httpx.Client, trace_id: str) -> dict:
    resp = ml.get("/api/3.0/mlflow/traces/batchGet", params={"trace_ids": [trace_id]})
    assert resp.status_code == 200, resp.text
    return resp.json()["traces"][0]


def test_opentelemetry_sdk_exporter_sends_spans_that_read_back(ml: httpx.Client, platform: Platform,
                                                               project: str) -> None:
    exp = _experiment(ml, "otel")
    exporter = OTLPSpanExporter(endpoint=f"{platform.gateway}/mlflow/{project}/v1/traces",
                                headers={**platform.headers, "x-mlflow-experiment-id": exp})
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("plan") as root:
        root.set_attribute("question", "why stones?")
        with tracer.start_as_current_span("tool") as child:
            child.set_attribute("calls", 3)
            child.add_event("retry", {"attempt": 2})
    provider.shutdown()
    trace_id = "tr-" + format(root.get_span_context().trace_id, "032x")

    trace = _trace(ml, trace_id)
    info = trace["trace_info"]
    assert info["trace_location"]["mlflow_experiment"]["experiment_id"] == exp
    assert info["state"] == "OK" and info["tags"]["mlflow.traceName"] == "plan"
    spans = {s["name"]: s for s in trace["spans"]}
    assert set(spans) == {"plan", "tool"}
    assert spans["tool"]["parent_span_id"] == spans["plan"]["span_id"]
    assert {"key": "calls", "value": {"int_value": "3"}} in spans["tool"]["attributes"]
    assert spans["tool"]["events"][0]["name"] == "retry"

    found = ml.post("/api/3.0/mlflow/traces/search", json={
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}],
        "filter": "span.name = 'tool'"}).json()
    assert [t["trace_id"] for t in found["traces"]] == [trace_id]


def test_otlp_json_body_is_accepted(ml: httpx.Client, platform: Platform, project: str) -> None:
    exp = _experiment(ml, "otel-json")
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "json-span",
        "startTimeUnixNano": "1000000000", "endTimeUnixNano": "3000000000", "status": {"code": 1},
        "attributes": [{"key": "k", "value": {"stringValue": "v"}}]}]}]}]}
    resp = ml.post("/v1/traces", json=body, headers={"x-mlflow-experiment-id": exp})
    assert resp.status_code == 200, resp.text
    info = _trace(ml, "tr-5b8efff798038103d269b633813fc60c")["trace_info"]
    assert info["request_time"].startswith("1970-01-01T00:00:01") and info["execution_duration"] == "2.000s"


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/x-protobuf", b"\xff\xfe not protobuf"),
    ("application/json", b"{\"resourceSpans\": 5}"),
    ("text/plain", b"spans"),
])
def test_bad_otlp_bodies_are_400_and_store_nothing(ml: httpx.Client, content_type: str, body: bytes) -> None:
    exp = _experiment(ml, f"bad-{content_type.replace('/', '-')}")
    resp = ml.post("/v1/traces", content=body, headers={"content-type": content_type, "x-mlflow-experiment-id": exp})
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    found = ml.post("/api/3.0/mlflow/traces/search", json={"experiment_ids": [exp]}).json()
    assert found["traces"] == []


def test_otlp_needs_a_token(platform: Platform, project: str) -> None:
    resp = httpx.post(f"{platform.gateway}/mlflow/{project}/v1/traces", content=b"",
                      headers={"content-type": "application/x-protobuf"})
    assert resp.status_code == 401


def _start(ml: httpx.Client, exp: str, trace_id: str, tags: dict[str, str]) -> None:
    resp = ml.post("/api/3.0/mlflow/traces", json={"trace": {"trace_info": {
        "trace_id": trace_id, "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}},
        "request_time": "2025-01-01T00:00:00Z", "execution_duration": "1.5s", "state": "OK", "tags": tags}}})
    assert resp.status_code == 200, resp.text


def test_assessment_override_update_and_delete(ml: httpx.Client) -> None:
    exp = _experiment(ml, "assess")
    _start(ml, exp, "tr-assess", {})
    base = "/api/3.0/mlflow/traces/tr-assess/assessments"
    first = ml.post(base, json={"assessment": {"assessment_name": "quality", "feedback": {"value": 4},
                                               "source": {"source_type": "HUMAN", "source_id": "a@x"}}})
    assert first.status_code == 200, first.text
    first_id = first.json()["assessment"]["assessment_id"]
    over = ml.post(base, json={"assessment": {"assessment_name": "quality2", "feedback": {"value": 3},
                                              "overrides": first_id}}).json()["assessment"]
    assert ml.get(f"{base}/{first_id}").json()["assessment"]["valid"] is False
    updated = ml.patch(f"{base}/{first_id}", json={"assessment": {"rationale": "fine", "feedback": {"value": 5}},
                                                  "update_mask": "rationale,feedback"}).json()["assessment"]
    assert updated["rationale"] == "fine" and updated["feedback"]["value"] == 5
    assert ml.delete(f"{base}/{over['assessment_id']}").status_code == 200
    assert ml.get(f"{base}/{over['assessment_id']}").status_code == 404
    assert ml.get(f"{base}/{first_id}").json()["assessment"]["valid"] is True
    bad = ml.post(base, json={"assessment": {"assessment_name": "x", "overrides": "a-missing"}})
    assert bad.status_code == 400
    expected = ml.post(base, json={"assessment": {"assessment_name": "latency", "expectation": {"value": {"ms": 750}}}})
    assert expected.json()["assessment"]["expectation"]["serialized_value"] == {
        "serialization_format": "JSON_FORMAT", "value": '{"ms": 750}'}  # MLflow's form of a non-scalar value


def test_filter_correlation_counts_and_npmi(ml: httpx.Client) -> None:
    exp = _experiment(ml, "corr")
    for i in range(4):
        _start(ml, exp, f"tr-c{i}", {"env": "prod" if i < 2 else "dev", "kind": "TOOL" if i < 3 else "LLM"})
    url = "/api/3.0/mlflow/traces/calculate-filter-correlation"
    r = ml.post(url, json={"experiment_ids": [exp], "filter_string1": "tags.env = 'prod'",
                           "filter_string2": "tags.kind = 'TOOL'"}).json()
    assert (r["total_count"], r["filter1_count"], r["filter2_count"], r["joint_count"]) == (4, 2, 3, 2)
    assert 0 < r["npmi"] <= 1
    none = ml.post(url, json={"experiment_ids": [exp], "filter_string1": "tags.env = 'qa'",
                              "filter_string2": "tags.kind = 'TOOL'"}).json()
    assert none["filter1_count"] == 0 and math.isnan(float(none["npmi"]))
    bad = ml.post(url, json={"experiment_ids": [exp], "filter_string1": "invalid.filter = 'x'",
                             "filter_string2": "tags.kind = 'TOOL'"})
    assert bad.status_code == 400 and "Invalid" in bad.json()["message"]
