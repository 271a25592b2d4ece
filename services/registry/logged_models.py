"""MLflow 3's logged models as a registry aggregate of their own (id = the model id, ``m-<32 hex>``),
pure like domain.py: commands check state and return one event; ``evolve_logged_model`` folds it.

A logged model belongs to an experiment, may name the run that produced it (``source_run_id``: MLflow
accepts any id there, so it is kept as given), and has params (immutable once set, like a run's),
tags, a status (pending -> ready or upload failed) and metrics logged by runs that evaluated it.
Deleting one is a tombstone: the record stays in the log; reads and searches stop showing it."""

from __future__ import annotations

from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import Conflict, EventOutOfOrder, InvalidInput, NotFound
from cairn.kernel.ids import check_key

State = dict[str, Any] | None
STATUSES = ("pending", "ready", "failed")
MAX_VALUE = 8000
MAX_METRICS = 1000
BAD_NAME_CHARACTERS = ("/", ":", ".", "%", '"', "'", "\\")  # MLflow's, and a backslash


def _values(items: dict[str, Any], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in items.items():
        check_key(key, f"{what} key")
        text = "" if value is None else str(value)
        if len(text) > MAX_VALUE:
            raise InvalidInput(f"{what} {key!r} has a value of {len(text)} characters; at most {MAX_VALUE} fit",
                               details={"field": f"{what}s.{key}"})
        out[key] = text
    return out


def _live(state: State, model_id: str) -> dict[str, Any]:
    if state is None or state.get("deleted"):
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    return state


def create_logged_model(state: State, *, model_id: str, experiment_id: str, name: str, model_type: str,
                        source_run_id: str | None, params: dict[str, Any], tags: dict[str, Any]) -> Decision:
    if state is not None:
        return None  # the same create again (a retried request with a client-made id)
    if not name or len(name) > 256 or any(c in name for c in BAD_NAME_CHARACTERS) or not name.isprintable():
        raise InvalidInput(f"Invalid model name ({name!r}) provided. Model name must be a non-empty string of at "
                           "most 256 printable characters and cannot contain the following characters: "
                           f"{BAD_NAME_CHARACTERS}", details={"field": "name"})
    return "logged_model.created", {
        "experiment_id": experiment_id, "name": name, "model_type": model_type[:256],
        "source_run_id": source_run_id, "params": _values(params, "param"), "tags": _values(tags, "tag"),
    }


def log_logged_model_params(state: State, *, model_id: str, params: dict[str, Any]) -> Decision:
    current = _live(state, model_id)
    new = _values(params, "param")
    for key, value in new.items():
        if key in current["params"] and current["params"][key] != value:
            raise Conflict(f"param {key!r} of logged model {model_id!r} is already {current['params'][key]!r}; "
                           f"params are immutable (cannot set it to {value!r})", details={"field": f"params.{key}"})
    new = {k: v for k, v in new.items() if k not in current["params"]}
    return ("logged_model.params_logged", {"params": new}) if new else None


def set_logged_model_tags(state: State, *, model_id: str, tags: dict[str, Any]) -> Decision:
    current = _live(state, model_id)
    new = {k: v for k, v in _values(tags, "tag").items() if current["tags"].get(k) != v}
    return ("logged_model.tags_set", {"tags": new}) if new else None


def delete_logged_model_tag(state: State, *, model_id: str, key: str) -> Decision:
    current = _live(state, model_id)
    if key not in current["tags"]:
        raise NotFound(f"No tag with key {key!r} found for model with ID {model_id!r}.")
    return "logged_model.tag_deleted", {"key": key}


def finalize_logged_model(state: State, *, model_id: str, status: str) -> Decision:
    current = _live(state, model_id)
    if status not in STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}", details={"field": "status"})
    if current["status"] == status:
        return None
    return "logged_model.finalized", {"status": status}


def log_logged_model_metrics(state: State, *, model_id: str, metrics: list[dict[str, Any]]) -> Decision:
    """Metrics a run logged for this model (MLflow's ``log_metric(..., model_id=...)``)."""
    _live(state, model_id)
    if not metrics:
        return None
    if len(metrics) > MAX_METRICS:
        raise InvalidInput(f"at most {MAX_METRICS} metrics per request", details={"field": "metrics"})
    for metric in metrics:
        check_key(metric["key"], "metric key")
    return "logged_model.metrics_logged", {"metrics": metrics}


def delete_logged_model(state: State, *, model_id: str) -> Decision:
    _live(state, model_id)
    return "logged_model.deleted", {}


def evolve_logged_model(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "logged_model.created":
        return {"experiment_id": data["experiment_id"], "status": "pending", "deleted": False,
                "params": dict(data["params"]), "tags": dict(data["tags"])}
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a logged model that does not exist: no logged_model.created came before it")
    if event_type == "logged_model.params_logged":
        state["params"].update(data["params"])
    elif event_type == "logged_model.tags_set":
        state["tags"].update(data["tags"])
    elif event_type == "logged_model.tag_deleted":
        state["tags"].pop(data["key"], None)
    elif event_type == "logged_model.finalized":
        state["status"] = data["status"]
    elif event_type == "logged_model.deleted":
        state["deleted"] = True
    return state
