"""The HTTP face of the MLflow layer: routes, authentication, project resolution, dispatch."""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cairn.kernel.errors import CairnError, NotFound
from cairn.services.gateway.auth import Principal, authenticate_request

# Import the endpoint modules so that they register their handlers.
from cairn.services.gateway.mlflow import (  # noqa: F401
    artifacts,
    eval_datasets,
    experiments,
    logged_model_artifacts,
    logged_models,
    metric_history,
    models,
    runs,
    scorers,
    traces,
    traces_routes,
    tracking_ui,
)
from cairn.services.gateway.mlflow.backend import Services
from cairn.services.gateway.mlflow.calls import (
    ENDPOINTS,
    Call,
    Endpoint,
    default_project,
    match_endpoint,
)
from cairn.services.gateway.mlflow.errors import (
    MlflowError,
    ServiceError,
    invalid,
    mlflow_error_response,
)
from cairn.services.gateway.mlflow.identifiers import PROJECT
from cairn.services.gateway.mlflow.ui_routes import router as ui_router

router = APIRouter(include_in_schema=False)
router.include_router(ui_router)  # get-artifact, upload-artifact, graphql: before the catch-all below
METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]
_known_projects: set[str] = set()


def _principal(request: Request) -> Principal:
    return authenticate_request(request, request.headers.get("authorization"))


async def _arguments(request: Request) -> tuple[dict[str, Any], dict[str, list[str]]]:
    multi: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        multi.setdefault(key, []).append(value)
    args: dict[str, Any] = {k: v[0] for k, v in multi.items()}
    if request.method != "GET":
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise invalid("the request body is not JSON") from None
            if not isinstance(body, dict):
                raise invalid("the request body must be a JSON object")
            args.update(body)
    return args, multi


def _match(method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
    return match_endpoint(ENDPOINTS, method, path)


async def _ensure_project(call: Call) -> None:
    """The default project is created on first use by a site admin."""
    if call.project in _known_projects:
        return
    try:
        await call.services.call("registry", "GET", call.project_path)
    except ServiceError as err:
        if err.status != 404 or not call.principal.site_admin or call.project != default_project():
            raise
        try:
            await call.services.call("registry", "POST", "/projects", body={"name": call.project})
        except ServiceError as again:
            if again.code != "already_exists":
                raise
    _known_projects.add(call.project)


async def _call(request: Request, project: str) -> Call:
    principal = _principal(request)
    PROJECT.check(project, "project")  # from the tracking URI (or CAIRN_MLFLOW_DEFAULT_PROJECT)
    args, multi = await _arguments(request)
    services = Services.for_request(request, principal)
    return Call(request, principal, project, services, args, multi)


async def _tracking(request: Request, project: str, path: str) -> Response:
    if "/3.0/mlflow/" in request.url.path and traces_routes.match(request.method, path) is not None:
        return await traces_routes.dispatch(request, project, path)  # MLflow 3's trace API
    try:
        matched = _match(request.method, path)
        call = await _call(request, project)
        if matched is None:
            raise MlflowError("ENDPOINT_NOT_FOUND", f"no MLflow endpoint {request.method} {path} in Cairn", 404)
        handler, captured = matched
        call.args.update(captured)
        if principal_needs_project(call):
            await _ensure_project(call)
        call.require(handler.role)
        answer = await handler.handler(call)
        return answer if isinstance(answer, Response) else json_response(answer)  # a file is a Response
    except CairnError as err:
        return mlflow_error_response(_explain(err, project))


def json_response(body: dict[str, Any]) -> Response:
    """orjson: a search page of 1,000 runs encodes in a fraction of the json module's time."""
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
                    media_type="application/json")


def principal_needs_project(call: Call) -> bool:
    return call.principal.site_admin and call.project == default_project()


def _explain(err: CairnError, project: str) -> CairnError:
    if isinstance(err, NotFound) and project == default_project() and f"project {project!r}" in err.message:
        return NotFound(f"{err.message}. The plain MLflow URI uses project {project!r} "
                        "(CAIRN_MLFLOW_DEFAULT_PROJECT); use http://<gateway>/mlflow/<project> for another")
    return err


@router.api_route("/api/2.0/mlflow/{path:path}", methods=METHODS)
@router.api_route("/ajax-api/2.0/mlflow/{path:path}", methods=METHODS)
@router.api_route("/api/3.0/mlflow/{path:path}", methods=METHODS)  # MLflow 3's endpoints share the table
@router.api_route("/ajax-api/3.0/mlflow/{path:path}", methods=METHODS)
async def tracking(path: str, request: Request) -> Response:
    return await _tracking(request, default_project(), path)


@router.api_route("/mlflow/{project}/api/2.0/mlflow/{path:path}", methods=METHODS)
@router.api_route("/mlflow/{project}/ajax-api/2.0/mlflow/{path:path}", methods=METHODS)
@router.api_route("/mlflow/{project}/api/3.0/mlflow/{path:path}", methods=METHODS)
@router.api_route("/mlflow/{project}/ajax-api/3.0/mlflow/{path:path}", methods=METHODS)
async def tracking_in_project(project: str, path: str, request: Request) -> Response:
    return await _tracking(request, project, path)


async def _artifact_route(request: Request, path: str, url_project: str | None = None) -> Response:
    try:
        if request.method == "GET" and not path.strip("/"):
            path = request.query_params.get("path", "")
        project, run_id, rel = artifacts.locate(path, url_project or default_project())
        principal = _principal(request)
        services = Services.for_request(request, principal)
        call = Call(request, principal, project, services, {}, {})
        if request.method == "PUT":
            call.require("editor")
            return JSONResponse(await artifacts.upload(call, run_id, rel, request))
        call.require("viewer")
        if request.method == "GET" and ("path" in request.query_params or not rel):
            return JSONResponse(await artifacts.list_path(call, run_id, rel))
        if request.method == "GET":
            return await artifacts.download(call, run_id, rel)
        raise MlflowError("NOT_IMPLEMENTED", "Cairn keeps run artifacts (they are immutable); "
                          "deleting them is not supported", 501)
    except CairnError as err:
        return mlflow_error_response(err)


@router.api_route("/api/2.0/mlflow-artifacts/artifacts", methods=["GET"])
@router.api_route("/api/2.0/mlflow-artifacts/artifacts/{path:path}", methods=["GET", "PUT", "DELETE"])
async def artifact_proxy(request: Request, path: str = "") -> Response:
    return await _artifact_route(request, path)


@router.api_route("/mlflow/{project}/api/2.0/mlflow-artifacts/artifacts", methods=["GET"])
@router.api_route("/mlflow/{project}/api/2.0/mlflow-artifacts/artifacts/{path:path}", methods=["GET", "PUT", "DELETE"])
async def artifact_proxy_in_project(project: str, request: Request, path: str = "") -> Response:
    return await _artifact_route(request, path, project)
