"""Logged models as Cairn kept them before they had a record of their own (logged_models.py): the
record is a hidden run tag and the files are the run's artifacts under the model's name, the layout
MLflow 2 used (``runs:/<run>/<name>``). Ids are ``m-<run id>-<8 hex>``. Models logged then are
still read, changed and searched here; new ones are never made this way. logged_models.py routes
the calls for these ids here."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from cairn.services.gateway.mlflow.calls import Call, key_values
from cairn.services.gateway.mlflow.errors import invalid, not_found
from cairn.services.gateway.mlflow.experiments import experiment_id_of
from cairn.services.gateway.mlflow.identifiers import LOGGED_MODEL_ID, escape
from cairn.services.gateway.mlflow.runs import LOGGED_MODEL_TAG, tag_path

STATUSES = {"LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"}


def run_of(model_id: str) -> str:
    """The run a logged model id (``m-<run id>-<8 hex>``, checked) belongs to."""
    return LOGGED_MODEL_ID.check(model_id, "model_id")[2:34]


async def load(call: Call, model_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, run) of a logged model."""
    run = await call.registry("GET", f"/runs/{escape(run_of(model_id))}")
    raw = run["tags"].get(LOGGED_MODEL_TAG + model_id)
    if raw is None:
        raise not_found(f"Logged model with ID '{model_id}' not found")
    return json.loads(raw), run


async def save(call: Call, model_id: str, record: dict[str, Any]) -> None:
    record["last_updated_timestamp_ms"] = int(time.time() * 1000)
    text = json.dumps(record, sort_keys=True)
    if len(text) > 8000:
        raise invalid("the logged model's params and tags are too large for Cairn (8,000 characters in all)")
    await call.registry("PUT", tag_path(run_of(model_id), f"{LOGGED_MODEL_TAG}{model_id}"), body={"value": text})


def model_json(call: Call, model_id: str, record: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    info = {"model_id": model_id, "experiment_id": run["experiment_id"], "name": record["name"],
            "artifact_uri": f"{call.artifact_root(run['id'])}/{record['name']}",
            "status": record["status"], "creation_timestamp_ms": record["creation_timestamp_ms"],
            "last_updated_timestamp_ms": record["last_updated_timestamp_ms"],
            "source_run_id": run["id"], "model_type": record.get("model_type", ""),
            "tags": [{"key": k, "value": v} for k, v in sorted(record["tags"].items())]}
    return {"info": info, "data": {"params": [{"key": k, "value": v} for k, v in sorted(record["params"].items())],
                                   "metrics": []}}


async def get(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    record, run = await load(call, model_id)
    if record["status"] == "deleted":
        raise not_found(f"Logged model with ID '{model_id}' not found")
    return {"model": model_json(call, model_id, record, run)}


async def finalize(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    record, run = await load(call, model_id)
    status = str(call.arg("status", required=True))
    if status not in STATUSES:
        raise invalid(f"status must be one of {sorted(STATUSES)}")
    record["status"] = status
    await save(call, model_id, record)
    return {"model": model_json(call, model_id, record, run)}


async def _edit(call: Call, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Load the logged model named in the path, apply ``change`` to its record, save it."""
    model_id = str(call.args["id"])
    record, _ = await load(call, model_id)
    change(record)
    await save(call, model_id, record)
    return {}


async def set_tags(call: Call) -> dict[str, Any]:
    return await _edit(call, lambda record: record["tags"].update(key_values(call.arg("tags", []), "tag")))


async def delete_tag(call: Call) -> dict[str, Any]:
    return await _edit(call, lambda record: record["tags"].pop(str(call.args["key"]), None))


async def log_params(call: Call) -> dict[str, Any]:
    return await _edit(call, lambda record: record["params"].update(key_values(call.arg("params", []), "param")))


async def delete(call: Call) -> dict[str, Any]:
    model_id = str(call.args["id"])
    record, _ = await load(call, model_id)
    record["status"] = "deleted"
    await save(call, model_id, record)
    return {}


_NAME_FILTER = re.compile(r"^\s*name\s*=\s*'(?P<name>[^']*)'\s*$")


def simple_filter(text: Any) -> bool:
    """Whether models kept on runs can answer this filter (none, or one name)."""
    return not text or _NAME_FILTER.match(str(text)) is not None


async def search(call: Call) -> dict[str, Any]:
    """Logged models of the runs in the given experiments; the filter may be ``name = '<name>'``."""
    text = call.arg("filter")
    wanted = None
    if text:
        m = _NAME_FILTER.match(str(text))
        if m is None:
            raise invalid("Cairn searches logged models by name only: filter_string=\"name = '<name>'\"")
        wanted = m["name"]
    experiment_ids = [await experiment_id_of(call, e) for e in call.list_arg("experiment_ids")]
    found = await call.registry("POST", "/runs/search", body={"experiment_ids": experiment_ids or None,
                                                              "page_size": 1000})
    models = []
    for run in found["runs"]:
        for key, raw in run["tags"].items():
            if key.startswith(LOGGED_MODEL_TAG):
                record = json.loads(raw)
                if record["status"] != "deleted" and (wanted is None or record["name"] == wanted):
                    models.append(model_json(call, key[len(LOGGED_MODEL_TAG):], record, run))
    return {"models": models}
