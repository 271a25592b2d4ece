"""The read model of MLflow 3's logged models: one row per model, its params, tags and metrics,
projected from ``logged_model.*`` events; and the reads the API serves (one model, a search)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.errors import NotFound
from cairn.kernel.store import EventHandlers
from cairn.services.registry.logged_model_search import millis

LOGGED_MODEL_SCHEMA = """
CREATE TABLE IF NOT EXISTS logged_models (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, experiment_id TEXT NOT NULL, name TEXT NOT NULL,
    model_type TEXT NOT NULL, source_run_id TEXT, status TEXT NOT NULL, deleted INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, created_by TEXT NOT NULL,
    created_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS logged_models_by_experiment ON logged_models(project, experiment_id, created_seq);
CREATE TABLE IF NOT EXISTS logged_model_params (
    model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key));
CREATE TABLE IF NOT EXISTS logged_model_tags (
    model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key));
CREATE TABLE IF NOT EXISTS logged_model_metrics (
    seq INTEGER NOT NULL, n INTEGER NOT NULL, model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    timestamp INTEGER NOT NULL, step INTEGER NOT NULL, run_id TEXT, dataset_name TEXT, dataset_digest TEXT,
    PRIMARY KEY (seq, n));
CREATE INDEX IF NOT EXISTS logged_model_metrics_by_model ON logged_model_metrics(model_id);
"""

LOGGED_MODEL_HANDLERS = EventHandlers()
handles = LOGGED_MODEL_HANDLERS.handles


def _touch(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE logged_models SET updated_at=? WHERE id=?", (e.time, e.aggregate_id))


@handles("logged_model.created")
def _created(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT INTO logged_models(id, project, experiment_id, name, model_type, source_run_id, status, deleted, "
        "created_at, updated_at, created_by, created_seq) VALUES(?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
        (e.aggregate_id, e.project, d["experiment_id"], d["name"], d["model_type"], d["source_run_id"],
         e.time, e.time, e.actor, e.sequence))
    _upsert(conn, "logged_model_params", e.aggregate_id, d["params"])
    _upsert(conn, "logged_model_tags", e.aggregate_id, d["tags"])


def _upsert(conn: sqlite3.Connection, table: str, model_id: str, values: dict[str, str]) -> None:
    conn.executemany(f"INSERT INTO {table}(model_id, key, value) VALUES(?, ?, ?) "
                     "ON CONFLICT(model_id, key) DO UPDATE SET value=excluded.value",
                     [(model_id, k, v) for k, v in values.items()])


@handles("logged_model.params_logged")
def _params_logged(conn: sqlite3.Connection, e: Event) -> None:
    _upsert(conn, "logged_model_params", e.aggregate_id, e.data["params"])
    _touch(conn, e)


@handles("logged_model.tags_set")
def _tags_set(conn: sqlite3.Connection, e: Event) -> None:
    _upsert(conn, "logged_model_tags", e.aggregate_id, e.data["tags"])
    _touch(conn, e)


@handles("logged_model.tag_deleted")
def _tag_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM logged_model_tags WHERE model_id=? AND key=?", (e.aggregate_id, e.data["key"]))
    _touch(conn, e)


@handles("logged_model.finalized")
def _finalized(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE logged_models SET status=? WHERE id=?", (e.data["status"], e.aggregate_id))
    _touch(conn, e)


@handles("logged_model.deleted")
def _deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE logged_models SET deleted=1 WHERE id=?", (e.aggregate_id,))
    _touch(conn, e)


@handles("logged_model.metrics_logged")
def _metrics_logged(conn: sqlite3.Connection, e: Event) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO logged_model_metrics(seq, n, model_id, key, value, timestamp, step, run_id, "
        "dataset_name, dataset_digest) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(e.sequence, n, e.aggregate_id, m["key"], json.dumps(m["value"]), m["timestamp"], m["step"],
          m.get("run_id"), m.get("dataset_name"), m.get("dataset_digest")) for n, m in enumerate(e.data["metrics"])])
    _touch(conn, e)


def logged_models(conn: sqlite3.Connection, project: str, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Live logged models of ``project`` matching ``where`` (SQL over ``logged_models``), with their
    params, tags and metrics, oldest first."""
    rows = conn.execute(f"SELECT * FROM logged_models WHERE project=? AND deleted=0 AND ({where}) "
                        "ORDER BY created_seq", (project, *args)).fetchall()
    models = {r["id"]: {k: r[k] for k in r.keys() if k not in ("deleted", "project")}
              | {"creation_timestamp": millis(r["created_at"]), "last_updated_timestamp": millis(r["updated_at"]),
                 "params": {}, "tags": {}, "metrics": []} for r in rows}
    if not models:
        return []
    marks = ",".join("?" * len(models))
    ids = tuple(models)
    for table, field in (("logged_model_params", "params"), ("logged_model_tags", "tags")):
        for r in conn.execute(f"SELECT model_id, key, value FROM {table} WHERE model_id IN ({marks}) ORDER BY key", ids):
            models[r["model_id"]][field][r["key"]] = r["value"]
    for r in conn.execute("SELECT * FROM logged_model_metrics WHERE model_id IN "
                          f"({marks}) ORDER BY seq, n", ids):
        models[r["model_id"]]["metrics"].append(
            {"key": r["key"], "value": json.loads(r["value"]), "timestamp": r["timestamp"], "step": r["step"],
             "run_id": r["run_id"], "dataset_name": r["dataset_name"], "dataset_digest": r["dataset_digest"]})
    return list(models.values())


def logged_model(conn: sqlite3.Connection, project: str, model_id: str) -> dict[str, Any]:
    found = logged_models(conn, project, "id=?", (model_id,))
    if not found:
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    return found[0]
