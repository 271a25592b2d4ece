"""Trace shapes between Cairn and MLflow: the metrics service's trace info as MLflow's v3
``TraceInfo`` and v2 ``TraceInfo`` JSON, spans in MLflow's span form as OpenTelemetry protobuf
JSON (what ``batchGet`` answers), and OTLP spans (protobuf objects or OTLP/JSON) in MLflow's form."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from cairn.services.gateway.mlflow.errors import invalid

STATUS_NAMES = {0: "STATUS_CODE_UNSET", 1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}
V2_STATUS = {"OK": "OK", "ERROR": "ERROR", "IN_PROGRESS": "IN_PROGRESS", "STATE_UNSPECIFIED": "TRACE_STATUS_UNSPECIFIED"}


def rfc3339(ms: int | None) -> str:
    """Epoch milliseconds as protobuf's JSON Timestamp."""
    t = datetime.fromtimestamp((ms or 0) / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_rfc3339(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise invalid(f"'{field}' must be an RFC 3339 time such as 2025-01-01T00:00:00Z, not {value!r}") from None


def parse_duration(value: Any, field: str) -> int | None:
    """protobuf's JSON Duration (``"2.5s"``) in milliseconds."""
    if value in (None, ""):
        return None
    text = str(value)
    try:
        return round(float(text[:-1] if text.endswith("s") else text) * 1000)
    except ValueError:
        raise invalid(f"'{field}' must be a duration such as '2.5s', not {value!r}") from None


def info_v3(info: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "trace_id": info["trace_id"],
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": info.get("experiment_id")}},
        "request_time": rfc3339(info.get("request_time_ms")),
        "state": info.get("state") or "STATE_UNSPECIFIED",
        "trace_metadata": {**info.get("metadata", {}), "mlflow.trace_schema.version":
                           info.get("metadata", {}).get("mlflow.trace_schema.version", "3")},
        "tags": {**info.get("tags", {}), "mlflow.trace.spansLocation": "TRACKING_STORE"},
        "assessments": info.get("assessments", []),
    }
    if info.get("execution_ms") is not None:
        out["execution_duration"] = f"{info['execution_ms'] / 1000:.3f}s"
    for field in ("request_preview", "response_preview", "client_request_id"):
        if info.get(field) is not None:
            out[field] = info[field]
    return out


def info_v2(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": info["trace_id"], "experiment_id": info.get("experiment_id"),
        "timestamp_ms": info.get("request_time_ms") or 0, "execution_time_ms": info.get("execution_ms") or 0,
        "status": V2_STATUS.get(info.get("state") or "", "TRACE_STATUS_UNSPECIFIED"),
        "request_metadata": [{"key": k, "value": v} for k, v in sorted(info.get("metadata", {}).items())],
        "tags": [{"key": k, "value": v} for k, v in sorted(info.get("tags", {}).items())],
    }


def _any_value(value: Any) -> dict[str, Any]:
    """A JSON-decoded value as OTLP's AnyValue (protobuf JSON)."""
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, int):
        return {"int_value": str(value)}
    if isinstance(value, float):
        return {"double_value": value}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, list):
        return {"array_value": {"values": [_any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlist_value": {"values": [{"key": str(k), "value": _any_value(v)} for k, v in value.items()]}}
    return {}


def _loaded(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def span_to_otel_json(span: dict[str, Any]) -> dict[str, Any]:
    """A span in MLflow's form as OpenTelemetry's ``Span`` in protobuf JSON."""
    out: dict[str, Any] = {
        "trace_id": span["trace_id"], "span_id": span["span_id"], "name": span["name"],
        "start_time_unix_nano": str(span.get("start_time_unix_nano") or 0),
        "end_time_unix_nano": str(span.get("end_time_unix_nano") or 0),
        "attributes": [{"key": k, "value": _any_value(_loaded(v))} for k, v in (span.get("attributes") or {}).items()],
        "events": [{"name": e.get("name", ""), "time_unix_nano": str(e.get("time_unix_nano") or 0),
                    "attributes": [{"key": k, "value": _any_value(v)} for k, v in (e.get("attributes") or {}).items()]}
                   for e in span.get("events") or []],
        "status": {"code": (span.get("status") or {}).get("code", "STATUS_CODE_UNSET"),
                   "message": (span.get("status") or {}).get("message") or ""},
    }
    if span.get("parent_span_id"):
        out["parent_span_id"] = span["parent_span_id"]
    if span.get("kind"):
        out["kind"] = span["kind"]
    links = []
    for link in span.get("links") or []:
        try:
            links.append({"trace_id": base64.b64encode(bytes.fromhex(str(link["trace_id"]).removeprefix("tr-"))).decode(),
                          "span_id": base64.b64encode(bytes.fromhex(str(link["span_id"]))).decode(),
                          "attributes": [{"key": k, "value": _any_value(v)} for k, v in (link.get("attributes") or {}).items()]})
        except (KeyError, ValueError):
            continue  # a link that names no valid span cannot be sent as one
    if links:
        out["links"] = links
    return out


def mlflow_trace_id(otel_trace_id: bytes) -> str:
    return "tr-" + otel_trace_id.hex()


def _decode_any(value: Any) -> Any:
    """OTLP AnyValue (a protobuf object) as a plain value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_decode_any(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _decode_any(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def span_from_otel(span: Any) -> dict[str, Any]:
    """An OTLP ``Span`` (protobuf object) in MLflow's span form: ids base64, attributes
    JSON-encoded (as MLflow's server keeps them), the MLflow trace id attribute added if absent."""
    attributes = {kv.key: json.dumps(_decode_any(kv.value), ensure_ascii=False) for kv in span.attributes}
    attributes.setdefault("mlflow.traceRequestId", json.dumps(mlflow_trace_id(span.trace_id)))
    return {
        "trace_id": base64.b64encode(span.trace_id).decode(), "span_id": base64.b64encode(span.span_id).decode(),
        "parent_span_id": base64.b64encode(span.parent_span_id).decode() if span.parent_span_id else None,
        "name": span.name, "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "events": [{"name": e.name, "time_unix_nano": e.time_unix_nano,
                    "attributes": {kv.key: _decode_any(kv.value) for kv in e.attributes}} for e in span.events],
        "status": {"code": STATUS_NAMES.get(span.status.code, "STATUS_CODE_UNSET"), "message": span.status.message},
        "attributes": attributes,
        "kind": type(span).SpanKind.Name(span.kind),
        "links": [{"trace_id": mlflow_trace_id(link.trace_id), "span_id": link.span_id.hex(),
                   "attributes": {kv.key: _decode_any(kv.value) for kv in link.attributes} or None}
                  for link in span.links],
    }
