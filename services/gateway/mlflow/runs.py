"""MLflow runs = Cairn runs. Params and tags are registry commands; metrics go to the metrics
service; status changes are ``run.finished``; delete/restore are archive/restore."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from typing import Any

import pyarrow as pa

from cairn.protocol import metric_batch_schema
from cairn.services.gateway.mlflow.calls import (
    HIDDEN_TAG_PREFIX,
    Call,
    endpoint,
    key_values,
    millis,
)
from cairn.services.gateway.mlflow.errors import invalid
from cairn.services.gateway.mlflow.experiments import experiment_id_of
from cairn.services.gateway.mlflow.identifiers import RUN_ID, TAG_KEY
from cairn.services.gateway.mlflow.logged_model_links import (
    link_models,
    linked_models,
    record_model_metrics,
)
from cairn.services.gateway.mlflow.search import translate_filter, translate_order_by

STATUS_TO_MLFLOW = {"running": "RUNNING", "scheduled": "SCHEDULED", "finished": "FINISHED",
                    "failed": "FAILED", "killed": "KILLED"}
LOGGED_MODEL_TAG = f"{HIDDEN_TAG_PREFIX}logged_model."
DATASET_TAG = f"{HIDDEN_TAG_PREFIX}dataset."
METRIC_SCHEMA = metric_batch_schema()



def millis_of(seconds: float | None) -> int:
    """A metric point's time (seconds, as the metrics service keeps it) in MLflow's milliseconds;
    0 for a summary written before summaries kept the last point's time."""
    return 0 if seconds is None else int(round(seconds * 1000))

def _number(value: Any) -> float:
    """A metric value: a number, or the strings protobuf's JSON uses for NaN and the infinities."""
    special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    if isinstance(value, str) and value in special:
        return special[value]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def run_json(call: Call, run: dict[str, Any], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """A Cairn run (and its metric summaries) as MLflow's Run message."""
    user = run["created_by"].split(":")[0]
    tags, hidden = {}, []
    for k, v in run["tags"].items():
        if k.startswith(HIDDEN_TAG_PREFIX):
            hidden.append(k)
        else:
            tags[k] = v
    tags.setdefault("mlflow.runName", run["name"])
    tags.setdefault("mlflow.user", user)
    info = {
        "run_id": run["id"], "run_uuid": run["id"], "run_name": run["name"],
        "experiment_id": run["experiment_id"], "user_id": user,
        "status": STATUS_TO_MLFLOW.get(run["status"], "RUNNING"),
        "start_time": millis(run.get("started_at") or run["created_at"]),
        "artifact_uri": call.artifact_root(run["id"]),
        "lifecycle_stage": "deleted" if run["archived"] else "active",
    }
    if run.get("ended_at"):
        info["end_time"] = millis(run["ended_at"])
    metrics = [{"key": s["key"], "value": s["last"], "timestamp": millis_of(s.get("last_time")), "step": s["last_step"]}
               for s in summaries if s.get("last") is not None]
    hidden.sort()
    datasets = [json.loads(run["tags"][k]) for k in hidden if k.startswith(DATASET_TAG)]
    models = [{"model_id": k[len(LOGGED_MODEL_TAG):], "step": 0} for k in hidden if k.startswith(LOGGED_MODEL_TAG)]
    model_inputs, model_outputs = linked_models(run["tags"])  # MLflow 3 logged models (logged_model_links.py)
    models += model_outputs
    return {"info": info,
            "data": {"metrics": metrics, "params": [{"key": k, "value": v} for k, v in sorted(run["params"].items())],
                     "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]},
            "inputs": {"dataset_inputs": datasets, "model_inputs": model_inputs},
            "outputs": {"model_outputs": models}}


def run_path(run_id: str, rest: str = "", parameter: str = "run_id") -> str:
    """``/runs/<run id><rest>`` with the run id checked and escaped."""
    return f"/runs/{RUN_ID.segment(run_id, parameter)}{rest}"


def tag_path(run_id: str, key: str) -> str:
    return run_path(run_id, f"/tags/{TAG_KEY.segment(key, 'key')}")


async def summaries_of(call: Call, run_id: str) -> list[dict[str, Any]]:
    return (await call.metrics("GET", run_path(run_id, "/metrics/summary")))["summaries"]


async def load_run(call: Call, run_id: str, parameter: str = "run_id") -> dict[str, Any]:
    return await call.registry("GET", run_path(run_id, parameter=parameter))


def _run_id(call: Call) -> str:
    """The call's run (``run_id``, or MLflow's older ``run_uuid``), checked."""
    value = call.arg("run_id") or call.arg("run_uuid") or call.arg("run_id", required=True)
    return RUN_ID.check(value, "run_id")


@endpoint("POST", "runs/create", role="editor")
async def create(call: Call) -> dict[str, Any]:
    experiment_id = await experiment_id_of(call, call.arg("experiment_id", "0"))
    tags = key_values(call.arg("tags", []), "tag")
    name = call.arg("run_name") or tags.get("mlflow.runName")
    body: dict[str, Any] = {"experiment_id": experiment_id, "tags": tags}
    if name:
        body["name"] = str(name)
    run = await call.registry("POST", "/runs", body=body)
    return {"run": run_json(call, run, [])}


@endpoint("GET", "runs/get")
async def get(call: Call) -> dict[str, Any]:
    run_id = _run_id(call)
    run, summaries = await asyncio.gather(load_run(call, run_id), summaries_of(call, run_id))
    return {"run": run_json(call, run, summaries)}


@endpoint("POST", "runs/update", role="editor")
async def update(call: Call) -> dict[str, Any]:
    """Rename, and end a run (FINISHED, FAILED, KILLED: ``run.finished``; ending twice the same
    way is a no-op, ending an ended run another way is refused)."""
    run_id = _run_id(call)
    name, status = call.arg("run_name"), call.arg("status")
    run = None
    if name:
        run = await call.registry("PATCH", run_path(run_id), body={"name": str(name)})
    if status in ("FINISHED", "FAILED", "KILLED"):
        run = await call.registry("POST", run_path(run_id, "/finish"), body={"status": str(status).lower()})
    elif status == "RUNNING":
        run = await load_run(call, run_id)
        if run["status"] == "scheduled":
            run = await call.registry("POST", run_path(run_id, "/start"))
    elif status not in (None, "", "SCHEDULED"):
        raise invalid(f"status must be RUNNING, SCHEDULED, FINISHED, FAILED or KILLED, not {status!r}")
    return {"run_info": run_json(call, run or await load_run(call, run_id), [])["info"]}


@endpoint("POST", "runs/delete", role="admin")
async def delete(call: Call) -> dict[str, Any]:
    await call.registry("POST", run_path(_run_id(call), "/archive"))
    return {}


@endpoint("POST", "runs/restore", role="admin")
async def restore(call: Call) -> dict[str, Any]:
    await call.registry("POST", run_path(_run_id(call), "/restore"))
    return {}


async def log_metrics(call: Call, run_id: str, metrics: list[dict[str, Any]]) -> None:
    """Send MLflow metrics (ms timestamps) to the metrics service as one Arrow batch. The batch id
    is a hash of the points, so a retried request is counted once."""
    if not metrics:
        return
    try:
        keys = [str(m["key"]) for m in metrics]
        values = [_number(m["value"]) for m in metrics]
        steps = [int(m.get("step") or 0) for m in metrics]
        now = time.time()
        stamps = [now if m.get("timestamp") in (None, "") else int(m["timestamp"]) / 1000 for m in metrics]
    except (KeyError, TypeError, ValueError):
        raise invalid("each metric needs a 'key', a numeric 'value' and integer 'timestamp' and 'step'") from None
    table = pa.table([keys, values, steps, stamps], schema=METRIC_SCHEMA)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, METRIC_SCHEMA) as writer:
        writer.write_table(table)
    payload = sink.getvalue().to_pybytes()
    batch_id = "mlflow-" + hashlib.sha256(run_id.encode() + payload).hexdigest()[:48]
    await call.metrics("POST", run_path(run_id, "/metrics"), data=payload, params={"batch_id": batch_id},
                       headers={"Content-Type": "application/vnd.apache.arrow.stream"})


async def set_tags(call: Call, run_id: str, tags: dict[str, str]) -> None:
    """Every key is checked before the first tag is set."""
    for key in tags:
        TAG_KEY.check(key, "key")
    for key, value in tags.items():
        await call.registry("PUT", tag_path(run_id, key), body={"value": value})
        if key == "mlflow.runName" and value:
            await call.registry("PATCH", run_path(run_id), body={"name": value})


@endpoint("POST", "runs/log-metric", role="editor")
async def log_metric(call: Call) -> dict[str, Any]:
    await log_metrics(call, _run_id(call), [{"key": call.arg("key", required=True), "value": call.args.get("value"),
                                             "timestamp": call.arg("timestamp"), "step": call.arg("step", 0)}])
    await record_model_metrics(call, _run_id(call), [call.args])  # with a model_id: on the logged model too
    return {}


@endpoint("POST", "runs/log-parameter", role="editor")
async def log_param(call: Call) -> dict[str, Any]:
    key = str(call.arg("key", required=True))
    await call.registry("POST", run_path(_run_id(call), "/params"), body={"params": {key: str(call.arg("value", ""))}})
    return {}


@endpoint("POST", "runs/set-tag", role="editor")
async def set_tag(call: Call) -> dict[str, Any]:
    await set_tags(call, _run_id(call), {str(call.arg("key", required=True)): str(call.arg("value", ""))})
    return {}


@endpoint("POST", "runs/delete-tag", role="admin")  # deletions: admin, as on the services
async def delete_tag(call: Call) -> dict[str, Any]:
    await call.registry("DELETE", tag_path(_run_id(call), call.arg("key", required=True)))
    return {}


@endpoint("POST", "runs/log-batch", role="editor")
async def log_batch(call: Call) -> dict[str, Any]:
    run_id = _run_id(call)
    params = key_values(call.arg("params", []), "param")
    tags = key_values(call.arg("tags", []), "tag")
    for key in tags:
        TAG_KEY.check(key, "tags.key")  # before the params, so that a bad key changes nothing
    if params:
        await call.registry("POST", run_path(run_id, "/params"), body={"params": params})
    await set_tags(call, run_id, tags)
    await log_metrics(call, run_id, call.arg("metrics", []))
    await record_model_metrics(call, run_id, call.arg("metrics", []))  # with a model_id: on the logged model too
    return {}


@endpoint("POST", "runs/log-inputs", role="editor")
async def log_inputs(call: Call) -> dict[str, Any]:
    """MLflow dataset inputs (name, digest, source, schema) are kept as hidden run tags; a Cairn
    dataset (source_type ``cairn``, source ``NAME@vN``) is also recorded as a Cairn dataset use."""
    run_id = _run_id(call)
    for item in call.arg("datasets", []):
        dataset = item.get("dataset") or {}
        name, digest = str(dataset.get("name", "")), str(dataset.get("digest", ""))
        if not name or not digest:
            raise invalid("each dataset input needs a dataset with a name and a digest")
        if dataset.get("source_type") == "cairn":
            await call.artifacts("POST", f"{call.project_path}{run_path(run_id, '/datasets')}",
                                 body={"dataset": str(dataset.get("source") or name)})
        record = {"dataset": {k: dataset[k] for k in ("name", "digest", "source_type", "source", "schema", "profile")
                              if k in dataset}, "tags": item.get("tags", [])}
        text = json.dumps(record)
        if len(text) > 8000:
            record["dataset"].pop("schema", None)
            record["dataset"].pop("profile", None)
            text = json.dumps(record)
        safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in f"{name}.{digest}")[:200]
        await call.registry("PUT", tag_path(run_id, f"{DATASET_TAG}{safe}"), body={"value": text})
    await link_models(call, run_id, call.arg("models", []), outputs=False)
    return {}


@endpoint("POST", "runs/outputs", role="editor")
async def log_outputs(call: Call) -> dict[str, Any]:
    """Models kept on their run (older ids) are outputs already; MLflow 3's logged models are
    linked here (logged_model_links.py)."""
    await load_run(call, _run_id(call))
    await link_models(call, _run_id(call), call.arg("models", []), outputs=True)
    return {}


@endpoint("POST", "runs/search")
async def search(call: Call) -> dict[str, Any]:
    experiment_ids = [await experiment_id_of(call, e) for e in call.list_arg("experiment_ids")]
    view = str(call.arg("run_view_type", "ACTIVE_ONLY"))
    body: dict[str, Any] = {
        "experiment_ids": experiment_ids or None, "filter": translate_filter(call.arg("filter")),
        "order_by": translate_order_by(call.list_arg("order_by")) or ["created_at DESC"],
        "include_archived": view != "ACTIVE_ONLY",
        "page_size": min(max(call.int_arg("max_results", 1000) or 1000, 1), 1000),
        "page_token": call.arg("page_token")}
    found = await call.registry("POST", "/runs/search", body=body)
    runs = found["runs"]
    if view == "DELETED_ONLY":
        runs = [r for r in runs if r["archived"]]
    summaries: dict[str, list[dict[str, Any]]] = {}
    if runs:
        summaries = (await call.metrics("POST", "/metrics/summaries/runs",
                                        body={"run_ids": [r["id"] for r in runs]}))["runs"]
    out: dict[str, Any] = {"runs": [run_json(call, r, summaries.get(r["id"], [])) for r in runs]}
    if found.get("next_page_token"):
        out["next_page_token"] = found["next_page_token"]
    return out
