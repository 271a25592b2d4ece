"""Read model of runs' reproducibility records (``run.environment_recorded``) and of the datasets
runs used (``run.dataset_used``, appended by the artifact store), for ``GET .../environment`` and
``GET /runs/diff``. Tables are part of the registry's SQLite store and rebuilt with it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.errors import NotFound
from cairn.kernel.store import EventHandlers, SqliteStore

RECORD_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_records (
    run_id TEXT PRIMARY KEY, project TEXT NOT NULL, environment TEXT, code TEXT, command TEXT,
    seeds TEXT NOT NULL, recorded_at TEXT NOT NULL, recorded_by TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS run_datasets (
    run_id TEXT NOT NULL, project TEXT NOT NULL, dataset TEXT NOT NULL, version INTEGER NOT NULL,
    manifest_digest TEXT NOT NULL, used_at TEXT NOT NULL, PRIMARY KEY (run_id, dataset, version));
"""

RECORD_HANDLERS = EventHandlers()


@RECORD_HANDLERS.handles("run.environment_recorded")
def _environment_recorded(conn: sqlite3.Connection, e: Event) -> None:
    row = conn.execute("SELECT seeds FROM run_records WHERE run_id=?", (e.aggregate_id,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO run_records(run_id, project, seeds, recorded_at, recorded_by, updated_at) "
                     "VALUES(?, ?, '{}', ?, ?, ?)", (e.aggregate_id, e.project, e.time, e.actor, e.time))
        seeds: dict[str, Any] = {}
    else:
        seeds = json.loads(row["seeds"])
    for section in ("environment", "code", "command"):
        if section in e.data:
            conn.execute(f"UPDATE run_records SET {section}=? WHERE run_id=?",
                         (json.dumps(e.data[section], sort_keys=True), e.aggregate_id))
    seeds.update(e.data.get("seeds") or {})
    conn.execute("UPDATE run_records SET seeds=?, updated_at=? WHERE run_id=?",
                 (json.dumps(seeds, sort_keys=True), e.time, e.aggregate_id))


@RECORD_HANDLERS.handles("run.dataset_used")
def _dataset_used(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute("INSERT OR IGNORE INTO run_datasets(run_id, project, dataset, version, manifest_digest, used_at) "
                 "VALUES(?, ?, ?, ?, ?, ?)",
                 (e.aggregate_id, e.project, d["dataset"], d["version"], d["manifest_digest"], e.time))


def run_record(store: SqliteStore, project: str, run_id: str) -> dict[str, Any] | None:
    """A run's record (environment, code, command, seeds), or None if nothing was recorded."""
    row = store.query_one("SELECT * FROM run_records WHERE run_id=? AND project=?", (run_id, project))
    if row is None:
        return None
    out: dict[str, Any] = {"run_id": run_id, "project": project}
    for section in ("environment", "code", "command"):
        out[section] = json.loads(row[section]) if row[section] is not None else None
    out["seeds"] = json.loads(row["seeds"])
    out.update(recorded_at=row["recorded_at"], recorded_by=row["recorded_by"], updated_at=row["updated_at"])
    return out


def run_datasets(store: SqliteStore, project: str, run_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in store.query(
        "SELECT dataset, version, manifest_digest, used_at FROM run_datasets WHERE run_id=? AND project=? "
        "ORDER BY dataset, version", (run_id, project))]


def project_of_run(store: SqliteStore, run_id: str, projects: list[str] | None) -> str:
    """The project a run belongs to, if it is one of ``projects`` (None: any); else 404."""
    row = store.query_one("SELECT project FROM runs WHERE id=?", (run_id,))
    if row is None or (projects is not None and row["project"] not in projects):
        raise NotFound(f"run {run_id!r} does not exist in your projects")
    return str(row["project"])
