"""Summaries as events: after each write, the metrics service appends ``metric.summarized`` (one
event per project written, split only to fit the log's payload limit) with every summary that write
changed, so that services which search by metrics (the registry) keep them in their own read model
instead of asking this service at query time.

With several replicas, each writes every point and so computes the same summaries; only the holder
of the ``metrics.announce`` lease appends them. The others :meth:`SummaryAnnouncer.settle` their
flags against the counts their projection saw announced, and the holder skips what the log
already has, so a new holder announces only what its predecessor had not (two holders for a moment
append the same absolute values: readers keep the larger count either way).

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
from cairn.services.metrics.store import KnownRuns, MetricsStore

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

    def __init__(self, store: MetricsStore, events: EventLog, *, rows_per_pass: int = ROWS_PER_PASS,
                 known: KnownRuns | None = None) -> None:
        self.store = store
        self.events = events
        self.rows_per_pass = rows_per_pass
        self.known = known  # the projection's announced counts (None: nothing to settle against)

    def _settled(self, project: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Flag the rows the log already announced at (at least) their count; the others."""
        if self.known is None or not rows:
            return rows
        counts = self.known.announced_counts(project, rows)
        done = [r for r in rows if counts.get((r["run_id"], r["key"]), -1) >= r["count"]]
        if done:
            self.store.mark_announced(project, done)
        return [r for r in rows if counts.get((r["run_id"], r["key"]), -1) < r["count"]]

    def settle(self) -> bool:
        """For a replica that does not announce: flag what the log already announced; whether
        summaries are left that it has not (yet)."""
        by_project: dict[str, list[dict[str, Any]]] = {}
        for project, row in self.store.unannounced(self.rows_per_pass):
            by_project.setdefault(project, []).append(row)
        return any(self._settled(project, rows) for project, rows in by_project.items())

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
                left = self._settled(project, rows)
                flagged += len(rows) - len(left)
                if not left:
                    continue
                for chunk in split_rows([event_row(r) for r in left], self.budget(project)):
                    event = Event(type=EVENT_TYPE, project=project, aggregate=AGGREGATE, aggregate_id=project,
                                  data={"summaries": chunk}, actor=ACTOR)
                    validate_event(event)
                    await self.events.append(event, expected_last_subject_seq=None)
                    appended += 1
                    flagged += self.store.mark_announced(project, chunk)
            if not flagged:  # cannot happen with one writer; never spin if it does
                return appended
