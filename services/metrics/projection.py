"""The metrics service's projection of the event log: which runs exist, so that ingest refuses
points for a run the registry never created without asking the registry (``run.created`` is
the only event it needs; runs are never deleted)."""

from __future__ import annotations

import sqlite3

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, SnapshotProjection

AGGREGATES = ("run",)
HANDLERS = EventHandlers()
handles = HANDLERS.handles


def projection() -> SnapshotProjection:
    """The metrics service owns no aggregate: no snapshots, only the ``runs`` view."""
    return SnapshotProjection({}, HANDLERS)


@handles("run.created")
def _run_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR IGNORE INTO runs(project, run_id) VALUES(?, ?)", (e.project, e.aggregate_id))
