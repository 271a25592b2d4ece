"""Pipelines read model: events -> SQLite. The 13 pipeline-run events fold into the run's snapshot
(``domain.evolve``, which reads the envelope's time, so a replay rebuilds the same state) and keep
the ``pipeline_runs`` view and the ``step_cache``; other services' events keep the facts
(facts.py) the engine decides from."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, Evolve, SnapshotProjection
from cairn.services.pipelines import domain
from cairn.services.pipelines.cache import cache_entries
from cairn.services.pipelines.definitions import (  # part C
    DEFINITIONS_AGGREGATES,
    DEFINITIONS_EVOLVERS,
    DEFINITIONS_HANDLERS,
    merge_handlers,
)
from cairn.services.pipelines.facts import FACTS_AGGREGATES, FACTS_HANDLERS

RUN_EVENTS = ("pipeline_run.started", "pipeline_run.cancel_requested", "pipeline_run.finished",
              "step.started", "step.succeeded", "step.failed", "step.skipped", "step.cached",
              "gate.passed", "gate.failed", "approval.requested", "approval.granted", "approval.rejected")
EVOLVERS: dict[str, Any] = {"pipeline_run": domain.evolve}
# evolvers that take the whole event (the kernel's take type and data): pipeline runs need its time
WHOLE_EVENT_EVOLVERS: set[Any] = {domain.evolve}
AGGREGATES = ("pipeline_run", *FACTS_AGGREGATES)

HANDLERS = EventHandlers(FACTS_HANDLERS)
for _event_type in RUN_EVENTS:
    HANDLERS[_event_type] = lambda conn, e: None  # the run's view is kept by PipelinesProjection

# --- part C: registered definitions and owed event triggers (definitions.py) ---
EVOLVERS.update(DEFINITIONS_EVOLVERS)
AGGREGATES = tuple(dict.fromkeys((*AGGREGATES, *DEFINITIONS_AGGREGATES)))
HANDLERS = merge_handlers(HANDLERS, DEFINITIONS_HANDLERS)
# --- end part C ---


class PipelinesProjection(SnapshotProjection):
    """The snapshot projection, with pipeline runs folded from the whole event, and the run's view
    and cache rows written from the state just folded."""

    def __call__(self, conn: sqlite3.Connection, event: Event) -> None:
        super().__call__(conn, event)
        if event.aggregate == "pipeline_run" and event.type in RUN_EVENTS:
            _, state = self._snapshots[event.subject]
            _run_view(conn, event, state)

    def fold(self, conn: sqlite3.Connection, subject: str, evolve: Evolve, event: Event, *,
             advance: bool = True) -> None:
        if evolve in WHOLE_EVENT_EVOLVERS:
            whole: Any = evolve  # domain.evolve takes the whole event, not (type, data)
            super().fold(conn, subject, lambda state, _type, _data: whole(state, event), event, advance=advance)
        else:
            super().fold(conn, subject, evolve, event, advance=advance)


def projection() -> PipelinesProjection:
    """A fresh entry point for one service instance (its batch cache is its own)."""
    return PipelinesProjection(EVOLVERS, HANDLERS)


def _run_view(conn: sqlite3.Connection, e: Event, state: dict[str, Any]) -> None:
    conn.execute("INSERT OR REPLACE INTO pipeline_run_events(project, run_id, seq, type, time, actor, data) "
                 "VALUES(?, ?, ?, ?, ?, ?, ?)", (e.project, e.aggregate_id, e.sequence, e.type, e.time, e.actor,
                                                 json.dumps(e.data, separators=(",", ":"))))
    if e.type == "pipeline_run.started":
        trigger = e.data["trigger"]
        conn.execute(
            "INSERT OR REPLACE INTO pipeline_runs(project, run_id, pipeline, status, trigger_kind, commit_sha, "
            "started_at, finished_at, seq) VALUES(?, ?, ?, 'running', ?, ?, ?, NULL, ?)",
            (e.project, e.aggregate_id, e.data["pipeline"], trigger["kind"],
             trigger.get("commit") or (e.data.get("code") or {}).get("commit"), e.time, e.sequence))
    elif e.type == "pipeline_run.finished":
        conn.execute("UPDATE pipeline_runs SET status=?, finished_at=? WHERE project=? AND run_id=?",
                     (e.data["outcome"], e.time, e.project, e.aggregate_id))
    elif e.type in ("step.succeeded", "step.cached", "gate.passed", "approval.granted"):
        step = e.data["step"]
        for key, entry in cache_entries(state, e.aggregate_id).items():
            if entry.step != step:
                continue
            conn.execute(
                "INSERT INTO step_cache(project, pipeline, cache_key, outputs, metrics, run_id, step, seq) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(project, pipeline, cache_key) DO UPDATE SET "
                "outputs=excluded.outputs, metrics=excluded.metrics, run_id=excluded.run_id, step=excluded.step, "
                "seq=excluded.seq WHERE excluded.seq > step_cache.seq",
                (e.project, state["name"], key, json.dumps(entry.outputs), json.dumps(entry.metrics),
                 entry.run_id, entry.step, e.sequence))
