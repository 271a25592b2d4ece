"""The metrics service's projection of the event log: which runs exist, so that ingest refuses
points for a run the registry never created without asking the registry (``run.created``;
runs are never deleted), the highest count announced for each summary (``metric.summarized``, by
whichever replica holds the announcing lease: the others settle their own flags against it), and
the traces it owns (``trace.*``: snapshots by ``traces_domain``, the ``traces`` index by
``traces_view``)."""

from __future__ import annotations

import sqlite3

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, SnapshotProjection
from cairn.services.metrics import traces_domain

AGGREGATES = ("run", "trace", "metrics")
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


@handles("metric.summarized")
def _summarized(conn: sqlite3.Connection, e: Event) -> None:
    conn.executemany(
        "INSERT INTO announced(project, run_id, key, count) VALUES(?, ?, ?, ?) ON CONFLICT(project, run_id, key) "
        "DO UPDATE SET count = MAX(count, excluded.count)",
        [(e.project, s["run_id"], s["key"], int(s["count"])) for s in e.data.get("summaries", [])])
