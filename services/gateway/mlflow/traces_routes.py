"""MLflow's ``/api/3.0/mlflow/...`` trace API (and ``ajax-api``, and both under ``/mlflow/<project>/``),
dispatched through the v3 endpoint table of :mod:`traces`: routes.py hands a v3 call here when this
table has it (its routes serve every v3 path, so the other MLflow 3 endpoints share them); the trace
artifact answers as a ``traces.json`` attachment on both API versions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cairn.kernel.errors import CairnError
from cairn.services.gateway.mlflow import traces
from cairn.services.gateway.mlflow.calls import Endpoint, default_project, match_endpoint
from cairn.services.gateway.mlflow.errors import MlflowError, mlflow_error_response

router = APIRouter(include_in_schema=False)
METHODS = ["GET", "POST", "PATCH", "DELETE"]


def match(method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
    return match_endpoint(traces.ENDPOINTS_V3, method, path)


async def dispatch(request: Request, project: str, path: str) -> Response:
    from cairn.services.gateway.mlflow import (
        routes,  # the shared caller, project and answer helpers
    )

    try:
        matched = match(request.method, path)
        call = await routes._call(request, project)
        if matched is None:
            raise MlflowError("ENDPOINT_NOT_FOUND", f"no MLflow endpoint {request.method} /api/3.0/mlflow/{path} in Cairn", 404)
        handler, captured = matched
        call.args.update(captured)
        if routes.principal_needs_project(call):
            await routes._ensure_project(call)
        call.require(handler.role)
        answer = routes.json_response(await handler.handler(call))
        if handler.handler is traces.trace_artifact:
            answer.headers["Content-Disposition"] = "attachment; filename=traces.json"
        return answer
    except CairnError as err:
        return mlflow_error_response(err)


@router.get("/api/2.0/mlflow/get-trace-artifact")
@router.get("/ajax-api/2.0/mlflow/get-trace-artifact")
async def trace_artifact_v2(request: Request) -> Response:
    return await dispatch(request, default_project(), "get-trace-artifact")


@router.get("/mlflow/{project}/api/2.0/mlflow/get-trace-artifact")
@router.get("/mlflow/{project}/ajax-api/2.0/mlflow/get-trace-artifact")
async def trace_artifact_v2_in_project(project: str, request: Request) -> Response:
    return await dispatch(request, project, "get-trace-artifact")
