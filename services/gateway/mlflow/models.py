"""MLflow's model registry over Cairn's models, versions and aliases.

A version's files are the run artifacts its ``source`` names; Cairn records the version with the
digest of a manifest of those files (so the bytes it points at can never change) and keeps the
MLflow ``source`` as the version tag ``mlflow.source``. Stages map to aliases: ``Staging`` and
``Production`` are the aliases ``staging`` and ``production`` (``production`` stays admin-only),
``Archived`` archives the version. Deleting a model or version archives it.
"""

from __future__ import annotations

import re
import time
from typing import Any

from cairn.core import Manifest, ManifestEntry
from cairn.kernel.identity import ADMIN_ONLY_ALIASES
from cairn.services.gateway.mlflow import model_local, model_search, model_sources
from cairn.services.gateway.mlflow.artifacts import run_files
from cairn.services.gateway.mlflow.calls import Call, endpoint, key_values, millis
from cairn.services.gateway.mlflow.errors import MlflowError, ServiceError, invalid, not_found
from cairn.services.gateway.mlflow.identifiers import (
    ALIAS,
    MODEL_NAME,
    TAG_KEY,
    escape,
)
from cairn.services.gateway.mlflow.paging import page, page_token_offset

SOURCE_TAG = "mlflow.source"
DELETED_TAG = "mlflow.cairn.deleted"  # a version MLflow deleted: archived, and gone for MLflow
HIDDEN_TAGS = {SOURCE_TAG, DELETED_TAG}
STAGE_ALIASES = {"Staging": "staging", "Production": "production"}


def version_json(call: Call, model: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    aliases = [a for a, n in model.get("aliases", {}).items() if n == v["version"]]
    stage = "Archived" if v["archived"] else next(
        (s for s, a in (("Production", "production"), ("Staging", "staging")) if a in aliases), "None")
    tags = v.get("tags", {})
    unheld = v.get("files_unavailable") or {}
    return {"name": model["name"], "version": str(v["version"]), "creation_timestamp": millis(v["created_at"]),
            "last_updated_timestamp": millis(v["updated_at"]), "description": v["description"],
            "user_id": v["created_by"].split(":")[0], "current_stage": stage,
            "source": unheld.get("source") or tags.get(SOURCE_TAG, f"{call.artifact_root(v['run_id'])}"),
            "run_id": v["run_id"], "status": "READY", "aliases": aliases,
            "tags": [{"key": k, "value": x} for k, x in sorted(tags.items()) if k not in HIDDEN_TAGS]}


async def model_json(call: Call, model: dict[str, Any]) -> dict[str, Any]:
    versions = await listed_versions(call, model["name"])
    latest: dict[str, dict[str, Any]] = {}
    for v in versions:
        latest[version_json(call, model, v)["current_stage"]] = v
    return {"name": model["name"], "creation_timestamp": millis(model["created_at"]),
            "last_updated_timestamp": millis(model["updated_at"]), "description": model["description"],
            "tags": [{"key": k, "value": x} for k, x in sorted(model.get("tags", {}).items())],
            "aliases": [{"alias": a, "version": str(n)} for a, n in sorted(model.get("aliases", {}).items())],
            "latest_versions": [version_json(call, model, v) for v in latest.values()]}


async def listed_versions(call: Call, name: str) -> list[dict[str, Any]]:
    """The versions MLflow sees: stage ``Archived`` ones included, deleted ones (archived and marked
    with the hidden tag ``mlflow.cairn.deleted``) left out."""
    versions = (await call.registry("GET", f"/models/{escape(name)}/versions",
                                     params={"include_archived": "true"}))["versions"]
    return [v for v in versions if DELETED_TAG not in v.get("tags", {})]


def model_path(name: Any, rest: str = "", parameter: str = "name") -> str:
    """``/models/<name><rest>``, the name (from the caller) checked and escaped."""
    return f"/models/{MODEL_NAME.segment(name, parameter)}{rest}"


def version_path(name: Any, version: int, rest: str = "") -> str:
    return model_path(name, f"/versions/{int(version)}{rest}")


def tag_keys(tags: dict[str, str], parameter: str = "tags.key") -> dict[str, str]:
    """``{escaped key: value}``, every key checked before anything is sent."""
    return {TAG_KEY.segment(key, parameter): value for key, value in tags.items()}


async def get_model(call: Call, name: Any, parameter: str = "name") -> dict[str, Any]:
    """The model, or MLflow's not-found error: a deleted (archived) model is gone for MLflow."""
    if not name:
        raise invalid(f"Missing value for required parameter '{parameter}'.")
    try:
        model = await call.registry("GET", model_path(name, parameter=parameter))
    except ServiceError as err:
        if err.status == 404 and err.message.startswith("model "):
            raise not_found(f"Registered Model with name={name} not found") from None
        raise
    if model.get("archived"):
        raise not_found(f"Registered Model with name={name} not found")
    return model


def _version_number(call: Call) -> int:
    raw = call.arg("version", required=True)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise invalid(f"Parameter 'version' must be an integer, got '{raw}'.") from None


async def get_version(call: Call, name: str, version: int) -> dict[str, Any]:
    """The version as MLflow shows it; one MLflow deleted is not found, as in MLflow."""
    model = await get_model(call, name)
    try:
        found = await call.registry("GET", version_path(name, version))
    except ServiceError as err:
        if err.status == 404:
            raise not_found(f"Model Version (name={name}, version={version}) not found") from None
        raise
    if DELETED_TAG in found.get("tags", {}):
        raise not_found(f"Model Version (name={name}, version={version}) not found")
    return version_json(call, model, found)


@endpoint("POST", "registered-models/create", role="editor")
async def create(call: Call) -> dict[str, Any]:
    name = MODEL_NAME.check(call.arg("name", required=True), "name")
    tags = tag_keys(key_values(call.arg("tags", []), "tag"))
    try:
        model = await call.registry("POST", "/models", body={"name": name, "description": str(call.arg("description", ""))})
    except ServiceError as err:
        if err.code == "already_exists":
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists. "
                              f"{err.message}") from None
        raise
    for key, value in tags.items():
        model = await call.registry("PUT", model_path(name, f"/tags/{key}"), body={"value": value})
    return {"registered_model": await model_json(call, model)}


@endpoint("GET", "registered-models/get")
async def get(call: Call) -> dict[str, Any]:
    return {"registered_model": await model_json(call, await get_model(call, call.arg("name", required=True)))}


@endpoint("POST", "registered-models/rename", role="editor")
async def rename(call: Call) -> dict[str, Any]:
    name, new_name = call.arg("name", required=True), call.arg("new_name", required=True)
    await get_model(call, name)
    model = await call.registry("PATCH", model_path(name), body={"name": MODEL_NAME.check(new_name, "new_name")})
    return {"registered_model": await model_json(call, model)}


@endpoint("PATCH", "registered-models/update", role="editor")
async def update(call: Call) -> dict[str, Any]:
    name = call.arg("name", required=True)
    await get_model(call, name)
    model = await call.registry("PATCH", model_path(name), body={"description": str(call.arg("description", ""))})
    return {"registered_model": await model_json(call, model)}


@endpoint("DELETE", "registered-models/delete", role="admin")
async def delete(call: Call) -> dict[str, Any]:
    """Archive the model under a name of its own (``<name>.deleted-<ms>``), so that MLflow code can
    create a model of the same name again, as MLflow allows; Cairn keeps the archived model."""
    name = call.arg("name", required=True)
    model = await get_model(call, name)
    kept = f"{model['name'][:200]}.deleted-{time.time_ns() // 1_000_000}"
    await call.registry("PATCH", model_path(name), body={"name": kept})
    await call.registry("POST", model_path(kept, "/archive"))
    return {}


@endpoint("POST", "registered-models/set-tag", role="editor")
async def set_tag(call: Call) -> dict[str, Any]:
    name, key = call.arg("name", required=True), TAG_KEY.segment(call.arg("key", required=True), "key")
    await call.registry("PUT", model_path(name, f"/tags/{key}"), body={"value": str(call.arg("value", ""))})
    return {}


@endpoint("DELETE", "registered-models/delete-tag", role="admin")  # deletions: admin, as on the services
async def delete_tag(call: Call) -> dict[str, Any]:
    name, key = call.arg("name", required=True), TAG_KEY.segment(call.arg("key", required=True), "key")
    await get_model(call, name)
    await call.registry("DELETE", model_path(name, f"/tags/{key}"))
    return {}


@endpoint("DELETE", "model-versions/delete-tag", role="admin")
async def delete_version_tag(call: Call) -> dict[str, Any]:
    name, number = call.arg("name", required=True), _version_number(call)
    key = TAG_KEY.segment(call.arg("key", required=True), "key")
    await get_version(call, name, number)
    await call.registry("DELETE", version_path(name, number, f"/tags/{key}"))
    return {}


_MODEL_ATTRIBUTES = {"name": {"=", "!=", "LIKE", "ILIKE"}}
_MODEL_ORDER = {"name": lambda m: m["name"], "timestamp": lambda m: m["created_at"],
                "creation_timestamp": lambda m: m["created_at"], "last_updated_timestamp": lambda m: m["updated_at"]}
_VERSION_ATTRIBUTES = {"name": {"=", "!=", "LIKE", "ILIKE"}, "run_id": {"=", "!=", "IN", "NOT IN"},
                       "source_path": {"=", "!=", "LIKE", "ILIKE"}, "version_number": {"=", "!="}}
_VERSION_ORDER = {"name": lambda v: v["name"], "version_number": lambda v: int(v["version"]),
                  "timestamp": lambda v: v["_created_at"], "creation_timestamp": lambda v: v["_created_at"],
                  "last_updated_timestamp": lambda v: v["_updated_at"], "run_id": lambda v: v["run_id"]}


@endpoint("GET", "registered-models/search")
async def search(call: Call) -> dict[str, Any]:
    """MLflow's filter (name, tags, AND) and order_by over the project's models; name ASC breaks ties."""
    clauses = model_search.parse_filter(call.arg("filter"), _MODEL_ATTRIBUTES, "registered models")
    size = model_search.max_results(call.arg("max_results"), 100, model_search.MAX_MODELS)
    order = model_search.sort_key(call.list_arg("order_by"), _MODEL_ORDER, [("name", False)], "registered models")
    models = [x for x in (await call.registry("GET", "/models"))["models"]
              if model_search.matches(clauses, {"name": x["name"]}, x.get("tags", {}))]
    chosen, token = page(model_search.ordered(models, order), size, page_token_offset(call.arg("page_token")))
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


@endpoint("POST", "model-versions/create", role="editor")
async def create_version(call: Call) -> dict[str, Any]:
    """A version from any source: files Cairn holds are pinned by a manifest digest; a source it cannot
    resolve is registered without files (model_sources.py), as MLflow accepts it."""
    name, source = MODEL_NAME.check(call.arg("name", required=True), "name"), str(call.arg("source", required=True))
    tags = tag_keys(key_values(call.arg("tags", []), "tag"))
    await get_model(call, name)
    found = await model_sources.resolve(call, source, call.arg("run_id"), call.arg("model_id"))
    description = str(call.arg("description", "") or "")
    if isinstance(found, model_sources.Unheld):
        created = await call.registry("POST", model_path(name, "/versions/without-files"), body={
            "run_id": found.run_id, "source": source, "reason": found.reason, "description": description})
        for key, value in tags.items():
            await call.registry("PUT", version_path(name, created["version"], f"/tags/{key}"), body={"value": value})
        await model_sources.note_on_logged_model(call, call.arg("model_id"), name, created["version"])
        return {"model_version": await get_version(call, name, created["version"])}
    if isinstance(found, model_sources.Local):  # copied from a folder the site allows (model_local.py)
        await call.registry("GET", f"/runs/{escape(found.run_id)}")  # the project's run (404 before any copy)
        run_id, rel, digest = found.run_id, "", await model_local.copy_folder(call, found.folder)
    else:
        run_id, rel, digest = found.run_id, found.rel, found.digest
    if digest is None:
        files = await run_files(call, run_id)
        prefix = f"{rel}/" if rel else ""
        entries = [ManifestEntry(path[len(prefix):], "file", info["size"], info["digest"])
                   for path, info in files.items() if path.startswith(prefix)]
        manifest = Manifest.from_entries(entries)
        digest = (await call.artifacts("POST", f"/projects/{call.project}/manifests",
                                       body={"manifest": manifest.as_dict()}))["digest"]
    created = await call.registry("POST", model_path(name, "/versions"), body={
        "run_id": run_id, "artifact_digest": digest, "description": description})
    number = created["version"]
    download = f"{call.artifact_root(run_id)}/{rel}" if rel else call.artifact_root(run_id)
    if isinstance(found, model_sources.Local):
        download = source  # the files are pinned by the version's digest, not under the run
    for key, value in {escape(SOURCE_TAG): download, **tags}.items():
        await call.registry("PUT", version_path(name, number, f"/tags/{key}"), body={"value": value})
    await model_sources.note_on_logged_model(call, call.arg("model_id"), name, number)
    return {"model_version": await get_version(call, name, number)}


@endpoint("GET", "model-versions/get")
async def get_model_version(call: Call) -> dict[str, Any]:
    return {"model_version": await get_version(call, call.arg("name", required=True), _version_number(call))}


@endpoint("PATCH", "model-versions/update", role="editor")
async def update_version(call: Call) -> dict[str, Any]:
    name, number = call.arg("name", required=True), _version_number(call)
    await get_version(call, name, number)
    await call.registry("PATCH", version_path(name, number), body={"description": str(call.arg("description", ""))})
    return {"model_version": await get_version(call, name, number)}


@endpoint("DELETE", "model-versions/delete", role="admin")
async def delete_version(call: Call) -> dict[str, Any]:
    """Archive the version and mark it deleted (the hidden tag): MLflow no longer finds it, while a
    version archived by stage ``Archived`` stays visible; the number is never reused."""
    name, number = call.arg("name", required=True), _version_number(call)
    version = await get_version(call, name, number)
    for alias in version["aliases"]:
        await call.registry("DELETE", model_path(name, f"/aliases/{escape(alias)}"))
    await call.registry("PUT", version_path(name, number, f"/tags/{escape(DELETED_TAG)}"), body={"value": "true"})
    if version["current_stage"] != "Archived":
        await call.registry("POST", version_path(name, number, "/archive"))
    return {}


@endpoint("POST", "model-versions/set-tag", role="editor")
async def set_version_tag(call: Call) -> dict[str, Any]:
    name, number, key = call.arg("name", required=True), _version_number(call), call.arg("key", required=True)
    await call.registry("PUT", version_path(name, number, f"/tags/{TAG_KEY.segment(key, 'key')}"),
                        body={"value": str(call.arg("value", ""))})
    return {}


@endpoint("GET", "model-versions/search")
async def search_versions(call: Call) -> dict[str, Any]:
    """MLflow's version filter and order_by (ties: name ASC, version DESC; with no order_by the newest
    change comes first). Times compare at the registry's full precision."""
    clauses = model_search.parse_filter(call.arg("filter"), _VERSION_ATTRIBUTES, "model versions")
    size = model_search.max_results(call.arg("max_results"), 10_000, model_search.MAX_VERSIONS)
    requested = call.list_arg("order_by")  # MLflow's ties: name ASC, version DESC (newest change first by default)
    order = model_search.sort_key(requested, _VERSION_ORDER, ([] if requested else [("last_updated_timestamp", True)])
                                  + [("name", False), ("version_number", True)], "model versions")
    names = [c.values[0] for c in clauses if not c.tag and c.key == "name" and c.op == "="]
    if names:
        names = [MODEL_NAME.check(names[0], "filter")]
    else:
        names = [m["name"] for m in (await call.registry("GET", "/models"))["models"]]
    out = []
    for name in names:
        try:
            model = await call.registry("GET", f"/models/{escape(name)}")
        except ServiceError as err:
            if err.status == 404:
                continue  # the filter names a model that does not exist: no versions
            raise
        for v in await listed_versions(call, name):
            item = version_json(call, model, v)
            fields = {"name": item["name"], "run_id": item["run_id"], "source_path": item["source"],
                      "version_number": item["version"]}
            if model_search.matches(clauses, fields, v.get("tags", {})):
                out.append({**item, "_created_at": v["created_at"], "_updated_at": v["updated_at"]})
    chosen, token = page(model_search.ordered(out, order), size, page_token_offset(call.arg("page_token")))
    return {"model_versions": [{k: x for k, x in item.items() if not k.startswith("_")} for item in chosen],
            **({"next_page_token": token} if token else {})}


@endpoint("POST", "model-versions/transition-stage", role="editor")
async def transition_stage(call: Call) -> dict[str, Any]:
    name, number, stage = call.arg("name", required=True), _version_number(call), str(call.arg("stage", required=True))
    stage = {s.lower(): s for s in ("None", "Staging", "Production", "Archived")}.get(stage.lower(), stage)
    model = await get_model(call, name)
    await get_version(call, name, number)
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
    source = version["source"]
    for _ in range(10):  # a copy's source is models:/<name>/<n>; MLflow answers where the files are
        m = re.match(r"^models:/([^/@]+)/(\d+)$", source)
        if m is None:
            break
        source = (await get_version(call, m[1], int(m[2])))["source"]
    return {"artifact_uri": source}
