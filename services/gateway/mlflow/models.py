"""MLflow's model registry over Cairn's models, versions and aliases.

A version's files are the run artifacts its ``source`` names; Cairn records the version with the
digest of a manifest of those files (so the bytes it points at can never change) and keeps the
MLflow ``source`` as the version tag ``mlflow.source``. Stages map to aliases: ``Staging`` and
``Production`` are the aliases ``staging`` and ``production`` (``production`` stays admin-only),
``Archived`` archives the version. Deleting a model or version archives it.
"""

from __future__ import annotations

import re
from typing import Any

from cairn.core import Manifest, ManifestEntry
from cairn.kernel.identity import ADMIN_ONLY_ALIASES
from cairn.services.gateway.mlflow.artifacts import run_files, split_artifact_path
from cairn.services.gateway.mlflow.calls import ARTIFACT_SCHEME, Call, endpoint, key_values, millis
from cairn.services.gateway.mlflow.errors import MlflowError, invalid, not_found
from cairn.services.gateway.mlflow.experiments import compare_text
from cairn.services.gateway.mlflow.identifiers import (
    ALIAS,
    MODEL_NAME,
    RUN_ID,
    TAG_KEY,
    check_relative,
    escape,
)
from cairn.services.gateway.mlflow.logged_models import load as load_logged_model
from cairn.services.gateway.mlflow.paging import page, page_token_offset

SOURCE_TAG = "mlflow.source"
STAGE_ALIASES = {"Staging": "staging", "Production": "production"}


def version_json(call: Call, model: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    aliases = [a for a, n in model.get("aliases", {}).items() if n == v["version"]]
    stage = "Archived" if v["archived"] else next(
        (s for s, a in (("Production", "production"), ("Staging", "staging")) if a in aliases), "None")
    tags = v.get("tags", {})
    return {"name": model["name"], "version": str(v["version"]), "creation_timestamp": millis(v["created_at"]),
            "last_updated_timestamp": millis(v["updated_at"]), "description": v["description"],
            "user_id": v["created_by"].split(":")[0], "current_stage": stage,
            "source": tags.get(SOURCE_TAG, f"{call.artifact_root(v['run_id'])}"),
            "run_id": v["run_id"], "status": "READY", "aliases": aliases,
            "tags": [{"key": k, "value": x} for k, x in sorted(tags.items()) if k != SOURCE_TAG]}


async def model_json(call: Call, model: dict[str, Any]) -> dict[str, Any]:
    versions = (await call.registry("GET", f"/models/{escape(model['name'])}/versions"))["versions"]
    latest: dict[str, dict[str, Any]] = {}
    for v in versions:
        latest[version_json(call, model, v)["current_stage"]] = v
    return {"name": model["name"], "creation_timestamp": millis(model["created_at"]),
            "last_updated_timestamp": millis(model["updated_at"]), "description": model["description"],
            "tags": [{"key": k, "value": x} for k, x in sorted(model.get("tags", {}).items())],
            "aliases": [{"alias": a, "version": str(n)} for a, n in sorted(model.get("aliases", {}).items())],
            "latest_versions": [version_json(call, model, v) for v in latest.values()]}


def model_path(name: Any, rest: str = "", parameter: str = "name") -> str:
    """``/models/<name><rest>``, the name (from the caller) checked and escaped."""
    return f"/models/{MODEL_NAME.segment(name, parameter)}{rest}"


def version_path(name: Any, version: int, rest: str = "") -> str:
    return model_path(name, f"/versions/{int(version)}{rest}")


def tag_keys(tags: dict[str, str], parameter: str = "tags.key") -> dict[str, str]:
    """``{escaped key: value}``, every key checked before anything is sent."""
    return {TAG_KEY.segment(key, parameter): value for key, value in tags.items()}


async def get_model(call: Call, name: Any, parameter: str = "name") -> dict[str, Any]:
    if not name:
        raise invalid(f"Missing value for required parameter '{parameter}'.")
    return await call.registry("GET", model_path(name, parameter=parameter))


def _version_number(call: Call) -> int:
    raw = call.arg("version", required=True)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise invalid(f"version must be a number, not {raw!r}") from None


async def get_version(call: Call, name: str, version: int) -> dict[str, Any]:
    model = await get_model(call, name)
    return version_json(call, model, await call.registry("GET", version_path(name, version)))


@endpoint("POST", "registered-models/create", role="editor")
async def create(call: Call) -> dict[str, Any]:
    name = MODEL_NAME.check(call.arg("name", required=True), "name")
    tags = tag_keys(key_values(call.arg("tags", []), "tag"))
    model = await call.registry("POST", "/models", body={"name": name, "description": str(call.arg("description", ""))})
    for key, value in tags.items():
        model = await call.registry("PUT", model_path(name, f"/tags/{key}"), body={"value": value})
    return {"registered_model": await model_json(call, model)}


@endpoint("GET", "registered-models/get")
async def get(call: Call) -> dict[str, Any]:
    return {"registered_model": await model_json(call, await get_model(call, call.arg("name", required=True)))}


@endpoint("POST", "registered-models/rename", role="editor")
async def rename(call: Call) -> dict[str, Any]:
    name, new_name = call.arg("name", required=True), call.arg("new_name", required=True)
    model = await call.registry("PATCH", model_path(name), body={"name": MODEL_NAME.check(new_name, "new_name")})
    return {"registered_model": await model_json(call, model)}


@endpoint("PATCH", "registered-models/update", role="editor")
async def update(call: Call) -> dict[str, Any]:
    name = call.arg("name", required=True)
    model = await call.registry("PATCH", model_path(name), body={"description": str(call.arg("description", ""))})
    return {"registered_model": await model_json(call, model)}


@endpoint("DELETE", "registered-models/delete", role="admin")
async def delete(call: Call) -> dict[str, Any]:
    await call.registry("POST", model_path(call.arg("name", required=True), "/archive"))
    return {}


@endpoint("POST", "registered-models/set-tag", role="editor")
async def set_tag(call: Call) -> dict[str, Any]:
    name, key = call.arg("name", required=True), TAG_KEY.segment(call.arg("key", required=True), "key")
    await call.registry("PUT", model_path(name, f"/tags/{key}"), body={"value": str(call.arg("value", ""))})
    return {}


@endpoint("DELETE", "registered-models/delete-tag", role="admin")  # deletions: admin, as on the services
@endpoint("DELETE", "model-versions/delete-tag", role="admin")
async def delete_tag(call: Call) -> dict[str, Any]:
    raise MlflowError("NOT_IMPLEMENTED", "Cairn keeps model tags; set the tag to another value instead")


_NAME_CLAUSE = re.compile(r"^\s*name\s*(?P<op>=|!=|LIKE|ILIKE)\s*'(?P<value>[^']*)'\s*$", re.IGNORECASE)
_VERSION_CLAUSE = re.compile(r"^\s*(?P<field>name|run_id|source_path)\s*=\s*'(?P<value>[^']*)'\s*$", re.IGNORECASE)


@endpoint("GET", "registered-models/search")
async def search(call: Call) -> dict[str, Any]:
    models = (await call.registry("GET", "/models"))["models"]
    text = call.arg("filter")
    if text:
        m = _NAME_CLAUSE.match(str(text))
        if m is None:
            raise invalid("Cairn searches registered models by name: name = | != | LIKE | ILIKE '<value>'")
        models = [x for x in models if compare_text(x["name"], m["op"].upper(), m["value"])]
    models.sort(key=lambda x: x["name"])
    chosen, token = page(models, call.int_arg("max_results", 100) or 100, page_token_offset(call.arg("page_token")))
    return {"registered_models": [await model_json(call, x) for x in chosen], **({"next_page_token": token} if token else {})}


@endpoint("POST", "registered-models/get-latest-versions")
@endpoint("GET", "registered-models/get-latest-versions")
async def latest_versions(call: Call) -> dict[str, Any]:
    model = await model_json(call, await get_model(call, call.arg("name", required=True)))
    stages = set(call.list_arg("stages"))
    return {"model_versions": [v for v in model["latest_versions"] if not stages or v["current_stage"] in stages]}


@endpoint("POST", "registered-models/alias", role="editor")
async def set_alias(call: Call) -> dict[str, Any]:
    name, alias = call.arg("name", required=True), ALIAS.check(call.arg("alias", required=True), "alias")
    if alias.lower() in ADMIN_ONLY_ALIASES:
        call.require("admin")
    await call.registry("PUT", model_path(name, f"/aliases/{escape(alias)}"), body={"version": _version_number(call)})
    return {}


@endpoint("DELETE", "registered-models/alias", role="admin")
async def delete_alias(call: Call) -> dict[str, Any]:
    name, alias = call.arg("name", required=True), ALIAS.check(call.arg("alias", required=True), "alias")
    await call.registry("DELETE", model_path(name, f"/aliases/{escape(alias)}"))
    return {}


@endpoint("GET", "registered-models/alias")
async def get_by_alias(call: Call) -> dict[str, Any]:
    name, alias = call.arg("name", required=True), call.arg("alias", required=True)
    model = await get_model(call, name)
    if alias not in model.get("aliases", {}):
        raise not_found(f"Registered model alias {alias} not found.")
    return {"model_version": await get_version(call, name, model["aliases"][alias])}


async def _resolve_source(call: Call, source: str, run_id: str | None, model_id: str | None) -> tuple[str, str]:
    """(run id, relative artifact dir) for a version source that Cairn stores."""
    if model_id or source.startswith("models:/m-"):
        record, run = await load_logged_model(call, model_id or source.removeprefix("models:/").split("/")[0])
        return run["id"], record["name"]
    if source.startswith("runs:/"):
        run, _, rel = source.removeprefix("runs:/").partition("/")
        return RUN_ID.check(run, "source"), check_relative(rel.strip("/"), "source")
    if source.startswith(ARTIFACT_SCHEME):
        project, run, rel = split_artifact_path(source.removeprefix(ARTIFACT_SCHEME))
        if project != call.project:
            raise invalid(f"source {source!r} is in project {project!r}; register it in that project")
        return run, rel
    raise invalid(f"Cairn registers model versions from artifacts it stores (runs:/, models:/ or "
                  f"mlflow-artifacts:/ URIs), not {source!r}")


@endpoint("POST", "model-versions/create", role="editor")
async def create_version(call: Call) -> dict[str, Any]:
    name, source = MODEL_NAME.check(call.arg("name", required=True), "name"), str(call.arg("source", required=True))
    tags = tag_keys(key_values(call.arg("tags", []), "tag"))
    run_id, rel = await _resolve_source(call, source, call.arg("run_id"), call.arg("model_id"))
    files = await run_files(call, run_id)
    prefix = f"{rel}/" if rel else ""
    entries = [ManifestEntry(path[len(prefix):], "file", info["size"], info["digest"])
               for path, info in files.items() if path.startswith(prefix)]
    if not entries:
        raise invalid(f"run {run_id!r} has no artifacts under {rel or '/'!r}; log the model first")
    manifest = Manifest.from_entries(entries)
    stored = await call.artifacts("POST", f"/projects/{call.project}/manifests",
                                  body={"manifest": manifest.as_dict()})
    created = await call.registry("POST", model_path(name, "/versions"), body={
        "run_id": run_id, "artifact_digest": stored["digest"], "description": str(call.arg("description", ""))})
    number = created["version"]
    download = f"{call.artifact_root(run_id)}/{rel}" if rel else call.artifact_root(run_id)
    for key, value in {escape(SOURCE_TAG): download, **tags}.items():
        await call.registry("PUT", version_path(name, number, f"/tags/{key}"), body={"value": value})
    return {"model_version": await get_version(call, name, number)}


@endpoint("GET", "model-versions/get")
async def get_model_version(call: Call) -> dict[str, Any]:
    return {"model_version": await get_version(call, call.arg("name", required=True), _version_number(call))}


@endpoint("PATCH", "model-versions/update", role="editor")
async def update_version(call: Call) -> dict[str, Any]:
    name, number = call.arg("name", required=True), _version_number(call)
    await call.registry("PATCH", version_path(name, number), body={"description": str(call.arg("description", ""))})
    return {"model_version": await get_version(call, name, number)}


@endpoint("DELETE", "model-versions/delete", role="admin")
async def delete_version(call: Call) -> dict[str, Any]:
    await call.registry("POST", version_path(call.arg("name", required=True), _version_number(call), "/archive"))
    return {}


@endpoint("POST", "model-versions/set-tag", role="editor")
async def set_version_tag(call: Call) -> dict[str, Any]:
    name, number, key = call.arg("name", required=True), _version_number(call), call.arg("key", required=True)
    await call.registry("PUT", version_path(name, number, f"/tags/{TAG_KEY.segment(key, 'key')}"),
                        body={"value": str(call.arg("value", ""))})
    return {}


@endpoint("GET", "model-versions/search")
async def search_versions(call: Call) -> dict[str, Any]:
    text = str(call.arg("filter", ""))
    clauses = [c for c in re.split(r"\s+and\s+", text, flags=re.IGNORECASE) if c.strip()]
    wanted: dict[str, str] = {}
    for clause in clauses:
        m = _VERSION_CLAUSE.match(clause)
        if m is None:
            raise invalid("Cairn searches model versions by name = '<model>' and run_id = '<run id>'")
        wanted[m["field"].lower()] = m["value"]
    if "name" in wanted:
        names = [MODEL_NAME.check(wanted["name"], "filter")]
    else:
        names = [m["name"] for m in (await call.registry("GET", "/models"))["models"]]
    out = []
    for name in names:
        model = await call.registry("GET", f"/models/{escape(name)}")
        for v in (await call.registry("GET", f"/models/{escape(name)}/versions"))["versions"]:
            item = version_json(call, model, v)
            if all(item.get("source" if k == "source_path" else k) == x for k, x in wanted.items() if k != "name"):
                out.append(item)
    chosen, token = page(out, call.int_arg("max_results", 1000) or 1000, page_token_offset(call.arg("page_token")))
    return {"model_versions": chosen, **({"next_page_token": token} if token else {})}


@endpoint("POST", "model-versions/transition-stage", role="editor")
async def transition_stage(call: Call) -> dict[str, Any]:
    name, number, stage = call.arg("name", required=True), _version_number(call), str(call.arg("stage", required=True))
    stage = {s.lower(): s for s in ("None", "Staging", "Production", "Archived")}.get(stage.lower(), stage)
    model = await get_model(call, name)
    if stage in STAGE_ALIASES:
        alias = STAGE_ALIASES[stage]
        if alias in ADMIN_ONLY_ALIASES:
            call.require("admin")
        await call.registry("PUT", model_path(name, f"/aliases/{alias}"), body={"version": number})
    elif stage == "Archived":
        await call.registry("POST", version_path(name, number, "/archive"))
    elif stage == "None":
        for alias in STAGE_ALIASES.values():
            if model.get("aliases", {}).get(alias) == number:
                if alias in ADMIN_ONLY_ALIASES:
                    call.require("admin")
                await call.registry("DELETE", model_path(name, f"/aliases/{alias}"))
        await call.registry("POST", version_path(name, number, "/restore"))
    else:
        raise invalid(f"stage must be None, Staging, Production or Archived, not {stage!r}")
    return {"model_version": await get_version(call, name, number)}


@endpoint("GET", "model-versions/get-download-uri")
async def download_uri(call: Call) -> dict[str, Any]:
    version = await get_version(call, call.arg("name", required=True), _version_number(call))
    return {"artifact_uri": version["source"]}
