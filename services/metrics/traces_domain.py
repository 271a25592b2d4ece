"""Traces as aggregates (MLflow 3's trace info): what the events of record say and how a trace's
state folds from them. Pure: no I/O. Spans are telemetry and are not here (``traces_spans.py``);
what a person or a client records about a trace (its info, tags, assessments, run links, its
deletion) is an event on ``cairn.evt.<project>.trace.<trace id>``."""

from __future__ import annotations

import copy
import re
from typing import Any

from cairn.kernel.errors import InvalidInput, NotFound

TRACE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
STATES = ("STATE_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS")
INFO_FIELDS = ("experiment_id", "request_time_ms", "execution_ms", "state", "request_preview",
               "response_preview", "client_request_id")
MAX_TAGS = 1000
MAX_ASSESSMENTS = 1000


def check_trace_id(trace_id: str) -> str:
    """A trace id is one subject token: letters, digits, ``_`` and ``-`` (MLflow's ``tr-<hex>``)."""
    if not isinstance(trace_id, str) or not TRACE_ID_RE.match(trace_id):
        raise InvalidInput(f"trace id {trace_id!r} is not valid: use letters, digits, '_' and '-' "
                           "(MLflow's trace ids look like 'tr-<32 hex digits>')", details={"field": "trace_id"})
    return trace_id


def live(state: dict[str, Any] | None, trace_id: str) -> dict[str, Any]:
    """The trace's state, or 404 when it was never recorded or was deleted."""
    if state is None or state.get("deleted"):
        raise NotFound(f"Trace with ID {trace_id} is not found.", details={"trace_id": trace_id})
    return state


def evolve(state: dict[str, Any] | None, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Fold one trace event into the trace's state (a new dict; the old one is not changed)."""
    new: dict[str, Any] = copy.deepcopy(state) if state else {
        "trace_id": data["trace_id"], "metadata": {}, "tags": {}, "assessments": {}, "run_ids": [],
        "state": "IN_PROGRESS", "request_time_ms": 0, "execution_ms": None}
    if event_type == "trace.recorded":
        if new.get("deleted"):  # recorded again after a delete: a new trace under the same id
            new = evolve(None, event_type, data)
            return new
        for name in INFO_FIELDS:
            if data.get(name) is not None:
                new[name] = data[name]
        new["metadata"].update(data.get("metadata") or {})
        new["tags"].update(data.get("tags") or {})
    elif event_type == "trace.tag_set":
        new["tags"][data["key"]] = data["value"]
    elif event_type == "trace.tag_deleted":
        new["tags"].pop(data["key"], None)
    elif event_type == "trace.deleted":
        new["deleted"] = True
    elif event_type == "trace.linked":
        new["run_ids"] = sorted(set(new["run_ids"]) | set(data["run_ids"]))
    elif event_type == "trace.assessment_set":
        assessment = data["assessment"]
        new["assessments"][assessment["assessment_id"]] = assessment
        overridden = assessment.get("overrides")
        if overridden and overridden in new["assessments"]:
            new["assessments"][overridden]["valid"] = False
    elif event_type == "trace.assessment_deleted":
        gone = new["assessments"].pop(data["assessment_id"], None) or {}
        overridden = gone.get("overrides")
        if overridden and overridden in new["assessments"]:
            new["assessments"][overridden]["valid"] = True
    return new


def decide_record(state: dict[str, Any] | None, info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Record (or complete) a trace's info: fields given replace, metadata and tags merge."""
    if state is not None and not state.get("deleted") and info.get("experiment_id") and \
            state.get("experiment_id") not in (None, info["experiment_id"]):
        raise InvalidInput(f"trace {info['trace_id']} belongs to experiment {state['experiment_id']}, "
                           f"not {info['experiment_id']}", details={"field": "experiment_id"})
    if info.get("state") is not None and info["state"] not in STATES:
        raise InvalidInput(f"trace state {info['state']!r} is not one of {', '.join(STATES)}",
                           details={"field": "state"})
    merged_tags = {**((state or {}).get("tags") or {}), **(info.get("tags") or {})}
    if len(merged_tags) > MAX_TAGS:
        raise InvalidInput(f"a trace keeps at most {MAX_TAGS} tags", details={"field": "tags"})
    return "trace.recorded", {k: v for k, v in info.items() if v is not None}


def decide_tag(state: dict[str, Any] | None, trace_id: str, key: str, value: str | None) -> tuple[str, dict[str, Any]] | None:
    """Set (value given) or delete (None) one tag; deleting a tag the trace does not have is a 404."""
    current = live(state, trace_id)
    if value is not None:
        if key not in current["tags"] and len(current["tags"]) >= MAX_TAGS:
            raise InvalidInput(f"a trace keeps at most {MAX_TAGS} tags", details={"field": "key"})
        return "trace.tag_set", {"trace_id": trace_id, "key": key, "value": value}
    if key not in current["tags"]:
        raise NotFound(f"No trace tag with key '{key}' for trace with ID '{trace_id}'", details={"key": key})
    return "trace.tag_deleted", {"trace_id": trace_id, "key": key}


def decide_delete(state: dict[str, Any] | None, trace_id: str) -> tuple[str, dict[str, Any]] | None:
    if state is None or state.get("deleted"):
        return None
    return "trace.deleted", {"trace_id": trace_id}


def decide_link(state: dict[str, Any] | None, trace_id: str, run_ids: list[str]) -> tuple[str, dict[str, Any]] | None:
    current = live(state, trace_id)
    new = sorted(set(run_ids) - set(current["run_ids"]))
    return ("trace.linked", {"trace_id": trace_id, "run_ids": new}) if new else None


def decide_assessment(state: dict[str, Any] | None, trace_id: str, assessment: dict[str, Any],
                      *, creating: bool) -> tuple[str, dict[str, Any]]:
    """Create or replace an assessment; an override must name an assessment of the same trace."""
    current = live(state, trace_id)
    aid = assessment["assessment_id"]
    if creating and len(current["assessments"]) >= MAX_ASSESSMENTS:
        raise InvalidInput(f"a trace keeps at most {MAX_ASSESSMENTS} assessments", details={"field": "assessment"})
    if not creating and aid not in current["assessments"]:
        raise NotFound(f"Assessment with ID '{aid}' not found for trace '{trace_id}'", details={"assessment_id": aid})
    overrides = assessment.get("overrides")
    if overrides and overrides not in current["assessments"]:
        raise InvalidInput(f"assessment {overrides!r} to override does not exist on trace {trace_id}",
                           details={"field": "overrides"})
    return "trace.assessment_set", {"trace_id": trace_id, "assessment": assessment}


def decide_assessment_delete(state: dict[str, Any] | None, trace_id: str, assessment_id: str) -> tuple[str, dict[str, Any]] | None:
    current = live(state, trace_id)
    if assessment_id not in current["assessments"]:
        return None  # MLflow: deleting a missing assessment is a no-op
    return "trace.assessment_deleted", {"trace_id": trace_id, "assessment_id": assessment_id}
