"""MLflow 3's evaluation datasets (GenAI) as a registry aggregate (id ``d-<32 hex>``), pure: a
name, the experiments it serves, tags, and records (inputs, expectations, outputs, tags, source).

Records are upserted as MLflow does: a record whose inputs equal an existing record's (compared
as canonical JSON) updates it (expectations and tags merged, outputs replaced); any other is
inserted. The aggregate keeps one hash per record's inputs, so the decision is made on state alone;
the records themselves live in the projection (eval_dataset_view.py). Deleting is a tombstone."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import EventOutOfOrder, InvalidInput, NotFound, PayloadTooLarge
from cairn.kernel.ids import check_key

State = dict[str, Any] | None
MAX_RECORDS = 10_000  # per dataset: the aggregate's snapshot keeps a hash per record
MAX_BATCH_BYTES = 512 * 1024  # one upsert is one event, which must fit a NATS message


def inputs_key(inputs: Any) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _tags(tags: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in tags.items():
        check_key(key, "tag key")
        text = "" if value is None else str(value)
        if len(text) > 8000:
            raise InvalidInput(f"tag {key!r} has {len(text)} characters; at most 8000 fit", details={"field": "tags"})
        out[key] = text
    return out


def _live(state: State, dataset_id: str) -> dict[str, Any]:
    if state is None or state.get("deleted"):
        raise NotFound(f"Evaluation dataset with id '{dataset_id}' not found")
    return state


def create_eval_dataset(state: State, *, dataset_id: str, name: str, experiment_ids: list[str],
                        tags: dict[str, Any], created_by: str | None) -> Decision:
    if state is not None:
        return None
    if not name or len(name) > 256 or not name.isprintable():
        raise InvalidInput(f"dataset name {name!r} is not valid: use 1-256 printable characters",
                           details={"field": "name"})
    return "eval_dataset.created", {"name": name, "experiment_ids": sorted(set(experiment_ids)),
                                    "tags": _tags(tags), "created_by": created_by}


def set_eval_dataset_tags(state: State, *, dataset_id: str, tags: dict[str, Any]) -> Decision:
    current = _live(state, dataset_id)
    new = {k: v for k, v in _tags(tags).items() if current["tags"].get(k) != v}
    return ("eval_dataset.tags_set", {"tags": new}) if new else None


def delete_eval_dataset_tag(state: State, *, dataset_id: str, key: str) -> Decision:
    current = _live(state, dataset_id)
    if key not in current["tags"]:
        return None  # MLflow deletes a missing tag quietly
    return "eval_dataset.tag_deleted", {"key": key}


def delete_eval_dataset(state: State, *, dataset_id: str) -> Decision:
    _live(state, dataset_id)
    return "eval_dataset.deleted", {}


def upsert_records(state: State, *, dataset_id: str, records: list[Any], updated_by: str | None) -> Decision:
    """Decide which records are new and which update one with the same inputs."""
    current = _live(state, dataset_id)
    known = set(current["record_keys"])
    rows: list[dict[str, Any]] = []
    for n, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("inputs"), dict) or not record["inputs"]:
            raise InvalidInput(f"record {n} needs 'inputs', a non-empty JSON object", details={"field": "records"})
        extra = set(record) - {"inputs", "expectations", "outputs", "tags", "source"}
        if extra:
            raise InvalidInput(f"record {n} has unknown fields {sorted(extra)}", details={"field": "records"})
        key = inputs_key(record["inputs"])
        row = {"key": key, "inputs": record["inputs"], "update": key in known,
               "expectations": record.get("expectations") or {}, "tags": _tags(record.get("tags") or {})}
        for optional in ("outputs", "source"):
            if record.get(optional) is not None:
                row[optional] = record[optional]
        known.add(key)
        rows.append(row)
    if len(known) > MAX_RECORDS:
        raise InvalidInput(f"a dataset holds at most {MAX_RECORDS} records", details={"field": "records"})
    if not rows:
        return None
    size = len(json.dumps(rows, separators=(",", ":")).encode())
    if size > MAX_BATCH_BYTES:
        raise PayloadTooLarge(f"the records are {size} bytes, over {MAX_BATCH_BYTES} per request; send them in parts",
                              details={"limit": MAX_BATCH_BYTES})
    return "eval_dataset.records_upserted", {"records": rows, "updated_by": updated_by}


def evolve_eval_dataset(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "eval_dataset.created":
        return {"tags": dict(data["tags"]), "deleted": False, "record_keys": []}
    if state is None:
        raise EventOutOfOrder(f"{event_type} for an evaluation dataset that does not exist")
    if event_type == "eval_dataset.tags_set":
        state["tags"].update(data["tags"])
    elif event_type == "eval_dataset.tag_deleted":
        state["tags"].pop(data["key"], None)
    elif event_type == "eval_dataset.deleted":
        state["deleted"] = True
    elif event_type == "eval_dataset.records_upserted":
        keys = set(state["record_keys"])
        for record in data["records"]:
            if record["key"] not in keys:
                keys.add(record["key"])
                state["record_keys"].append(record["key"])
    return state
