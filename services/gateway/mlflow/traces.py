"""MLflow's trace API (v2 legacy routes and v3) over the metrics service's traces: start/end,
get, batchGet (info and spans), search, delete, tags, run links, trace artifacts (the trace
data JSON) and assessments. Identifiers are checked here before they go into a service path."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from cairn.services.gateway.mlflow import traces_format as fmt
from cairn.services.gateway.mlflow.calls import Call, Endpoint, Handler, endpoint, key_values
from cairn.services.gateway.mlflow.errors import MlflowError, invalid
from cairn.services.gateway.mlflow.experiments import experiment_id_of, experiment_path
from cairn.services.gateway.mlflow.identifiers import RUN_ID, escape

TRACE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
ENDPOINTS_V3: dict[tuple[str, str], Endpoint] = {}
SEARCH_MAX_RESULTS = 1000


def endpoint_v3(method: str, path: str, role: str = "viewer") -> Any:
    """Register a handler for ``<method> /api/3.0/mlflow/<path>``."""

    def register(handler: Handler) -> Handler:
        ENDPOINTS_V3[(method, path)] = Endpoint(handler, role)
        return handler

    return register


def trace_id_of(value: Any, parameter: str = "trace_id") -> str:
    if not isinstance(value, str) or not TRACE_ID.match(value):
        raise invalid(f"Invalid value {value!r} for parameter '{parameter}': a trace id is 1-128 letters, "
                      "digits, '-' or '_' (MLflow's look like 'tr-<32 hex digits>')")
    return value


async def checked_experiment(call: Call, experiment_id: Any) -> str:
    """The MLflow experiment id, after checking that the experiment exists in the project."""
    if experiment_id in (None, ""):
        raise invalid("Missing value for required parameter 'experiment_id'.")
    cairn_id = await experiment_id_of(call, experiment_id)
    await call.registry("GET", experiment_path(cairn_id))
    return str(experiment_id)


def _path(trace_id: str, rest: str = "") -> str:
    return f"/traces/{escape(trace_id_of(trace_id))}{rest}"


async def trace_info(call: Call, trace_id: str) -> dict[str, Any]:
    return await call.metrics("GET", _path(trace_id))


async def record(call: Call, trace_id: str, info: dict[str, Any]) -> dict[str, Any]:
    return await call.metrics("POST", _path(trace_id, "/info"), body={k: v for k, v in info.items() if v is not None})


# -- v2 (legacy) -----------------------------------------------------------------------------

@endpoint("POST", "traces", role="editor")
async def start_trace_v2(call: Call) -> dict[str, Any]:
    experiment_id = await checked_experiment(call, call.arg("experiment_id", required=True))
    trace_id = f"tr-{uuid.uuid4().hex}"
    info = await record(call, trace_id, {
        "experiment_id": experiment_id, "request_time_ms": call.int_arg("timestamp_ms", 0), "state": "IN_PROGRESS",
        "metadata": key_values(call.arg("request_metadata"), "request metadata"),
        "tags": key_values(call.arg("tags"), "tag")})
    return {"trace_info": fmt.info_v2(info)}


@endpoint("PATCH", "traces/{request_id}", role="editor")
async def end_trace_v2(call: Call) -> dict[str, Any]:
    trace_id = trace_id_of(call.arg("request_id", required=True), "request_id")
    current = await trace_info(call, trace_id)
    end = call.int_arg("timestamp_ms", 0) or 0
    status = str(call.arg("status", "OK"))
    state = {"OK": "OK", "ERROR": "ERROR", "IN_PROGRESS": "IN_PROGRESS"}.get(status, "STATE_UNSPECIFIED")
    info = await record(call, trace_id, {
        "execution_ms": max(0, end - (current.get("request_time_ms") or 0)), "state": state,
        "metadata": key_values(call.arg("request_metadata"), "request metadata"),
        "tags": key_values(call.arg("tags"), "tag")})
    return {"trace_info": fmt.info_v2(info)}


@endpoint("GET", "traces/{request_id}/info")
async def get_trace_info_v2(call: Call) -> dict[str, Any]:
    return {"trace_info": fmt.info_v2(await trace_info(call, call.arg("request_id", required=True)))}


@endpoint("PATCH", "traces/{request_id}/tags", role="editor")
@endpoint_v3("PATCH", "traces/{request_id}/tags", role="editor")
async def set_tag(call: Call) -> dict[str, Any]:
    trace_id = call.arg("request_id") or call.arg("trace_id", required=True)
    key = call.arg("key", required=True)
    await call.metrics("POST", _path(trace_id, "/tags"), body={"key": str(key), "value": str(call.arg("value", ""))})
    return {}


@endpoint("DELETE", "traces/{request_id}/tags", role="editor")
@endpoint_v3("DELETE", "traces/{request_id}/tags", role="editor")
async def delete_tag(call: Call) -> dict[str, Any]:
    trace_id = call.arg("request_id") or call.arg("trace_id", required=True)
    await call.metrics("POST", _path(trace_id, "/tags"), body={"key": str(call.arg("key", required=True)), "value": None})
    return {}


@endpoint("POST", "traces/delete-traces", role="admin")
@endpoint_v3("POST", "traces/delete-traces", role="admin")
async def delete_traces(call: Call) -> dict[str, Any]:
    experiment_id = await checked_experiment(call, call.arg("experiment_id", required=True))
    ids = [trace_id_of(t, "request_ids") for t in call.list_arg("request_ids")]
    body: dict[str, Any] = {"experiment_id": experiment_id, "trace_ids": ids,
                            "max_timestamp_ms": call.int_arg("max_timestamp_millis"),
                            "max_traces": call.int_arg("max_traces")}
    done = await call.metrics("POST", "/traces/delete", body=body)
    return {"traces_deleted": done["deleted"]}


@endpoint("POST", "traces/link-to-run", role="editor")
async def link_to_run(call: Call) -> dict[str, Any]:
    run_id = RUN_ID.check(call.arg("run_id", required=True), "run_id")
    trace_ids = [trace_id_of(t, "trace_ids") for t in call.list_arg("trace_ids")]
    if len(trace_ids) > 100:
        raise invalid(f"Cannot link more than 100 traces to a run in a single request. Provided {len(trace_ids)} traces.")
    for trace_id in trace_ids:
        await call.metrics("POST", _path(trace_id, "/links"), body={"run_ids": [run_id]})
    return {}


@endpoint("GET", "get-trace-artifact")
@endpoint_v3("GET", "get-trace-artifact")
async def trace_artifact(call: Call) -> dict[str, Any]:
    """The trace data (``{"spans": [...]}`` in MLflow's span form), as MLflow's artifact handler
    sends it: the routes add ``Content-Disposition: attachment; filename=traces.json``."""
    trace_id = call.arg("request_id") or call.arg("trace_id", required=True)
    found = await call.metrics("GET", _path(trace_id, "/spans"))
    return {"spans": found["spans"]}


# -- v3 -----------------------------------------------------------------------------------------

@endpoint_v3("POST", "traces", role="editor")
async def start_trace_v3(call: Call) -> dict[str, Any]:
    """StartTraceV3 (sent when a trace ends): record the client's info; spans came by OTLP."""
    given = ((call.arg("trace") or {}).get("trace_info") or {})
    if not isinstance(given, dict) or not given.get("trace_id"):
        raise invalid("Missing value for required parameter 'trace.trace_info.trace_id'.")
    trace_id = trace_id_of(given["trace_id"])
    location = (given.get("trace_location") or {}).get("mlflow_experiment") or {}
    experiment_id = await checked_experiment(call, location.get("experiment_id"))
    info = await record(call, trace_id, {
        "experiment_id": experiment_id,
        "request_time_ms": fmt.parse_rfc3339(given.get("request_time"), "request_time") or 0,
        "execution_ms": fmt.parse_duration(given.get("execution_duration"), "execution_duration"),
        "state": given.get("state"), "request_preview": given.get("request_preview"),
        "response_preview": given.get("response_preview"), "client_request_id": given.get("client_request_id"),
        "metadata": {str(k): str(v) for k, v in (given.get("trace_metadata") or {}).items()},
        "tags": {str(k): str(v) for k, v in (given.get("tags") or {}).items()}})
    return {"trace": {"trace_info": fmt.info_v3(info)}}


@endpoint_v3("GET", "traces/{trace_id}")
async def get_trace_info_v3(call: Call) -> dict[str, Any]:
    return {"trace": {"trace_info": fmt.info_v3(await trace_info(call, call.arg("trace_id", required=True)))}}


@endpoint_v3("GET", "traces/batchGet")
async def batch_get(call: Call) -> dict[str, Any]:
    ids = [trace_id_of(t, "trace_ids") for t in call.list_arg("trace_ids")]
    if len(ids) > 100:
        raise invalid("batchGet takes at most 100 trace ids")
    traces = []
    for trace_id in ids:
        found = await call.metrics("GET", _path(trace_id, "/spans"))
        traces.append({"trace_info": fmt.info_v3(found["info"]),
                       "spans": [fmt.span_to_otel_json(s) for s in found["spans"]]})
    return {"traces": traces}


@endpoint_v3("GET", "traces/get")
async def get_trace(call: Call) -> dict[str, Any]:
    """GetTrace (newer clients): one trace, info and spans."""
    found = await call.metrics("GET", _path(call.arg("trace_id", required=True), "/spans"))
    return {"trace": {"trace_info": fmt.info_v3(found["info"]), "spans": [fmt.span_to_otel_json(s) for s in found["spans"]]}}


def _experiment_ids(call: Call) -> list[str]:
    ids = []
    for location in call.list_arg("locations"):
        experiment = (location or {}).get("mlflow_experiment") if isinstance(location, dict) else None
        if not experiment or not experiment.get("experiment_id"):
            raise invalid("Locations must be a list of experiment IDs (MLflow experiment locations)")
        ids.append(str(experiment["experiment_id"]))
    return ids or [str(e) for e in call.list_arg("experiment_ids")]


@endpoint_v3("POST", "traces/search")
async def search_v3(call: Call) -> dict[str, Any]:
    ids = _experiment_ids(call)
    if not ids:
        raise invalid("search_traces needs at least one experiment location")
    max_results = call.int_arg("max_results", 100) or 100
    if max_results > SEARCH_MAX_RESULTS or max_results < 1:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at most "
                      f"{SEARCH_MAX_RESULTS}.")
    order_by = call.list_arg("order_by")
    found = await call.metrics("POST", "/traces/search", body={
        "experiment_ids": [escape(i) for i in ids], "filter": call.arg("filter"), "order_by": order_by,
        "max_results": max_results, "page_token": call.arg("page_token")})
    out: dict[str, Any] = {"traces": [fmt.info_v3(t) for t in found["traces"]]}
    if found.get("next_page_token"):
        out["next_page_token"] = found["next_page_token"]
    return out


@endpoint_v3("POST", "traces/calculate-filter-correlation")
async def filter_correlation(call: Call) -> dict[str, Any]:
    ids = [str(e) for e in call.list_arg("experiment_ids")]
    if not ids:
        raise invalid("Missing value for required parameter 'experiment_ids'.")
    found = await call.metrics("POST", "/traces/correlation", body={
        "experiment_ids": ids, "filter1": call.arg("filter_string1", required=True),
        "filter2": call.arg("filter_string2", required=True), "base_filter": call.arg("base_filter")})
    out = {k: found[k] for k in ("total_count", "filter1_count", "filter2_count", "joint_count")}
    for name in ("npmi", "npmi_smoothed"):
        value = found.get(name)
        out[name] = "NaN" if value is None or value != value else value
    return out


# -- assessments ----------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _expectation_stored(assessment: dict[str, Any]) -> dict[str, Any]:
    """MLflow keeps an expectation whose value is not a scalar (a dict, a list) as
    ``serialized_value`` (JSON text, ``JSON_FORMAT``), as its proto requires; scalars stay ``value``."""
    expectation = assessment.get("expectation")
    if isinstance(expectation, dict) and "value" in expectation and \
            isinstance(expectation["value"], (dict, list)):
        return {**assessment, "expectation": {"serialized_value": {
            "serialization_format": "JSON_FORMAT", "value": json.dumps(expectation["value"])}}}
    return assessment


@endpoint_v3("POST", "traces/{trace_id}/assessments", role="editor")
async def create_assessment(call: Call) -> dict[str, Any]:
    assessment = call.arg("assessment", required=True)
    if not isinstance(assessment, dict):
        raise invalid("'assessment' must be an object")
    trace_id = trace_id_of(call.arg("trace_id", required=True))
    now = _now()
    body = {**_expectation_stored(assessment), "create_time": assessment.get("create_time") or now,
            "last_update_time": now}
    body.setdefault("source", {"source_type": "HUMAN", "source_id": call.principal.actor})
    return await call.metrics("POST", _path(trace_id, "/assessments"), body={"assessment": body, "create": True})


def _assessment(info: dict[str, Any], assessment_id: str) -> dict[str, Any]:
    for a in info.get("assessments", []):
        if a.get("assessment_id") == assessment_id:
            return a
    raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Assessment with ID '{assessment_id}' not found for trace "
                      f"'{info['trace_id']}'", 404)


@endpoint_v3("GET", "traces/{trace_id}/assessments/{assessment_id}")
async def get_assessment(call: Call) -> dict[str, Any]:
    info = await trace_info(call, call.arg("trace_id", required=True))
    return {"assessment": _assessment(info, str(call.arg("assessment_id", required=True)))}


_MASK_FIELDS = {"assessmentName": "assessment_name", "expectation": "expectation", "feedback": "feedback",
                "rationale": "rationale", "metadata": "metadata", "valid": "valid", "source": "source",
                "spanId": "span_id"}


@endpoint_v3("PATCH", "traces/{trace_id}/assessments/{assessment_id}", role="editor")
async def update_assessment(call: Call) -> dict[str, Any]:
    trace_id = trace_id_of(call.arg("trace_id", required=True))
    current = dict(_assessment(await trace_info(call, trace_id), str(call.arg("assessment_id", required=True))))
    given = call.arg("assessment") or {}
    for name in [m.strip() for m in str(call.arg("update_mask", "")).split(",") if m.strip()]:
        field = _MASK_FIELDS.get(name, name)
        if field not in _MASK_FIELDS.values():
            raise invalid(f"update_mask names {name!r}, which cannot be updated; use {', '.join(_MASK_FIELDS)}")
        if field in ("feedback", "expectation"):
            current.pop("feedback", None)
            current.pop("expectation", None)
        if field in given:
            current[field] = given[field]
        else:
            current.pop(field, None)
    current = _expectation_stored(current)
    current["last_update_time"] = _now()
    return await call.metrics("POST", _path(trace_id, "/assessments"), body={"assessment": current, "create": False})


@endpoint_v3("DELETE", "traces/{trace_id}/assessments/{assessment_id}", role="editor")
async def delete_assessment(call: Call) -> dict[str, Any]:
    trace_id = trace_id_of(call.arg("trace_id", required=True))
    assessment_id = trace_id_of(call.arg("assessment_id", required=True), "assessment_id")
    await call.metrics("DELETE", _path(trace_id, f"/assessments/{escape(assessment_id)}"))
    return {}
