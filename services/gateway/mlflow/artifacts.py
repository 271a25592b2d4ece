"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/<path>``) over Cairn's artifact
store. Paths are ``<project>/<run id>/artifacts/<name>``: each uploaded file becomes a
content-addressed blob (stored once, whoever sends it again; the run's project then holds it and
may read it back) recorded on its run as ``run.artifact_logged`` under its relative path. Directory and model artifacts logged with Cairn's
SDK (manifests) are listed and downloaded file by file."""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from cairn.core import Manifest
from cairn.services.gateway.mlflow.calls import Call, endpoint
from cairn.services.gateway.mlflow.errors import invalid, not_found
from cairn.services.gateway.mlflow.identifiers import (
    PROJECT,
    RUN_ID,
    artifact_path,
    check_relative,
    escape,
)


def split_artifact_path(path: str) -> tuple[str, str, str]:
    """``<project>/<run id>/artifacts[/<rel>]`` -> (project, run id, rel), each part checked
    (``rel`` segment by segment: none empty, ``.`` or ``..``)."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts":
        raise invalid(f"artifact path {path!r} is not one Cairn issued; expected <project>/<run id>/artifacts/<path>")
    rel = parts[3] if len(parts) == 4 else ""
    return PROJECT.check(parts[0], "path"), RUN_ID.check(parts[1], "path"), check_relative(rel.strip("/"), "path")


def run_artifacts_path(call: Call, run_id: str, rest: str) -> str:
    """``/projects/<p>/runs/<run id><rest>`` on the artifacts service, the run id checked and escaped."""
    return f"{call.project_path}/runs/{RUN_ID.segment(run_id, 'run_id')}{rest}"


async def run_files(call: Call, run_id: str) -> dict[str, dict[str, Any]]:
    """Every file of a run by relative path: ``{path: {digest, size}}``, with the files of
    directory/model artifacts expanded from their manifests."""
    listed = (await call.artifacts("GET", run_artifacts_path(call, run_id, "/artifacts")))["artifacts"]
    files: dict[str, dict[str, Any]] = {}
    for item in listed:
        if item["kind"] == "file":
            files[item["name"]] = {"digest": item["digest"], "size": item["size"]}
            continue
        manifest = Manifest.from_dict(await call.artifacts("GET", f"/manifests/{escape(item['digest'])}"))
        for entry in manifest.entries:
            if entry.kind == "file":
                files[f"{item['name']}/{entry.path}"] = {"digest": entry.digest, "size": entry.size}
    return files


def children(files: dict[str, dict[str, Any]], rel: str) -> list[dict[str, Any]]:
    """Immediate children of directory ``rel`` (relative names), or the file ``rel`` itself."""
    if rel in files:
        return [{"path": rel.rsplit("/", 1)[-1], "is_dir": False, "file_size": files[rel]["size"]}]
    prefix = f"{rel}/" if rel else ""
    seen: dict[str, dict[str, Any]] = {}
    for name, info in files.items():
        if not name.startswith(prefix):
            continue
        head, _, rest = name[len(prefix):].partition("/")
        if rest:
            seen.setdefault(head, {"path": head, "is_dir": True})
        else:
            seen[head] = {"path": head, "is_dir": False, "file_size": info["size"]}
    return [seen[k] for k in sorted(seen)]


async def upload(call: Call, run_id: str, rel: str, request: Request) -> dict[str, Any]:
    """Stream the body to the artifacts service, which hashes it once, stores the blob durably
    and then records it on the run (``run.artifact_logged``) before it answers."""
    if not rel:
        raise invalid("an artifact upload needs a file path after .../artifacts/")
    await _check_run(call, run_id)
    length = request.headers.get("content-length")
    await call.artifacts("PUT", run_artifacts_path(call, run_id, f"/files/{artifact_path(rel)}"),
                         data=request.stream(), headers={"Content-Length": length} if length else None)
    return {}


_KNOWN_RUNS: OrderedDict[tuple[str, str], None] = OrderedDict()
_LOGGED_MODEL = re.compile(r"m-[0-9a-f]{32}")


async def _check_run(call: Call, run_id: str) -> None:
    """The run must exist in the call's project (runs are never removed, so a hit is cached)."""
    key = (call.project, run_id)
    if key in _KNOWN_RUNS:
        return
    if _LOGGED_MODEL.fullmatch(run_id):  # an MLflow 3 logged model without a run keeps its files under its id
        await call.registry("GET", f"/logged-models/{run_id}")
    else:
        await call.registry("GET", f"/runs/{RUN_ID.segment(run_id, 'run_id')}")
    _KNOWN_RUNS[key] = None
    if len(_KNOWN_RUNS) > 10_000:
        _KNOWN_RUNS.popitem(last=False)


async def download(call: Call, run_id: str, rel: str) -> Response:
    files = await run_files(call, run_id)
    info = files.get(rel)
    if info is None:
        raise not_found(f"run {run_id!r} has no artifact {rel!r}")
    resp, chunks = await call.services.stream("artifacts", f"/blobs/{escape(info['digest'])}")
    return StreamingResponse(chunks, media_type="application/octet-stream",
                             headers={"Content-Length": str(info["size"])})


async def list_path(call: Call, run_id: str, rel: str) -> dict[str, Any]:
    return {"files": children(await run_files(call, run_id), rel)}


@endpoint("GET", "artifacts/list")
async def list_run_artifacts(call: Call) -> dict[str, Any]:
    """The tracking API's listing: paths relative to the run's artifact root."""
    run_id = RUN_ID.check(call.arg("run_id") or call.arg("run_uuid") or call.arg("run_id", required=True), "run_id")
    await call.registry("GET", f"/runs/{escape(run_id)}")
    rel = str(call.arg("path", "")).strip("/")
    files = await run_files(call, run_id)
    if rel in files:
        listed = [{"path": rel, "is_dir": False, "file_size": files[rel]["size"]}]
    else:
        listed = [{**c, "path": f"{rel}/{c['path']}" if rel else c["path"]} for c in children(files, rel)]
    return {"root_uri": call.artifact_root(run_id), "files": listed}
