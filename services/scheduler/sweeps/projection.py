"""Sweep read model: ``sweep.*`` events -> SQLite rows, and the queries the API and the driver
read. Built to be merged into the scheduler's projection and store:

    SnapshotProjection({**EVOLVERS, **SWEEP_EVOLVERS}, HANDLERS | SWEEP_HANDLERS)
    SchedulerStore schema: SCHEMA + SWEEP_SCHEMA

Tables: ``sweeps`` (one row per sweep with its folded state), ``sweep_journal`` (every sweep
event in log order: the history a controller is rebuilt from) and ``sweep_jobs`` (which sweep and
trial a job belongs to, for routing job events).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.errors import NotFound
from cairn.kernel.store import EventHandlers, SqliteStore
from cairn.services.scheduler.sweeps import domain

SWEEP_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    project TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, method TEXT NOT NULL,
    metric TEXT NOT NULL, goal TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, updated_at TEXT NOT NULL,
    created_seq INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (project, id));
CREATE INDEX IF NOT EXISTS sweeps_by_status ON sweeps(status);
CREATE TABLE IF NOT EXISTS sweep_journal (
    seq INTEGER PRIMARY KEY, project TEXT NOT NULL, sweep_id TEXT NOT NULL, type TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sweep_journal_by_sweep ON sweep_journal(project, sweep_id, seq);
CREATE TABLE IF NOT EXISTS sweep_jobs (
    job_id TEXT PRIMARY KEY, project TEXT NOT NULL, sweep_id TEXT NOT NULL, number INTEGER NOT NULL);
"""

SWEEP_EVOLVERS = {"sweep": domain.evolve_sweep}
SWEEP_HANDLERS = EventHandlers()


@SWEEP_HANDLERS.handles("sweep.created", "sweep.trial_started", "sweep.trial_reported", "sweep.trial_pruned",
                        "sweep.trial_finished", "sweep.completed", "sweep.stopped")
def _sweep_event(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR IGNORE INTO sweep_journal(seq, project, sweep_id, type, data) VALUES(?, ?, ?, ?, ?)",
                 (e.sequence, e.project, e.aggregate_id, e.type, json.dumps(e.data, separators=(",", ":"))))
    row = conn.execute("SELECT state FROM sweeps WHERE project=? AND id=?", (e.project, e.aggregate_id)).fetchone()
    state = domain.evolve_sweep(None if row is None else json.loads(row[0]), e.type, e.data)
    if e.type == "sweep.created":
        spec = state["spec"]
        conn.execute(
            "INSERT OR IGNORE INTO sweeps(project, id, name, method, metric, goal, status, reason, created_at, "
            "created_by, updated_at, created_seq, state) VALUES(?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            (e.project, e.aggregate_id, state["name"], spec["method"], spec["metric"]["name"],
             spec["metric"]["goal"], state["status"], e.time, e.actor, e.time, e.sequence, json.dumps(state)))
        return
    if e.type == "sweep.trial_started" and e.data.get("job_id"):
        conn.execute("INSERT OR IGNORE INTO sweep_jobs(job_id, project, sweep_id, number) VALUES(?, ?, ?, ?)",
                     (e.data["job_id"], e.project, e.aggregate_id, e.data["number"]))
    conn.execute("UPDATE sweeps SET status=?, reason=?, updated_at=?, state=? WHERE project=? AND id=?",
                 (state["status"], state["reason"], e.time, json.dumps(state), e.project, e.aggregate_id))


class SweepQueries:
    """Reads of the sweep tables, over whichever store holds them (the scheduler's)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def sweeps(self, project: str, *, status: str | None, limit: int, after: int | None) -> list[dict[str, Any]]:
        """Newest first, paged by ``created_seq``."""
        sql = ("SELECT project, id, name, method, metric, goal, status, reason, created_at, created_by, "
               "updated_at, created_seq, state FROM sweeps WHERE project=?")
        args: list[Any] = [project]
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        if after is not None:
            sql += " AND created_seq < ?"
            args.append(after)
        rows = self.store.query(sql + " ORDER BY created_seq DESC LIMIT ?", [*args, limit])
        return [summary(row) for row in rows]

    def get(self, project: str, sweep_id: str) -> dict[str, Any]:
        row = self.store.query_one(
            "SELECT project, id, name, method, metric, goal, status, reason, created_at, created_by, updated_at, "
            "created_seq, state FROM sweeps WHERE project=? AND id=?", (project, sweep_id))
        if row is None:
            raise NotFound(f"sweep {sweep_id!r} does not exist in project {project!r}")
        out = summary(row)
        out["state"] = json.loads(row["state"])
        return out

    def journal(self, project: str, sweep_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The sweep's events in log order (what a controller is rebuilt from)."""
        rows = self.store.query("SELECT type, data FROM sweep_journal WHERE project=? AND sweep_id=? ORDER BY seq",
                                (project, sweep_id))
        return [(row["type"], json.loads(row["data"])) for row in rows]

    def journal_length(self, project: str, sweep_id: str) -> int:
        row = self.store.query_one("SELECT COUNT(*) FROM sweep_journal WHERE project=? AND sweep_id=?",
                                   (project, sweep_id))
        return int(row[0]) if row else 0

    def running(self) -> list[tuple[str, str]]:
        """(project, sweep id) of every sweep a driver must tick: running, or stopped with
        trials still marked running (their jobs are still to be cancelled)."""
        rows = self.store.query("SELECT project, id, status, state FROM sweeps WHERE status != 'completed'")
        out = []
        for row in rows:
            if row["status"] == "running" or domain.running_trials(json.loads(row["state"])):
                out.append((row["project"], row["id"]))
        return out

    def sweep_of_job(self, job_id: str) -> tuple[str, str] | None:
        row = self.store.query_one("SELECT project, sweep_id FROM sweep_jobs WHERE job_id=?", (job_id,))
        return None if row is None else (row["project"], row["sweep_id"])


def summary(row: sqlite3.Row) -> dict[str, Any]:
    state = json.loads(row["state"])
    best = domain.best_trial(state)
    return {"id": row["id"], "project": row["project"], "name": row["name"], "method": row["method"],
            "metric": row["metric"], "goal": row["goal"], "status": row["status"], "reason": row["reason"],
            "created_at": row["created_at"], "created_by": row["created_by"], "updated_at": row["updated_at"],
            "created_seq": row["created_seq"], "trial_counts": domain.trial_counts(state),
            "best_trial": None if best is None else {k: best[k] for k in ("number", "params", "value", "step",
                                                                         "run_id", "job_id")}}
