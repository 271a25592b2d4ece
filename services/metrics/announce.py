"""Summaries as events: after each write, the metrics service appends ``metric.summarized`` (one
event per project written, split only to fit the log's payload limit) with every summary that write
changed, so that services which search by metrics (the registry) keep them in their own read model
instead of asking this service at query time.

A summary is flagged in SQLite until its event is in the log, so nothing is lost to a crash or a
NATS outage between the write and the append: the next write, the writer's idle loop, or the next
start announces it. Summaries are absolute values (count, last, min, max as of the write), so an
event applied twice or late changes nothing: readers keep, per run and key, the larger count. No
expected sequence: this service is the only writer of the ``metrics`` aggregate.
"""

from __future__ import annotations

import json
import math
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog, message_header_bytes
from cairn.kernel.schemas import validate_event
from cairn.services.metrics.store import MetricsStore

EVENT_TYPE = "metric.summarized"
AGGREGATE = "metrics"
ACTOR = "metrics:writer"
ROWS_PER_PASS = 5000
# Room for the envelope around ``data`` (ids, times, names): far more than it takes.
ENVELOPE_ALLOWANCE = 2048


def json_value(value: float | None) -> float | str | None:
    """JSON has no NaN or infinities: the strings the summary API uses stand for them."""
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def event_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored summary as it travels in the event."""
    last_time = row["last_time"]
    return {**row, "min": json_value(row["min"]), "max": json_value(row["max"]), "last": json_value(row["last"]),
            "last_time": last_time if last_time is None or math.isfinite(last_time) else None}


def split_rows(rows: list[dict[str, Any]], budget: int) -> list[list[dict[str, Any]]]:
    """Rows in consecutive chunks whose JSON stays under ``budget`` bytes (a row is ~150 bytes, the
    log's limit is about a megabyte, so one chunk unless a write touched thousands of keys)."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for row in rows:
        length = len(json.dumps(row, separators=(",", ":"))) + 1
        if chunks[-1] and size + length > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += length
    return chunks


class SummaryAnnouncer:
    """Appends ``metric.summarized`` for every summary flagged as not yet announced."""

    def __init__(self, store: MetricsStore, events: EventLog, *, rows_per_pass: int = ROWS_PER_PASS) -> None:
        self.store = store
        self.events = events
        self.rows_per_pass = rows_per_pass

    def budget(self, project: str) -> int:
        """Bytes the summaries of one event may take: the server's limit less headers and envelope."""
        limit = self.events.nc.max_payload or (1 << 20)
        probe = Event(type=EVENT_TYPE, project=project, aggregate=AGGREGATE, aggregate_id=project, data={},
                      actor=ACTOR)
        return limit - message_header_bytes({**probe.headers(), "Nats-Msg-Id": probe.id}) - ENVELOPE_ALLOWANCE

    async def announce(self) -> int:
        """Announce everything not yet announced; returns the number of events appended."""
        appended = 0
        while True:
            pending = self.store.unannounced(self.rows_per_pass)
            if not pending:
                return appended
            by_project: dict[str, list[dict[str, Any]]] = {}
            for project, row in pending:
                by_project.setdefault(project, []).append(row)
            flagged = 0
            for project, rows in by_project.items():
                for chunk in split_rows([event_row(r) for r in rows], self.budget(project)):
                    event = Event(type=EVENT_TYPE, project=project, aggregate=AGGREGATE, aggregate_id=project,
                                  data={"summaries": chunk}, actor=ACTOR)
                    validate_event(event)
                    await self.events.append(event, expected_last_subject_seq=None)
                    appended += 1
                    flagged += self.store.mark_announced(project, chunk)
            if not flagged:  # cannot happen with one writer; never spin if it does
                return appended
