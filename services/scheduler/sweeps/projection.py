"""Sweep read model: ``sweep.*`` events -> SQLite rows, and the queries the API and the driver
read. Built to be merged into the scheduler's projection and store:

    SnapshotProjection({**EVOLVERS, **SWEEP_EVOLVERS}, EventHandlers({**HANDLERS, **SWEEP_HANDLERS}))
    SchedulerStore schema: SCHEMA + SWEEP_SCHEMA

Tables: ``sweeps`` (one row per sweep), ``sweep_trials`` (one row per trial, updated in place),
``sweep_journal`` (every sweep event in log order: the history a controller is rebuilt from) and
``sweep_jobs`` (which sweep and trial a job belongs to, for routing job events). The command side's
aggregate snapshot is the small ``evolve_sweep_record``.
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
    metric TEXT NOT NULL, goal TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, spec TEXT NOT NULL,
    active INTEGER NOT NULL, best_trial INTEGER, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL, created_seq INTEGER NOT NULL, PRIMARY KEY (project, id));
CREATE INDEX IF NOT EXISTS sweeps_by_project ON sweeps(project, created_seq);
CREATE INDEX IF NOT EXISTS sweeps_active ON sweeps(active);
CREATE TABLE IF NOT EXISTS sweep_trials (
    project TEXT NOT NULL, sweep_id TEXT NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL,
    params TEXT NOT NULL, value REAL, step INTEGER, job_id TEXT, run_id TEXT, error TEXT,
    PRIMARY KEY (project, sweep_id, number));
CREATE TABLE IF NOT EXISTS sweep_journal (
    seq INTEGER PRIMARY KEY, project TEXT NOT NULL, sweep_id TEXT NOT NULL, type TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sweep_journal_by_sweep ON sweep_journal(project, sweep_id, seq);
CREATE TABLE IF NOT EXISTS sweep_jobs (
    job_id TEXT PRIMARY KEY, project TEXT NOT NULL, sweep_id TEXT NOT NULL, number INTEGER NOT NULL);
"""

SWEEP_EVOLVERS = {"sweep": domain.evolve_sweep_record}
SWEEP_HANDLERS = EventHandlers()
handles = SWEEP_HANDLERS.handles
TRIAL_COLUMNS = "number, state, params, value, step, job_id, run_id, error"


def _journal(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR IGNORE INTO sweep_journal(seq, project, sweep_id, type, data) VALUES(?, ?, ?, ?, ?)",
                 (e.sequence, e.project, e.aggregate_id, e.type, json.dumps(e.data, separators=(",", ":"))))


def _trial(conn: sqlite3.Connection, e: Event, **columns: Any) -> None:
    sets = ", ".join(f"{k}=?" for k in columns)
    conn.execute(f"UPDATE sweep_trials SET {sets} WHERE project=? AND sweep_id=? AND number=?",
                 (*columns.values(), e.project, e.aggregate_id, e.data["number"]))


def _touch(conn: sqlite3.Connection, e: Event) -> None:
    """Refresh what the sweep row derives from its trials: whether a driver must still tick it
    (running, or stopped with trials whose jobs are still to be cancelled) and its best trial."""
    row = conn.execute("SELECT status, goal FROM sweeps WHERE project=? AND id=?", (e.project, e.aggregate_id)).fetchone()
    running = conn.execute("SELECT 1 FROM sweep_trials WHERE project=? AND sweep_id=? AND state='running' LIMIT 1",
                           (e.project, e.aggregate_id)).fetchone()
    order = "ASC" if row["goal"] == "minimize" else "DESC"
    best = conn.execute(f"SELECT number FROM sweep_trials WHERE project=? AND sweep_id=? AND state='complete' "
                        f"AND value IS NOT NULL ORDER BY value {order}, number LIMIT 1",
                        (e.project, e.aggregate_id)).fetchone()
    conn.execute("UPDATE sweeps SET active=?, best_trial=?, updated_at=? WHERE project=? AND id=?",
                 (int(row["status"] == "running" or running is not None), None if best is None else best[0],
                  e.time, e.project, e.aggregate_id))


@handles("sweep.created")
def _created(conn: sqlite3.Connection, e: Event) -> None:
    _journal(conn, e)
    spec = e.data["spec"]
    conn.execute(
        "INSERT OR IGNORE INTO sweeps(project, id, name, method, metric, goal, status, reason, spec, active, "
        "best_trial, created_at, created_by, updated_at, created_seq) "
        "VALUES(?, ?, ?, ?, ?, ?, 'running', NULL, ?, 1, NULL, ?, ?, ?, ?)",
        (e.project, e.aggregate_id, e.data["name"], spec["method"], spec["metric"]["name"], spec["metric"]["goal"],
         json.dumps(spec), e.time, e.actor, e.time, e.sequence))


@handles("sweep.trial_started")
def _trial_started(conn: sqlite3.Connection, e: Event) -> None:
    _journal(conn, e)
    d = e.data
    conn.execute(f"INSERT OR IGNORE INTO sweep_trials(project, sweep_id, {TRIAL_COLUMNS}) "
                 "VALUES(?, ?, ?, 'running', ?, NULL, NULL, ?, ?, NULL)",
                 (e.project, e.aggregate_id, d["number"], json.dumps(d["params"]), d["job_id"], d["run_id"]))
    if d["job_id"]:
        conn.execute("INSERT OR IGNORE INTO sweep_jobs(job_id, project, sweep_id, number) VALUES(?, ?, ?, ?)",
                     (d["job_id"], e.project, e.aggregate_id, d["number"]))
    _touch(conn, e)


@handles("sweep.trial_reported")
def _trial_reported(conn: sqlite3.Connection, e: Event) -> None:
    _journal(conn, e)
    step, value = e.data["points"][-1]
    _trial(conn, e, step=step, value=value)


@handles("sweep.trial_pruned")
def _trial_pruned(conn: sqlite3.Connection, e: Event) -> None:
    _journal(conn, e)
    _trial(conn, e, state="pruned", step=e.data["step"], value=e.data["value"])
    _touch(conn, e)


@handles("sweep.trial_finished")
def _trial_finished(conn: sqlite3.Connection, e: Event) -> None:
    _journal(conn, e)
    d = e.data
    _trial(conn, e, state=d["state"], value=d.get("value"), step=d.get("step"), error=d.get("error"))
    _touch(conn, e)


@handles("sweep.completed", "sweep.stopped")
def _ended(conn: sqlite3.Connection, e: Event) -> None:
    _journal(conn, e)
    status = "completed" if e.type == "sweep.completed" else "stopped"
    conn.execute("UPDATE sweeps SET status=?, reason=? WHERE project=? AND id=?",
                 (status, e.data["reason"], e.project, e.aggregate_id))
    _touch(conn, e)


def _trial_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"number": row["number"], "state": row["state"], "params": json.loads(row["params"]),
            "value": row["value"], "step": row["step"], "job_id": row["job_id"], "run_id": row["run_id"],
            "error": row["error"]}


SWEEP_COLUMNS = ("project, id, name, method, metric, goal, status, reason, spec, best_trial, created_at, "
                 "created_by, updated_at, created_seq")


class SweepQueries:
    """Reads of the sweep tables, over whichever store holds them (the scheduler's)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def _summary(self, row: sqlite3.Row) -> dict[str, Any]:
        counts = {"running": 0, **{s: 0 for s in domain.TRIAL_DONE}}
        for c in self.store.query("SELECT state, COUNT(*) AS n FROM sweep_trials WHERE project=? AND sweep_id=? "
                                  "GROUP BY state", (row["project"], row["id"])):
            counts[c["state"]] = c["n"]
        best = None
        if row["best_trial"] is not None:
            found = self.store.query_one(f"SELECT {TRIAL_COLUMNS} FROM sweep_trials WHERE project=? AND sweep_id=? "
                                         "AND number=?", (row["project"], row["id"], row["best_trial"]))
            best = None if found is None else _trial_row(found)
        return {"id": row["id"], "project": row["project"], "name": row["name"], "method": row["method"],
                "metric": row["metric"], "goal": row["goal"], "status": row["status"], "reason": row["reason"],
                "created_at": row["created_at"], "created_by": row["created_by"], "updated_at": row["updated_at"],
                "created_seq": row["created_seq"], "trial_counts": counts, "best_trial": best}

    def sweeps(self, project: str, *, status: str | None, limit: int, after: int | None) -> list[dict[str, Any]]:
        """Newest first, paged by ``created_seq``."""
        sql = f"SELECT {SWEEP_COLUMNS} FROM sweeps WHERE project=?"
        args: list[Any] = [project]
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        if after is not None:
            sql += " AND created_seq < ?"
            args.append(after)
        rows = self.store.query(sql + " ORDER BY created_seq DESC LIMIT ?", [*args, limit])
        return [self._summary(row) for row in rows]

    def get(self, project: str, sweep_id: str) -> dict[str, Any]:
        """A sweep's summary with its spec and every trial (``trials``, by number)."""
        row = self.store.query_one(f"SELECT {SWEEP_COLUMNS} FROM sweeps WHERE project=? AND id=?", (project, sweep_id))
        if row is None:
            raise NotFound(f"sweep {sweep_id!r} does not exist in project {project!r}")
        out = self._summary(row)
        out["spec"] = json.loads(row["spec"])
        out["trials"] = [_trial_row(t) for t in self.store.query(
            f"SELECT {TRIAL_COLUMNS} FROM sweep_trials WHERE project=? AND sweep_id=? ORDER BY number",
            (project, sweep_id))]
        return out

    def table(self, project: str, sweep_id: str) -> dict[str, Any]:
        """The parallel-coordinates table (see domain.parallel_coordinates)."""
        sweep = self.get(project, sweep_id)
        state = {"sweep_id": sweep_id, "spec": sweep["spec"],
                 "trials": {str(t["number"]): t for t in sweep["trials"]}}
        return domain.parallel_coordinates(state)

    def journal(self, project: str, sweep_id: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """The sweep's events in log order (what a controller is rebuilt from) and the log
        sequence of the last one."""
        rows = self.store.query("SELECT seq, type, data FROM sweep_journal WHERE project=? AND sweep_id=? "
                                "ORDER BY seq", (project, sweep_id))
        return [(row["type"], json.loads(row["data"])) for row in rows], (rows[-1]["seq"] if rows else 0)

    def last_sequence(self, project: str, sweep_id: str) -> int:
        """The log sequence of the sweep's last event the read model has applied (0: none)."""
        row = self.store.query_one("SELECT MAX(seq) FROM sweep_journal WHERE project=? AND sweep_id=?",
                                   (project, sweep_id))
        return int(row[0]) if row and row[0] is not None else 0

    def running(self) -> list[tuple[str, str]]:
        """(project, sweep id) of every sweep a driver must tick."""
        return [(row["project"], row["id"]) for row in self.store.query(
            "SELECT project, id FROM sweeps WHERE active=1 ORDER BY created_seq")]

    def sweep_of_job(self, job_id: str) -> tuple[str, str] | None:
        row = self.store.query_one("SELECT project, sweep_id FROM sweep_jobs WHERE job_id=?", (job_id,))
        return None if row is None else (row["project"], row["sweep_id"])
