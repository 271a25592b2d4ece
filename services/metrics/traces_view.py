"""The traces index of the metrics read model: which traces each experiment holds, in the order
they were first recorded, and which are deleted. A trace's info itself is its aggregate
snapshot (``traces_domain.evolve``), kept by the kernel in the same transaction."""

from __future__ import annotations

import sqlite3

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers

TRACES_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
  project TEXT NOT NULL, trace_id TEXT NOT NULL, subject TEXT NOT NULL, experiment_id TEXT,
  created_seq INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (project, trace_id));
CREATE INDEX IF NOT EXISTS traces_by_experiment ON traces(project, experiment_id, deleted);
"""
HANDLERS = EventHandlers()
handles = HANDLERS.handles


@handles("trace.recorded")
def _recorded(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute(
        "INSERT INTO traces(project, trace_id, subject, experiment_id, created_seq) VALUES(?, ?, ?, ?, ?) "
        "ON CONFLICT(project, trace_id) DO UPDATE SET "
        "experiment_id=COALESCE(excluded.experiment_id, traces.experiment_id), "
        "created_seq=CASE WHEN traces.deleted=1 THEN excluded.created_seq ELSE traces.created_seq END, deleted=0",
        (e.project, e.aggregate_id, e.subject, e.data.get("experiment_id"), e.sequence))


@handles("trace.deleted")
def _deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE traces SET deleted=1 WHERE project=? AND trace_id=?", (e.project, e.aggregate_id))


@handles("trace.tag_set", "trace.tag_deleted", "trace.linked", "trace.assessment_set", "trace.assessment_deleted")
def _snapshot_only(conn: sqlite3.Connection, e: Event) -> None:
    """The snapshot holds these; the index does not change."""
