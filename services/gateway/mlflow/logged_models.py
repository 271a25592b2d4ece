"""MLflow 3 logged models, each a record of its own in the registry (``logged_model.*`` events):
an experiment, a name, a type, an optional source run, params, tags, status and the metrics runs
logged for it. A model whose source run is in the project keeps its files under that run's
artifacts (``runs:/<run>/<name>``, the MLflow 2 layout, so older clients find them); one without a
run gets an artifact location of its own (``mlflow-artifacts:/<project>/<model id>/artifacts``),
whose files the artifact store keeps content-addressed under the model's id.

Models logged before they had their own record (ids ``m-<run id>-<8 hex>``, kept as hidden tags on
their run) are still served, by logged_models_on_runs.py."""

from __future__ import annotations

import re
from typing import Any

from cairn.services.gateway.mlflow import logged_models_on_runs as on_runs
from cairn.services.gateway.mlflow.calls import Call, endpoint, key_values, millis
from cairn.services.gateway.mlflow.errors import MlflowError, ServiceError, invalid, not_found
from cairn.services.gateway.mlflow.experiments import experiment_id_of
from cairn.services.gateway.mlflow.identifiers import escape

MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
TO_MLFLOW = {"pending": "LOGGED_MODEL_PENDING", "ready": "LOGGED_MODEL_READY", "failed": "LOGGED_MODEL_UPLOAD_FAILED"}
FROM_MLFLOW = {v: k for k, v in TO_MLFLOW.items()} | {"PENDING": "pending", "READY": "ready",
                                                        "FAILED": "failed", "UPLOAD_FAILED": "failed"}


def model_path(model_id: str, rest: str = "") -> str:
    """``/logged-models/<id><rest>`` with the id checked (a bad one is a 404, as MLflow answers)."""
    if not MODEL_ID.fullmatch(model_id):
        raise not_found(f"Logged model with ID '{model_id}' not found.")
    return f"/logged-models/{model_id}{rest}"


def is_legacy(model_id: str) -> bool:
    return on_runs.LOGGED_MODEL_ID.pattern.fullmatch(model_id) is not None


async def source_run_held(call: Call, run_id: str | None) -> bool:
    if not run_id or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", run_id):
        return False
    try:
        await call.registry("GET", f"/runs/{escape(run_id)}")
    except ServiceError as err:
        if err.status == 404:
            return False
        raise
    return True


def artifact_uri(call: Call, model: dict[str, Any], run_held: bool) -> str:
    if run_held:
        return f"{call.artifact_root(model['source_run_id'])}/{model['name']}"
    return call.artifact_root(model["id"])


def model_json(call: Call, model: dict[str, Any], run_held: bool) -> dict[str, Any]:
    info = {"model_id": model["id"], "experiment_id": model["experiment_id"], "name": model["name"],
            "artifact_uri": artifact_uri(call, model, run_held), "status": TO_MLFLOW[model["status"]],
            "creation_timestamp_ms": millis(model["created_at"]),
            "last_updated_timestamp_ms": millis(model["updated_at"]), "model_type": model["model_type"],
            "tags": [{"key": k, "value": v} for k, v in sorted(model["tags"].items())]}
    if model.get("source_run_id"):
        info["source_run_id"] = model["source_run_id"]
    metrics = [{k: v for k, v in {**m, "model_id": model["id"]}.items() if v is not None} for m in model["metrics"]]
    return {"info": info, "data": {"params": [{"key": k, "value": v} for k, v in sorted(model["params"].items())],
                                   "metrics": metrics}}


async def _answer(call: Call, model: dict[str, Any]) -> dict[str, Any]:
    return {"model": model_json(call, model, await source_run_held(call, model.get("source_run_id")))}


async def load_record(call: Call, model_id: str) -> dict[str, Any]:
    """The registry's record of a logged model (``m-<32 hex>``)."""
    return await call.registry("GET", model_path(model_id))  # type: ignore[no-any-return]


async def load(call: Call, model_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, owner) of a logged model as models.py reads it, the shape it had when every logged
    model lived on a run: ``owner["id"]`` holds the files (the source run, or for a model without
    one the model's own id in the artifact store) and ``record["name"]`` is their folder there
    (empty: the root of the model's own files)."""
    if is_legacy(model_id):
        return await on_runs.load(call, model_id)
    model = await load_record(call, model_id)
    if await source_run_held(call, model.get("source_run_id")):
        return model, await call.registry("GET", f"/runs/{escape(model['source_run_id'])}")
    return {**model, "name": ""}, {"id": model["id"]}


@endpoint("POST", "logged-models", role="editor")
async def create(call: Call) -> dict[str, Any]:
    run_id = call.arg("source_run_id")
    if call.arg("experiment_id") is None and await source_run_held(call, run_id):
        # older clients (and Cairn's own callers) name only the run: the model goes to its experiment
        experiment_id = (await call.registry("GET", f"/runs/{escape(str(run_id))}"))["experiment_id"]
    else:
        experiment_id = await experiment_id_of(call, call.arg("experiment_id", required=True))
    name = call.arg("name")
    if name is not None and not isinstance(name, str):
        raise invalid(f"Invalid value {name!r} for parameter 'name' supplied: a string is expected")
    body = {"experiment_id": experiment_id, "name": name, "model_type": str(call.arg("model_type", "")),
            "source_run_id": None if run_id is None else str(run_id),
            "params": key_values(call.arg("params", []), "param"), "tags": key_values(call.arg("tags", []), "tag")}
    return await _answer(call, await call.registry("POST", "/logged-models", body=body))


@endpoint("GET", "logged-models/{id}")
async def get(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    if is_legacy(model_id):
        return await on_runs.get(call)
    return await _answer(call, await load_record(call, model_id))


@endpoint("PATCH", "logged-models/{id}", role="editor")
async def finalize(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    if is_legacy(model_id):
        return await on_runs.finalize(call)
    status = str(call.arg("status", required=True))
    if status not in FROM_MLFLOW:
        raise invalid(f"status must be one of {sorted(TO_MLFLOW.values())}")
    return await _answer(call, await call.registry("POST", model_path(model_id, "/finalize"),
                                                   body={"status": FROM_MLFLOW[status]}))


@endpoint("PATCH", "logged-models/{id}/tags", role="editor")
async def set_tags(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    if is_legacy(model_id):
        return await on_runs.set_tags(call)
    await call.registry("PATCH", model_path(model_id, "/tags"), body={"tags": key_values(call.arg("tags", []), "tag")})
    return {}


@endpoint("DELETE", "logged-models/{id}/tags/{key}", role="admin")  # deletions: admin, as on the services
async def delete_tag(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    if is_legacy(model_id):
        return await on_runs.delete_tag(call)
    try:
        await call.registry("DELETE", model_path(model_id, f"/tags/{escape(str(call.args['key']))}"))
    except ServiceError as err:
        if err.status == 404 and err.message.startswith("No tag with key"):
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", err.message, 404) from None
        raise
    return {}


@endpoint("POST", "logged-models/{id}/params", role="editor")
async def log_params(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    if is_legacy(model_id):
        return await on_runs.log_params(call)
    await call.registry("POST", model_path(model_id, "/params"),
                        body={"params": key_values(call.arg("params", []), "param")})
    return {}


@endpoint("DELETE", "logged-models/{id}", role="admin")
async def delete(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    if is_legacy(model_id):
        return await on_runs.delete(call)
    await call.registry("DELETE", model_path(model_id))
    return {}


@endpoint("POST", "logged-models/search")
async def search(call: Call) -> dict[str, Any]:
    """MLflow's filter syntax, datasets, order_by and pages; models kept on runs (older ids) follow
    on the first page when no filter beyond a name is given."""
    experiment_ids = [await experiment_id_of(call, e) for e in call.list_arg("experiment_ids")]
    if not experiment_ids:
        raise invalid("Missing value for required parameter 'experiment_ids'. "
                      "See the API docs for more information about request parameters.")
    max_results = call.int_arg("max_results", 100) or 100
    if not 1 <= max_results <= 1000:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results': it must be between 1 and 1000")
    body = {"experiment_ids": experiment_ids, "filter": call.arg("filter"), "datasets": call.arg("datasets"),
            "order_by": call.arg("order_by"), "page_size": max_results, "page_token": call.arg("page_token")}
    found = await call.registry("POST", "/logged-models/search", body=body)
    held = {run_id: await source_run_held(call, run_id) for run_id in {m.get("source_run_id") for m in found["models"]}}
    out: dict[str, Any] = {"models": [model_json(call, m, held[m.get("source_run_id")]) for m in found["models"]]}
    if found.get("next_page_token"):
        out["next_page_token"] = found["next_page_token"]
    elif not call.arg("page_token") and not call.arg("datasets") and on_runs.simple_filter(call.arg("filter")):
        out["models"] += (await on_runs.search(call))["models"]
    return out
