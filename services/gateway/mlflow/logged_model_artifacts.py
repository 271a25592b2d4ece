"""The files of an MLflow 3 logged model, as MLflow's UI and clients list and read them
(``logged-models/<id>/artifacts/directories`` and ``.../files``): a model held by its source run
keeps them under the run's artifacts at ``<name>/``; one without a run under its own id in the
artifact store (content-addressed, like every artifact)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import StreamingResponse

from cairn.services.gateway.mlflow.artifacts import children, run_files
from cairn.services.gateway.mlflow.calls import Call, endpoint
from cairn.services.gateway.mlflow.errors import not_found
from cairn.services.gateway.mlflow.identifiers import check_relative, escape
from cairn.services.gateway.mlflow.logged_models import (
    artifact_uri,
    load_record,
    model_path,
    source_run_held,
)


async def _files(call: Call) -> tuple[dict[str, Any], dict[str, dict[str, Any]], str]:
    """(model, its files by path relative to its artifact root, that root)."""
    model_id = str(call.args["id"])
    model_path(model_id)
    model = await load_record(call, model_id)
    held = await source_run_held(call, model.get("source_run_id"))
    if not held:
        return model, await run_files(call, model_id), artifact_uri(call, model, held)
    prefix = f"{model['name']}/"
    files = {name[len(prefix):]: info for name, info in (await run_files(call, model["source_run_id"])).items()
             if name.startswith(prefix)}
    return model, files, artifact_uri(call, model, held)


@endpoint("GET", "logged-models/{id}/artifacts/directories")
async def list_directory(call: Call) -> dict[str, Any]:
    rel = check_relative(str(call.arg("artifact_directory_path", "")).strip("/"), "artifact_directory_path")
    _, files, root = await _files(call)
    if rel in files:
        return {"root_uri": root, "files": []}
    listed = [{**c, "path": f"{rel}/{c['path']}" if rel else c["path"]} for c in children(files, rel)]
    return {"root_uri": root, "files": listed}


@endpoint("GET", "logged-models/{id}/artifacts/files")
async def get_file(call: Call) -> Any:  # a file, not JSON: routes.py passes a Response through
    rel = check_relative(str(call.arg("artifact_file_path", required=True)).strip("/"), "artifact_file_path")
    model, files, _ = await _files(call)
    info = files.get(rel)
    if info is None:
        raise not_found(f"logged model {model['id']!r} has no artifact {rel!r}")
    _, chunks = await call.services.stream("artifacts", f"/blobs/{escape(info['digest'])}")
    return StreamingResponse(chunks, media_type="application/octet-stream",
                             headers={"Content-Length": str(info["size"])})
