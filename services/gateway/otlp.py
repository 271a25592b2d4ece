"""OTLP/HTTP trace receiver (``POST /v1/traces``, also ``/mlflow/<project>/v1/traces``): spans
from OpenTelemetry SDKs and MLflow 3's exporter, in protobuf or OTLP/JSON, go to the metrics
service's traces, one batch per trace. Authenticated by token like every route; the project is
the URL's (or CAIRN_MLFLOW_DEFAULT_PROJECT), the experiment the ``x-mlflow-experiment-id``
header (MLflow's; default: the project's default experiment ``0``). Also ``GET /version``, which
MLflow clients read to learn that the server takes spans this way."""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from cairn.kernel.errors import CairnError, PayloadTooLarge
from cairn.services.gateway.auth import authenticate_request
from cairn.services.gateway.mlflow import traces_format as fmt
from cairn.services.gateway.mlflow.backend import Services
from cairn.services.gateway.mlflow.calls import Call, default_project
from cairn.services.gateway.mlflow.errors import invalid, mlflow_error_response
from cairn.services.gateway.mlflow.identifiers import PROJECT, escape
from cairn.services.gateway.mlflow.traces import checked_experiment

router = APIRouter(include_in_schema=False)
MAX_BODY = 16 << 20  # bytes of one export request
SERVER_VERSION = "3.6.0"  # the MLflow server API level Cairn answers (spans over OTLP need >= 3.4)
PROTOBUF = "application/x-protobuf"


def _hex_ids_to_base64(document: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON wants base64."""
    if isinstance(document, list):
        return [_hex_ids_to_base64(d) for d in document]
    if not isinstance(document, dict):
        return document
    out = {}
    for key, value in document.items():
        if key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id") and isinstance(value, str):
            try:
                value = base64.b64encode(bytes.fromhex(value)).decode() if value else ""
            except ValueError:
                raise invalid(f"OTLP/JSON {key} {value[:40]!r} is not hex") from None
        out[key] = _hex_ids_to_base64(value)
    return out


def parse_export(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        if content_type == PROTOBUF:
            request.ParseFromString(body)
        elif content_type == "application/json":
            import json

            json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request)
        else:
            raise invalid(f"Content-Type {content_type or 'none'!r} is not OTLP: send {PROTOBUF} or application/json")
    except (DecodeError, ValueError, json_format.ParseError) as err:
        raise invalid(f"the body is not an OTLP ExportTraceServiceRequest ({type(err).__name__})") from None
    return request


def _caller(request: Request, project: str) -> Call:
    """The MLflow layer's call for this request (the body is the export, not MLflow arguments)."""
    principal = authenticate_request(request, request.headers.get("authorization"))
    PROJECT.check(project, "project")
    services = Services.for_request(request, principal)
    return Call(request, principal, project, services, {}, {})


async def _export(request: Request, project: str) -> Response:
    try:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        declared = int(request.headers.get("content-length") or 0)
        if declared > MAX_BODY:
            raise PayloadTooLarge(f"the export is {declared} bytes; send at most {MAX_BODY} per request")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise PayloadTooLarge(f"the export is over {MAX_BODY} bytes; send smaller batches")
        call = _caller(request, project)
        from cairn.services.gateway.mlflow import routes  # creates the default project on first use

        if routes.principal_needs_project(call):
            await routes._ensure_project(call)
        call.require("editor")
        experiment_id = await checked_experiment(call, request.headers.get("x-mlflow-experiment-id") or "0")
        export = parse_export(bytes(body), content_type)
        by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if len(span.trace_id) != 16 or len(span.span_id) != 8:
                        raise invalid("each span needs a 16-byte trace_id and an 8-byte span_id")
                    by_trace[fmt.mlflow_trace_id(span.trace_id)].append(fmt.span_from_otel(span))
        if not by_trace:
            raise invalid("Invalid OpenTelemetry protobuf format - no spans found")
        for trace_id, spans in by_trace.items():
            await call.metrics("POST", f"/traces/{escape(trace_id)}/spans",
                               body={"experiment_id": experiment_id, "spans": spans})
    except CairnError as err:
        return mlflow_error_response(err)
    answer = ExportTraceServiceResponse()
    if content_type == "application/json":
        return Response(b"{}", media_type="application/json")
    return Response(answer.SerializeToString(), media_type=PROTOBUF)


@router.post("/v1/traces")
async def otlp_traces(request: Request) -> Response:
    return await _export(request, default_project())


@router.post("/mlflow/{project}/v1/traces")
async def otlp_traces_in_project(project: str, request: Request) -> Response:
    return await _export(request, project)


@router.get("/version")
@router.get("/mlflow/{project}/version")
async def version(project: str = "") -> PlainTextResponse:
    """MLflow's client reads this before sending spans over OTLP (it needs 3.4 or newer)."""
    return PlainTextResponse(SERVER_VERSION)
