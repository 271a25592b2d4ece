"""Where a model version's files come from: the ``source`` an MLflow client registers.

A source that names files Cairn stores (``runs:/<run>/<path>``, ``mlflow-artifacts:/<project>/<run>/
artifacts/<path>``, ``models:/m-<logged model id>``, or ``models:/<name>/<version>`` of a version that
has files) becomes a version with the digest of a manifest of those files, so its bytes never change.
Any other source is what MLflow accepts and Cairn cannot make reproducible: a run that does not exist
(MLflow's own tests register ``runs:/run_id/model``), a run with no files there, an ``s3://`` URI. Such
a version is registered *without files*: its source and the reason are recorded, MLflow sees the
version it expects, and Cairn's serving and deployments refuse it. A local path or ``file://`` URI is
refused (400) with MLflow's own rule for them (a local source must lie in the run's artifact
directory, and no Cairn run's artifacts are on a local disk): the gateway never reads one, since it
runs on another machine than the client in general, and reading server files named by a caller would
let any editor copy them into a project.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cairn.services.gateway.mlflow import logged_models_on_runs as on_runs
from cairn.services.gateway.mlflow import model_local
from cairn.services.gateway.mlflow.artifacts import run_files, split_artifact_path
from cairn.services.gateway.mlflow.calls import ARTIFACT_SCHEME, Call
from cairn.services.gateway.mlflow.errors import MlflowError, ServiceError
from cairn.services.gateway.mlflow.identifiers import MODEL_NAME, RUN_ID, check_relative, escape
from cairn.services.gateway.mlflow.logged_models import is_legacy, load_record, model_path
from cairn.services.gateway.mlflow.logged_models import load as load_logged_model

LOCAL_PATH_REFUSED = (
    "To use a local path as a model version source, the run_id request parameter has to be specified and the "
    "local path has to be contained within the artifact directory of the run specified by the run_id. A Cairn "
    "run's artifacts are not on a local disk (mlflow-artifacts:/<project>/<run>/artifacts), so no local path is; "
    "log the model to a run (mlflow.<flavor>.log_model) and register runs:/<run id>/<path>, or have the site allow "
    "copying from the folder (CAIRN_MLFLOW_LOCAL_SOURCES) and give a run_id.")
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")


@dataclass(frozen=True)
class Held:
    """Files Cairn stores: a run and a folder of its artifacts (or a version's digest, for a copy)."""

    run_id: str
    rel: str
    digest: str | None = None


@dataclass(frozen=True)
class Local:
    """A folder on the gateway's machine that the site allows versions to be copied from."""

    run_id: str
    folder: Path


@dataclass(frozen=True)
class Unheld:
    """A source whose files Cairn does not hold, and why (said to the user in the version record)."""

    run_id: str
    reason: str


async def _run_folder(call: Call, given_run: str, run_id: str, rel: str) -> Held | Unheld:
    try:
        files = await run_files(call, run_id)
    except ServiceError as err:
        if err.status == 404:
            return Unheld(given_run or run_id, f"run {run_id!r} does not exist in project {call.project!r}")
        raise
    prefix = f"{rel}/" if rel else ""
    if not any(path.startswith(prefix) for path in files):
        return Unheld(given_run or run_id, f"run {run_id!r} has no artifacts under {rel or '/'!r}")
    return Held(run_id, rel)


async def _model_version(call: Call, source: str, name: str, version: str | None, alias: str | None) -> Held | Unheld:
    model = await call.registry("GET", f"/models/{MODEL_NAME.segment(name, 'source')}")
    number = int(version) if version else model.get("aliases", {}).get(alias)
    if number is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Registered model alias {alias} not found.", 404)
    v = await call.registry("GET", f"/models/{escape(name)}/versions/{number}")
    if v.get("artifact_digest"):
        return Held(v["run_id"], "", v["artifact_digest"])
    return Unheld(v["run_id"], f"it copies version {number} of model {name!r}, whose files Cairn does not hold")


async def resolve(call: Call, source: str, run_id: Any, model_id: Any) -> Held | Local | Unheld:
    """What ``source`` names: files Cairn holds, or the reason it holds none. Refused outright
    (400) only where the source holds ``..`` segments or control characters."""
    given_run = str(run_id) if run_id else ""
    decoded = unquote(source)
    if "\x00" in decoded or any(ord(c) < 32 for c in decoded) or ".." in re.split(r"[/\\]", decoded):
        raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid model version source {source!r}: a source cannot "
                          "hold '..' segments or control characters. If supplying a source as an http, https, "
                          "local file path, ftp, objectstore, or mlflow-artifacts uri, give the folder itself.")
    scheme = m[1] if (m := re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", source)) else ""
    if len(scheme) <= 1 or scheme.lower() == "file":  # no scheme, a drive letter, or file://: even with a model_id
        folder = None if model_id else model_local.local_folder(source, given_run)
        if folder is None:  # read only in folders the site allows, with a run (model_local.py)
            raise MlflowError("INVALID_PARAMETER_VALUE", LOCAL_PATH_REFUSED)
        return Local(given_run, folder)
    if model_id or source.startswith("models:/m-"):
        record, run = await load_logged_model(call, model_id or source.removeprefix("models:/").split("/")[0])
        return await _run_folder(call, given_run, run["id"], record["name"])
    models = _MODELS_URI.match(source)
    if models:
        return await _model_version(call, source, models["name"], models["version"], models["alias"])
    if source.startswith("runs:/"):
        run, _, rel = source.removeprefix("runs:/").partition("/")
        try:
            RUN_ID.check(run, "source")
            rel = check_relative(rel.strip("/"), "source")
        except MlflowError:
            return Unheld(given_run or run, f"{run!r} is not a Cairn run id")
        return await _run_folder(call, given_run, run, rel)
    if source.startswith(ARTIFACT_SCHEME):
        try:
            project, run, rel = split_artifact_path(source.removeprefix(ARTIFACT_SCHEME))
        except MlflowError:
            return Unheld(given_run, f"{source!r} is not an artifact path Cairn issued "
                          "(mlflow-artifacts:/<project>/<run id>/artifacts/<path>)")
        if project != call.project:  # never copied across projects: the caller may not read that one
            return Unheld(given_run or run, f"the files are in project {project!r}; register the version there "
                          "to pin them")
        return await _run_folder(call, given_run, run, rel)
    return Unheld(given_run, f"Cairn copies files only from artifacts it stores (runs:/, mlflow-artifacts:/, "
                  f"models:/), not from {scheme!r} URIs")


MODEL_VERSIONS_TAG = "mlflow.modelVersions"


async def note_on_logged_model(call: Call, model_id: Any, name: str, version: int) -> None:
    """MLflow's server lists the versions registered from a logged model in its tag
    ``mlflow.modelVersions`` (a JSON list of ``{"name", "version"}``); so does Cairn."""
    if not model_id:
        return
    model_id = str(model_id)
    entry = {"name": name, "version": int(version)}
    if is_legacy(model_id):  # a logged model kept on its run (logged_models_on_runs.py)
        record, _ = await on_runs.load(call, model_id)
        tags = record.setdefault("tags", {})
        tags[MODEL_VERSIONS_TAG] = json.dumps([*json.loads(tags.get(MODEL_VERSIONS_TAG, "[]")), entry])
        await on_runs.save(call, model_id, record)
        return
    record = await load_record(call, model_id)
    listed = [*json.loads(record.get("tags", {}).get(MODEL_VERSIONS_TAG, "[]")), entry]
    await call.registry("PATCH", model_path(model_id, "/tags"), body={"tags": {MODEL_VERSIONS_TAG: json.dumps(listed)}})
