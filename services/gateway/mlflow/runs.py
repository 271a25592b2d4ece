"""MLflow runs = Cairn runs. Params and tags are registry commands; metrics go to the metrics
service; status changes are ``run.finished``; delete/restore are archive/restore.

Fields an MLflow client supplies are kept as it sent them: ``start_time`` and ``end_time`` as
hidden tags (``mlflow.cairn.start_time``/``end_time``, epoch ms), the client's ``user_id`` as
MLflow's ``mlflow.user`` tag (what ``user_id`` answers); the event's actor stays the token's.
"""

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
from cairn.services.gateway.mlflow.errors import ServiceError, invalid, not_found
from cairn.services.gateway.mlflow.experiments import (
    default_experiment_id,
    experiment_id_of,
    public_experiment_id,
)
from cairn.services.gateway.mlflow.identifiers import RUN_ID, TAG_KEY
from cairn.services.gateway.mlflow.logged_model_links import (
    link_models,
    linked_models,
    record_model_metrics,
)
from cairn.services.gateway.mlflow.run_source import source_tags
from cairn.services.gateway.mlflow.search import (
    START_TIME_ORDER,
    START_TIME_TAG,
    translate_filter,
    translate_order_by,
)
from cairn.services.gateway.mlflow.validation import (
    SEARCH_MAX_RESULTS,
    integer,
    invalid_value,
    key_value_list,
    max_results,
    metric_list,
    missing,
    string,
)

STATUS_TO_MLFLOW = {"running": "RUNNING", "scheduled": "SCHEDULED", "finished": "FINISHED",
                    "failed": "FAILED", "killed": "KILLED"}
LOGGED_MODEL_TAG = f"{HIDDEN_TAG_PREFIX}logged_model."
DATASET_TAG = f"{HIDDEN_TAG_PREFIX}dataset."
END_TIME_TAG = f"{HIDDEN_TAG_PREFIX}end_time"
# A client's end_time within this of when Cairn received the end is answered with Cairn's own end
# time (ms) instead of being kept: keeping it costs an append per finished run.
END_TIME_SLACK_MS = 1000
USER_TAG = "mlflow.user"
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


def run_json(call: Call, run: dict[str, Any], summaries: list[dict[str, Any]],
             source: dict[str, str] | None = None) -> dict[str, Any]:
    """A Cairn run (and its metric summaries) as MLflow's Run message; ``source``: tags implied by
    its code record (run_source.py), which the run's own tags override."""
    user = run["tags"].get(USER_TAG) or run["created_by"].split(":")[0]
    tags, hidden = {}, []
    for k, v in run["tags"].items():
        if k.startswith(HIDDEN_TAG_PREFIX):
            hidden.append(k)
        else:
            tags[k] = v
    tags.setdefault("mlflow.runName", run["name"])
    tags.setdefault("mlflow.user", user)
    for key, value in (source or {}).items():
        tags.setdefault(key, value)
    info = {
        "run_id": run["id"], "run_uuid": run["id"], "run_name": run["name"],
        "experiment_id": public_experiment_id(call, run["experiment_id"]), "user_id": user,
        "status": STATUS_TO_MLFLOW.get(run["status"], "RUNNING"),
        "start_time": _kept_millis(run, START_TIME_TAG) or millis(run.get("started_at") or run["created_at"]),
        "artifact_uri": call.artifact_root(run["id"]),
        "lifecycle_stage": "deleted" if run["archived"] else "active",
    }
    if run.get("ended_at"):
        info["end_time"] = _kept_millis(run, END_TIME_TAG) or millis(run["ended_at"])
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


def _kept_millis(run: dict[str, Any], tag: str) -> int | None:
    """A time the client supplied (kept as a hidden tag, epoch ms), if any."""
    value = run["tags"].get(tag)
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def run_path(run_id: str, rest: str = "", parameter: str = "run_id") -> str:
    """``/runs/<run id><rest>`` with the run id checked and escaped."""
    return f"/runs/{RUN_ID.segment(run_id, parameter)}{rest}"


def tag_path(run_id: str, key: str) -> str:
    return run_path(run_id, f"/tags/{TAG_KEY.segment(key, 'key')}")


async def summaries_of(call: Call, run_id: str) -> list[dict[str, Any]]:
    return (await call.metrics("GET", run_path(run_id, "/metrics/summary")))["summaries"]


async def load_run(call: Call, run_id: str, parameter: str = "run_id") -> dict[str, Any]:
    try:
        return await call.registry("GET", run_path(run_id, parameter=parameter))
    except ServiceError as err:
        if err.status == 404 and "run" in err.message:
            raise not_found(f"Run with id={run_id} not found") from None
        raise


async def active_run(call: Call, run_id: str) -> dict[str, Any]:
    """The run, which must not be deleted (MLflow refuses changes to a deleted run)."""
    run = await load_run(call, run_id)
    if run["archived"]:
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is deleted.")
    return run


def _run_id(call: Call) -> str:
    """The call's run (``run_id``, or MLflow's older ``run_uuid``), checked: type first, as MLflow."""
    value = call.args.get("run_id")
    if value is None or value == "":
        value = call.args.get("run_uuid")
    if value is None or value == "":
        value = string(call, "run_id", required=True)
    if not isinstance(value, str):
        raise invalid_value("run_id", value, f"Hint: Value was of type '{type(value).__name__}'.")
    return RUN_ID.check(value, "run_id")


@endpoint("POST", "runs/create", role="editor")
async def create(call: Call) -> dict[str, Any]:
    raw_experiment = call.args.get("experiment_id")  # some clients send the default experiment as 0
    experiment_arg = raw_experiment if isinstance(raw_experiment, int) and not isinstance(raw_experiment, bool) \
        else string(call, "experiment_id", default="0")
    start_time = integer(call, "start_time")
    run_name = string(call, "run_name")
    user_id = string(call, "user_id")
    tags = key_values(key_value_list(call, "tags"), "tag")
    experiment_id = await experiment_id_of(call, experiment_arg)
    name = run_name or tags.get("mlflow.runName")
    if user_id:
        tags.setdefault(USER_TAG, user_id)  # MLflow's user field; the event's actor stays the token's
    # kept for every run made here, so MLflow's order (start_time DESC) uses the client's clock
    tags[START_TIME_TAG] = str(start_time if start_time is not None else int(time.time() * 1000))
    body: dict[str, Any] = {"experiment_id": experiment_id, "tags": tags}
    if name:
        body["name"] = str(name)
    run = await call.registry("POST", "/runs", body=body)
    return {"run": run_json(call, run, [])}


@endpoint("GET", "runs/get")
async def get(call: Call) -> dict[str, Any]:
    run_id = _run_id(call)
    await default_experiment_id(call)
    run, summaries, source = await asyncio.gather(load_run(call, run_id), summaries_of(call, run_id),
                                                  source_tags(call, run_path(run_id, "/environment")))
    return {"run": run_json(call, run, summaries, source)}


@endpoint("POST", "runs/update", role="editor")
async def update(call: Call) -> dict[str, Any]:
    """Rename, and end a run (FINISHED, FAILED, KILLED: ``run.finished``; ending twice the same
    way is a no-op, ending an ended run another way is refused)."""
    run_id = _run_id(call)
    name, status = string(call, "run_name"), string(call, "status")
    end_time = integer(call, "end_time")
    run = None
    if status not in (None, "RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"):
        raise invalid(f"status must be RUNNING, SCHEDULED, FINISHED, FAILED or KILLED, not {status!r}")
    if name:
        run = await call.registry("PATCH", run_path(run_id), body={"name": str(name)})
    if status in ("FINISHED", "FAILED", "KILLED"):
        if end_time and abs(end_time - time.time() * 1000) > END_TIME_SLACK_MS:
            # an end the client dates otherwise (a tag: one more append, so only when it differs)
            await call.registry("PUT", tag_path(run_id, END_TIME_TAG), body={"value": str(end_time)})
        run = await call.registry("POST", run_path(run_id, "/finish"), body={"status": str(status).lower()})
    elif status == "RUNNING":
        run = await load_run(call, run_id)
        if run["status"] == "scheduled":
            run = await call.registry("POST", run_path(run_id, "/start"))
    await default_experiment_id(call)
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
    run_id = _run_id(call)
    key = string(call, "key", required=True)
    value = call.args.get("value")
    if value is None or value == "":
        raise missing("value")
    try:
        _number(value)
    except ValueError:
        raise invalid_value("value", value) from None
    timestamp, step = integer(call, "timestamp", required=True), integer(call, "step", default=0)
    await log_metrics(call, run_id, [{"key": key, "value": value, "timestamp": timestamp, "step": step}])
    await record_model_metrics(call, run_id, [call.args])  # with a model_id: on the logged model too
    return {}


def _string_value(call: Call) -> str:
    value = call.args.get("value")
    if value is not None and not isinstance(value, str):
        raise invalid_value("value", value, f"Hint: Value was of type '{type(value).__name__}'.")
    return value or ""


@endpoint("POST", "runs/log-parameter", role="editor")
async def log_param(call: Call) -> dict[str, Any]:
    run_id = _run_id(call)
    key = string(call, "key", required=True)
    value = _string_value(call)
    await call.registry("POST", run_path(run_id, "/params"), body={"params": {key: value}})
    return {}


@endpoint("POST", "runs/set-tag", role="editor")
async def set_tag(call: Call) -> dict[str, Any]:
    run_id = _run_id(call)
    key = string(call, "key", required=True)
    assert key is not None
    await set_tags(call, run_id, {key: _string_value(call)})
    return {}


@endpoint("POST", "runs/delete-tag", role="admin")  # deletions: admin, as on the services
async def delete_tag(call: Call) -> dict[str, Any]:
    run_id = _run_id(call)
    key = string(call, "key", required=True)
    run = await active_run(call, run_id)
    if key not in run["tags"] or str(key).startswith(HIDDEN_TAG_PREFIX):
        raise not_found(f"No tag with name: {key} in run with id {run_id}")
    await call.registry("DELETE", tag_path(run_id, key))
    return {}


@endpoint("POST", "runs/log-batch", role="editor")
async def log_batch(call: Call) -> dict[str, Any]:
    run_id = _run_id(call)
    metrics = metric_list(call)
    params = key_values(key_value_list(call, "params"), "param")
    tags = key_values(key_value_list(call, "tags"), "tag")
    for key in tags:
        TAG_KEY.check(key, "tags.key")  # before the params, so that a bad key changes nothing
    if params:
        await call.registry("POST", run_path(run_id, "/params"), body={"params": params})
    await set_tags(call, run_id, tags)
    await log_metrics(call, run_id, metrics)
    await record_model_metrics(call, run_id, metrics)  # with a model_id: on the logged model too
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
    """Up to ``max_results`` runs (MLflow's limit, 50,000; more is refused, not capped), read from
    the registry in pages of its size; MLflow's order unless one is given, run_id ASC last."""
    size = max_results(call, 1000, SEARCH_MAX_RESULTS)
    experiment_ids = [await experiment_id_of(call, e) for e in call.list_arg("experiment_ids")]
    await default_experiment_id(call)
    view = str(call.arg("run_view_type", "ACTIVE_ONLY"))
    view = {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}.get(view, view)  # the enum's numbers
    order = translate_order_by(call.list_arg("order_by")) or [f"{k} DESC" for k in START_TIME_ORDER]
    runs: list[dict[str, Any]] = []
    token = call.arg("page_token")
    while True:
        body: dict[str, Any] = {
            "experiment_ids": experiment_ids or None, "filter": translate_filter(call.arg("filter")),
            "order_by": order, "include_archived": view != "ACTIVE_ONLY",
            "page_size": min(size - len(runs), 1000), "page_token": token}
        found = await call.registry("POST", "/runs/search", body=body)
        runs.extend(found["runs"])
        token = found.get("next_page_token")
        if not token or len(runs) >= size:
            break
    if view == "DELETED_ONLY":
        runs = [r for r in runs if r["archived"]]
    summaries: dict[str, list[dict[str, Any]]] = {}
    if runs:
        summaries = (await call.metrics("POST", "/metrics/summaries/runs",
                                        body={"run_ids": [r["id"] for r in runs]}))["runs"]
    out: dict[str, Any] = {"runs": [run_json(call, r, summaries.get(r["id"], [])) for r in runs]}
    if token:
        out["next_page_token"] = token
    return out
