"""The metrics service's projection of the event log: which runs exist, so that ingest refuses
points for a run the registry never created without asking the registry (``run.created``;
runs are never deleted), and the traces it owns (``trace.*``: snapshots by ``traces_domain``,
the ``traces`` index by ``traces_view``)."""

from __future__ import annotations

import sqlite3

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, SnapshotProjection
from cairn.services.metrics import traces_domain

AGGREGATES = ("run", "trace")
HANDLERS = EventHandlers()
handles = HANDLERS.handles


def projection() -> SnapshotProjection:
    """Trace snapshots (the service's only aggregate), the ``runs`` view and the traces index."""
    from cairn.services.metrics import traces_view  # registers the trace.* handlers

    HANDLERS.update(traces_view.HANDLERS)
    return SnapshotProjection({"trace": traces_domain.evolve}, HANDLERS)


@handles("run.created")
def _run_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR IGNORE INTO runs(project, run_id) VALUES(?, ?)", (e.project, e.aggregate_id))
