"""The event envelope: what every event of record looks like on the log and in projections."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from cairn.kernel.ids import event_id

# Subject prefix and headers are defined in cairn.protocol; re-exported here for the envelope's users.
from cairn.protocol import EVENT_SUBJECT_PREFIX as SUBJECT_PREFIX  # noqa: F401
from cairn.protocol import (  # noqa: F401
    H_ACTOR,
    H_CAUSATION,
    H_CORRELATION,
    H_EVENT_ID,
    H_EXPECTED_LAST_SUBJECT_SEQ,
    H_LEADER_TERM,
    H_MSG_ID,
    H_TRACEPARENT,
    H_TYPE,
    H_VERSION,
)


def subject_for(project: str, aggregate: str, aggregate_id: str) -> str:
    return f"{SUBJECT_PREFIX}.{project}.{aggregate}.{aggregate_id}"


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether a NATS subject matches a subject pattern (``*`` one token, ``>`` the rest)."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or (token != "*" and token != tokens[i]):
            return False
    return len(tokens) == len(wanted)


def aggregate_subjects(aggregates: Iterable[str]) -> list[str]:
    """Subjects matching every event of these aggregates, in any project."""
    return [f"{SUBJECT_PREFIX}.*.{aggregate}.>" for aggregate in aggregates]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """An event of record. ``sequence`` is the stream sequence, known once the log has it."""

    type: str
    project: str
    aggregate: str
    aggregate_id: str
    data: dict[str, Any]
    actor: str = "anonymous"
    version: int = 1
    id: str = field(default_factory=event_id)
    time: str = field(default_factory=utc_now)
    correlation_id: str | None = None
    causation_id: str | None = None
    sequence: int = 0
    # Transport-only fields: they travel as headers, not in the stored body.
    traceparent: str | None = None
    idempotency_key: str | None = None
    # "<singleton>:<term>" on an event a singleton's leader appended (cairn.kernel.leader): a stale
    # leader's append is told apart by its lower term
    leader_term: str | None = None

    @property
    def subject(self) -> str:
        return subject_for(self.project, self.aggregate, self.aggregate_id)

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("traceparent")
        body.pop("idempotency_key")
        body.pop("leader_term")
        return body

    def to_json(self) -> bytes:
        body = self.to_dict()
        body.pop("sequence")  # the log assigns it
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    def headers(self) -> dict[str, str]:
        headers = {
            H_TYPE: self.type,
            H_VERSION: str(self.version),
            H_EVENT_ID: self.id,
            H_ACTOR: self.actor,
        }
        if self.correlation_id:
            headers[H_CORRELATION] = self.correlation_id
        if self.causation_id:
            headers[H_CAUSATION] = self.causation_id
        if self.traceparent:
            headers[H_TRACEPARENT] = self.traceparent
        if self.leader_term:
            headers[H_LEADER_TERM] = self.leader_term
        return headers

    @classmethod
    def from_message(cls, data: bytes, sequence: int, headers: dict[str, str] | None) -> "Event":
        body = json.loads(data)
        body["sequence"] = sequence
        headers = headers or {}
        body["traceparent"] = headers.get(H_TRACEPARENT)
        body["idempotency_key"] = headers.get(H_MSG_ID)
        body["leader_term"] = headers.get(H_LEADER_TERM)
        return cls(**body)


def embedded_record(event: Event) -> Event | None:
    """The reproducibility record a ``run.created`` (v2) carries, as the ``run.environment_recorded``
    its consumers apply right after the creation (same id, time, actor and sequence); None when the
    event is anything else or was created without one. Every consumer of run records uses this, so
    a run created with its record reads exactly like a run.created followed by that event."""
    if event.type != "run.created" or not event.data.get("record"):
        return None
    return replace(event, type="run.environment_recorded", version=1, data=event.data["record"])
