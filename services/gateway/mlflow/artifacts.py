"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/<path>``) over Cairn's artifact
store. Paths are ``<project>/<run id>/artifacts/<name>``: each uploaded file becomes a
content-addressed blob (stored once, whoever sends it again; the run's project then holds it and
may read it back) recorded on its run as ``run.artifact_logged`` under its relative path. Directory and model artifacts logged with Cairn's
SDK (manifests) are listed and downloaded file by file."""

from __future__ import annotations

import mimetypes
import re
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from cairn.core import Manifest
from cairn.kernel.ids import artifact_name_problem
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


# Files that MLflow clients put at the artifact proxy's root, outside any run (MLflow's
# ``--artifacts-destination`` root: ``PUT .../mlflow-artifacts/artifacts/dir/a.txt``), are kept as
# the project's artifact set of this id: content-addressed, recorded by ``run.artifact_logged``
# like a run's files, immutable. Run ids are the registry's 32 hex characters, so it names no run.
ROOT_SET = "mlflow-artifacts-root"


def locate(path: str, project: str) -> tuple[str, str, str]:
    """(project, artifact set, rel) of a proxy path: a run's files for
    ``<project>/<run id>/artifacts[/<rel>]`` (the URIs Cairn issues; a path of that shape with a
    bad project or run id is refused, not taken for a root file), else the proxy root of
    ``project`` (the tracking URI's) with ``path`` as the name."""
    parts = path.strip("/").split("/", 3)
    if len(parts) >= 3 and parts[2] == "artifacts":  # a run's path: checked strictly, as Cairn issued it
        return split_artifact_path(path)
    return PROJECT.check(project, "project"), ROOT_SET, check_relative(path.strip("/"), "path")


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
    """Immediate children of directory ``rel`` (relative names); nothing for a file, as MLflow's
    stores answer (its client then knows ``rel`` is a file and downloads it: ``load_text``,
    ``load_dict`` and single-file ``download_artifacts`` rely on it)."""
    if rel in files:
        return []
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
    """The run must exist in the call's project (runs are never removed, so a hit is cached);
    the proxy root is the project's own."""
    key = (call.project, run_id)
    if key in _KNOWN_RUNS or run_id == ROOT_SET:
        return
    if _LOGGED_MODEL.fullmatch(run_id):  # an MLflow 3 logged model without a run keeps its files under its id
        await call.registry("GET", f"/logged-models/{run_id}")
    else:
        await call.registry("GET", f"/runs/{RUN_ID.segment(run_id, 'run_id')}")
    _KNOWN_RUNS[key] = None
    if len(_KNOWN_RUNS) > 10_000:
        _KNOWN_RUNS.popitem(last=False)


async def download(call: Call, run_id: str, rel: str) -> Response:
    """The file's bytes as an attachment with a guessed type and ``nosniff``, as MLflow's server
    sends artifacts (a browser never renders one as a page of the gateway's origin)."""
    files = await run_files(call, run_id)
    info = files.get(rel)
    if info is None:
        raise not_found(f"run {run_id!r} has no artifact {rel!r}")
    resp, chunks = await call.services.stream("artifacts", f"/blobs/{escape(info['digest'])}")
    return StreamingResponse(chunks, headers=attachment_headers(rel, info["size"]))


def guess_type(name: str) -> str:
    """MLflow's choice: ``text/plain`` for its text extensions (and the extension-less ``MLmodel``,
    ``mlproject``), else by extension, else ``application/octet-stream``. Never a type a browser
    would render as a page or run (HTML, SVG, scripts): those go as ``text/plain``."""
    base = name.rsplit("/", 1)[-1]
    extension = base.rsplit(".", 1)[-1] if "." in base.lstrip(".") else base
    if extension in _TEXT_EXTENSIONS:
        return "text/plain"
    guessed, _ = mimetypes.guess_type(base)
    if guessed in _ACTIVE_TYPES:
        return "text/plain"
    return guessed or "application/octet-stream"


_TEXT_EXTENSIONS = {"txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon", "toml",
                    "yaml", "yml", "xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst", "ipynb", "MLmodel",
                    "mlproject"}
_ACTIVE_TYPES = {"text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript", "application/javascript",
                 "text/xml", "application/xml"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def attachment_headers(rel: str, size: int) -> dict[str, str]:
    """Headers of a download: the exact type (no charset added), ``nosniff``, and an attachment
    named like MLflow's server names it (``filename=<name>``; a quoted ASCII fallback plus
    ``filename*`` for other names)."""
    base = rel.rsplit("/", 1)[-1]
    if _TOKEN.fullmatch(base):
        disposition = f"attachment; filename={base}"
    else:
        fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in base)
        disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"
    return {"Content-Type": guess_type(rel), "Content-Length": str(size), "X-Content-Type-Options": "nosniff",
            "Content-Disposition": disposition}


async def list_path(call: Call, run_id: str, rel: str) -> dict[str, Any]:
    return {"files": children(await run_files(call, run_id), rel)}


@endpoint("GET", "artifacts/list")
async def list_run_artifacts(call: Call) -> dict[str, Any]:
    """The tracking API's listing: paths relative to the run's artifact root."""
    run_id = RUN_ID.check(call.arg("run_id") or call.arg("run_uuid") or call.arg("run_id", required=True), "run_id")
    rel = safe_relative(call.arg("path", ""))
    await call.registry("GET", f"/runs/{escape(run_id)}")
    files = await run_files(call, run_id)
    listed = [{**c, "path": f"{rel}/{c['path']}" if rel else c["path"]} for c in children(files, rel)]
    return {"root_uri": call.artifact_root(run_id), "files": listed}


def safe_relative(value: Any) -> str:
    """A relative path argument (``path=`` of a listing, ``get-artifact``, ``upload-artifact``),
    refused with MLflow's own message, ``Invalid path`` (its clients and tests match it), when it
    could leave the run's folder: ``..``, an absolute path, a backslash, a control character.
    ``""`` and ``"."`` are the run's root."""
    rel = str(value or "")
    if rel in ("", ".", "/"):
        return ""
    if rel.startswith("/") or "\\" in rel or "#" in rel or artifact_name_problem(rel.rstrip("/")) is not None:
        raise invalid("Invalid path")
    return rel.rstrip("/")
