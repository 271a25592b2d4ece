"""What links runs and MLflow 3 logged models: metrics a run logs for a model (``log_metric(...,
model_id=...)``, kept on the model's record with the run, dataset and step), and the models a run
used or produced (``log_inputs(models=...)``, ``log_outputs``), kept as hidden run tags that the
run's JSON turns back into ``inputs.model_inputs`` and ``outputs.model_outputs``."""

from __future__ import annotations

import re
import time
from typing import Any

from cairn.services.gateway.mlflow.calls import HIDDEN_TAG_PREFIX, Call
from cairn.services.gateway.mlflow.errors import invalid, not_found
from cairn.services.gateway.mlflow.identifiers import escape

MODEL_INPUT_TAG = f"{HIDDEN_TAG_PREFIX}model_input."
MODEL_OUTPUT_TAG = f"{HIDDEN_TAG_PREFIX}model_output."
_MODEL_ID = re.compile(r"m-[0-9a-f]{32}(-[0-9a-f]{8})?")


def _model_id(value: Any) -> str:
    if not isinstance(value, str) or not _MODEL_ID.fullmatch(value):
        raise not_found(f"Logged model with ID '{value}' not found.")
    return value


async def record_model_metrics(call: Call, run_id: str, metrics: list[dict[str, Any]]) -> None:
    """The metrics that name a ``model_id`` go on that model's record too (grouped per model)."""
    per_model: dict[str, list[dict[str, Any]]] = {}
    for metric in metrics:
        if metric.get("model_id"):
            per_model.setdefault(_model_id(metric["model_id"]), []).append({
                "key": str(metric["key"]), "value": metric["value"], "run_id": run_id,
                "timestamp": int(metric.get("timestamp") or time.time() * 1000), "step": int(metric.get("step") or 0),
                "dataset_name": metric.get("dataset_name") or None,
                "dataset_digest": metric.get("dataset_digest") or None})
    for model_id, points in per_model.items():
        if len(model_id) != 34:
            continue  # a model kept on its run (older ids) has no metrics of its own
        await call.registry("POST", f"/logged-models/{model_id}/metrics", body={"metrics": points})


async def link_models(call: Call, run_id: str, models: list[Any], *, outputs: bool) -> None:
    """Record that run ``run_id`` used (inputs) or produced (outputs) each of ``models``."""
    prefix = MODEL_OUTPUT_TAG if outputs else MODEL_INPUT_TAG
    for item in models:
        if not isinstance(item, dict):
            raise invalid("each model needs a 'model_id'")
        model_id = _model_id(item.get("model_id"))
        if len(model_id) == 34:
            await call.registry("GET", f"/logged-models/{model_id}")  # 404 for an unknown model
        step = str(int(item.get("step") or 0)) if outputs else ""
        await call.registry("PUT", f"/runs/{escape(run_id)}/tags/{escape(prefix + model_id)}", body={"value": step})


def linked_models(tags: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(model_inputs, model_outputs) of a run from its hidden tags."""
    inputs = [{"model_id": k[len(MODEL_INPUT_TAG):]} for k in sorted(tags) if k.startswith(MODEL_INPUT_TAG)]
    outputs = [{"model_id": k[len(MODEL_OUTPUT_TAG):], "step": int(v or 0)}
               for k, v in sorted(tags.items()) if k.startswith(MODEL_OUTPUT_TAG)]
    return inputs, outputs
