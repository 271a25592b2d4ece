"""MLflow's handlers outside its REST API: ``/get-artifact`` (the UI's and some clients' file
download), ``/ajax-api/2.0/mlflow/upload-artifact`` (the UI's upload: raw body, query arguments),
``/graphql`` (also under ``/ajax-api/``) and ``/api/3.0/mlflow/server-info`` (what newer clients
ask before an artifact transfer). They have no JSON body to route by, so they are
routes of their own, matched before the tracking API's catch-all (``routes.py`` includes this
router first). Each authenticates like every MLflow call and acts as the caller, in the project
of the tracking URI (``/mlflow/<project>/...``) or the default one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cairn.kernel.errors import CairnError
from cairn.services.gateway.auth import authenticate_request
from cairn.services.gateway.mlflow import artifacts, graphql_api
from cairn.services.gateway.mlflow.backend import Services
from cairn.services.gateway.mlflow.calls import Call, default_project
from cairn.services.gateway.mlflow.errors import invalid, mlflow_error_response
from cairn.services.gateway.mlflow.identifiers import PROJECT, RUN_ID, artifact_path

router = APIRouter(include_in_schema=False)
UPLOAD_MAX_BYTES = 10 * 1024 * 1024  # MLflow's limit for this handler


def make_call(request: Request, project: str, args: dict[str, Any] | None = None) -> Call:
    """A :class:`Call` for ``project`` as the request's caller (401 without a valid token)."""
    principal = authenticate_request(request, request.headers.get("authorization"))
    PROJECT.check(project, "project")
    services = Services.for_request(request, principal)
    return Call(request, principal, project, services, args or {}, {})


async def _get_artifact(request: Request, project: str) -> Response:
    try:
        query = request.query_params
        call = make_call(request, project)
        run_id = RUN_ID.check(query.get("run_id") or query.get("run_uuid") or "", "run_id")
        rel = artifacts.safe_relative(query.get("path", ""))
        call.require("viewer")
        await call.registry("GET", f"/runs/{RUN_ID.segment(run_id, 'run_id')}")
        return await artifacts.download(call, run_id, rel)
    except CairnError as err:
        return mlflow_error_response(err)


async def _upload_artifact(request: Request, project: str) -> Response:
    """MLflow's order of checks and messages (its UI and tests match them); the bytes go to the
    artifacts service like any upload: stored by content, then ``run.artifact_logged``."""
    try:
        query = request.query_params
        run_id = query.get("run_uuid")
        if not run_id:
            raise invalid("Request must specify run_uuid.")
        path = query.get("path")
        if not path:
            raise invalid("Request must specify path.")
        rel = artifacts.safe_relative(path)
        if not rel:
            raise invalid("Invalid path")
        if int(request.headers.get("content-length") or 0) > UPLOAD_MAX_BYTES:
            raise invalid("Artifact size is too large. Max size is 10MB.")
        call = make_call(request, project)
        call.require("editor")
        data = await _body(request)
        if not data:
            raise invalid("Request must specify data.")
        RUN_ID.check(run_id, "run_uuid")
        await call.registry("GET", f"/runs/{RUN_ID.segment(run_id, 'run_uuid')}")
        await call.artifacts("PUT", artifacts.run_artifacts_path(call, run_id, f"/files/{artifact_path(rel)}"),
                             data=data, headers={"Content-Length": str(len(data))})
        return JSONResponse({})
    except CairnError as err:
        return mlflow_error_response(err)


async def _body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > UPLOAD_MAX_BYTES:
            raise invalid("Artifact size is too large. Max size is 10MB.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _graphql(request: Request, project: str) -> Response:
    try:
        call = make_call(request, project)
        call.require("viewer")
        return JSONResponse(await graphql_api.execute(call, await graphql_api.request_body(request)))
    except CairnError as err:
        return mlflow_error_response(err)


@router.get("/get-artifact")
@router.get("/ajax-api/2.0/mlflow/get-artifact")
async def get_artifact(request: Request) -> Response:
    return await _get_artifact(request, default_project())


@router.get("/mlflow/{project}/get-artifact")
@router.get("/mlflow/{project}/ajax-api/2.0/mlflow/get-artifact")
async def get_artifact_in_project(project: str, request: Request) -> Response:
    return await _get_artifact(request, project)


@router.post("/ajax-api/2.0/mlflow/upload-artifact")
async def upload_artifact(request: Request) -> Response:
    return await _upload_artifact(request, default_project())


@router.post("/mlflow/{project}/ajax-api/2.0/mlflow/upload-artifact")
async def upload_artifact_in_project(project: str, request: Request) -> Response:
    return await _upload_artifact(request, project)


@router.api_route("/graphql", methods=["GET", "POST"])
@router.api_route("/ajax-api/graphql", methods=["GET", "POST"])
async def graphql(request: Request) -> Response:
    return await _graphql(request, default_project())


@router.api_route("/mlflow/{project}/graphql", methods=["GET", "POST"])
@router.api_route("/mlflow/{project}/ajax-api/graphql", methods=["GET", "POST"])
async def graphql_in_project(project: str, request: Request) -> Response:
    return await _graphql(request, project)


# What Cairn's MLflow layer offers a client that asks (MLflow 3.7+ asks before each artifact
# transfer): artifacts through the proxy by single PUT/GET (no multipart, no presigned URLs), no
# workspaces, no trace archival; the store type is not one of MLflow's.
SERVER_INFO = {"store_type": None, "artifact_serving_enabled": True, "multipart_uploads_enabled": False,
               "multipart_downloads_enabled": False, "artifacts_presigned_only": False,
               "workspaces_enabled": False, "trace_archival_enabled": False}


async def _server_info(request: Request) -> Response:
    """Any valid token may ask (MLflow answers without login; Cairn denies by default)."""
    try:
        authenticate_request(request, request.headers.get("authorization"))
        return JSONResponse(SERVER_INFO)
    except CairnError as err:
        return mlflow_error_response(err)


@router.get("/api/3.0/mlflow/server-info")
async def server_info(request: Request) -> Response:
    return await _server_info(request)


@router.get("/mlflow/{project}/api/3.0/mlflow/server-info")
async def server_info_in_project(project: str, request: Request) -> Response:
    return await _server_info(request)
