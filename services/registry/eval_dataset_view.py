"""The read model of evaluation datasets (eval_datasets.py): a row per dataset, its experiments,
tags and records, projected from ``eval_dataset.*`` events; and the reads the API serves."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.errors import NotFound
from cairn.kernel.store import EventHandlers
from cairn.services.registry.logged_model_search import millis

EVAL_DATASET_SCHEMA = """
CREATE TABLE IF NOT EXISTS eval_datasets (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, deleted INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, created_by TEXT NOT NULL, last_updated_by TEXT NOT NULL,
    created_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS eval_datasets_by_project ON eval_datasets(project, created_seq);
CREATE TABLE IF NOT EXISTS eval_dataset_experiments (
    dataset_id TEXT NOT NULL, experiment_id TEXT NOT NULL, PRIMARY KEY (dataset_id, experiment_id));
CREATE TABLE IF NOT EXISTS eval_dataset_tags (
    dataset_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (dataset_id, key));
CREATE TABLE IF NOT EXISTS eval_dataset_records (
    dataset_id TEXT NOT NULL, key TEXT NOT NULL, inputs TEXT NOT NULL, expectations TEXT NOT NULL,
    outputs TEXT, tags TEXT NOT NULL, source TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    created_by TEXT NOT NULL, last_updated_by TEXT NOT NULL, created_seq INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, key));
"""

EVAL_DATASET_HANDLERS = EventHandlers()
handles = EVAL_DATASET_HANDLERS.handles


def _touch(conn: sqlite3.Connection, e: Event, by: str | None = None) -> None:
    conn.execute("UPDATE eval_datasets SET updated_at=?, last_updated_by=? WHERE id=?",
                 (e.time, by or e.actor, e.aggregate_id))


@handles("eval_dataset.created")
def _created(conn: sqlite3.Connection, e: Event) -> None:
    by = e.data["created_by"] or e.actor
    conn.execute("INSERT INTO eval_datasets(id, project, name, deleted, created_at, updated_at, created_by, "
                 "last_updated_by, created_seq) VALUES(?, ?, ?, 0, ?, ?, ?, ?, ?)",
                 (e.aggregate_id, e.project, e.data["name"], e.time, e.time, by, by, e.sequence))
    conn.executemany("INSERT OR IGNORE INTO eval_dataset_experiments(dataset_id, experiment_id) VALUES(?, ?)",
                     [(e.aggregate_id, x) for x in e.data["experiment_ids"]])
    conn.executemany("INSERT INTO eval_dataset_tags(dataset_id, key, value) VALUES(?, ?, ?)",
                     [(e.aggregate_id, k, v) for k, v in e.data["tags"].items()])


@handles("eval_dataset.tags_set")
def _tags_set(conn: sqlite3.Connection, e: Event) -> None:
    conn.executemany("INSERT INTO eval_dataset_tags(dataset_id, key, value) VALUES(?, ?, ?) "
                     "ON CONFLICT(dataset_id, key) DO UPDATE SET value=excluded.value",
                     [(e.aggregate_id, k, v) for k, v in e.data["tags"].items()])
    _touch(conn, e)


@handles("eval_dataset.tag_deleted")
def _tag_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM eval_dataset_tags WHERE dataset_id=? AND key=?", (e.aggregate_id, e.data["key"]))
    _touch(conn, e)


@handles("eval_dataset.deleted")
def _deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE eval_datasets SET deleted=1 WHERE id=?", (e.aggregate_id,))
    _touch(conn, e)


@handles("eval_dataset.records_upserted")
def _records_upserted(conn: sqlite3.Connection, e: Event) -> None:
    by = e.data["updated_by"] or e.actor
    for r in e.data["records"]:
        row = conn.execute("SELECT expectations, tags FROM eval_dataset_records WHERE dataset_id=? AND key=?",
                           (e.aggregate_id, r["key"])).fetchone()
        outputs = json.dumps(r["outputs"]) if "outputs" in r else None
        source = json.dumps(r["source"]) if "source" in r else None
        if row is None:
            conn.execute("INSERT INTO eval_dataset_records(dataset_id, key, inputs, expectations, outputs, tags, "
                         "source, created_at, updated_at, created_by, last_updated_by, created_seq) "
                         "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (e.aggregate_id, r["key"], json.dumps(r["inputs"]), json.dumps(r["expectations"]), outputs,
                          json.dumps(r["tags"]), source, e.time, e.time, by, by, e.sequence))
            continue
        expectations = json.loads(row["expectations"]) | r["expectations"]
        tags = json.loads(row["tags"]) | r["tags"]
        conn.execute("UPDATE eval_dataset_records SET expectations=?, tags=?, outputs=COALESCE(?, outputs), "
                     "source=COALESCE(?, source), updated_at=?, last_updated_by=? WHERE dataset_id=? AND key=?",
                     (json.dumps(expectations), json.dumps(tags), outputs, source, e.time, by, e.aggregate_id,
                      r["key"]))
    _touch(conn, e, by)


def eval_datasets(conn: sqlite3.Connection, project: str, where: str = "1", args: tuple[Any, ...] = ()
                  ) -> list[dict[str, Any]]:
    """Live datasets of ``project`` matching ``where`` (SQL over ``eval_datasets``), oldest first."""
    rows = conn.execute(f"SELECT * FROM eval_datasets WHERE project=? AND deleted=0 AND ({where}) "
                        "ORDER BY created_seq", (project, *args)).fetchall()
    found = {r["id"]: {"id": r["id"], "name": r["name"], "created_by": r["created_by"],
                       "last_updated_by": r["last_updated_by"], "created_seq": r["created_seq"],
                       "created_time": millis(r["created_at"]), "last_update_time": millis(r["updated_at"]),
                       "experiment_ids": [], "tags": {}} for r in rows}
    if not found:
        return []
    marks, ids = ",".join("?" * len(found)), tuple(found)
    for r in conn.execute(f"SELECT * FROM eval_dataset_experiments WHERE dataset_id IN ({marks}) "
                          "ORDER BY experiment_id", ids):
        found[r["dataset_id"]]["experiment_ids"].append(r["experiment_id"])
    for r in conn.execute(f"SELECT * FROM eval_dataset_tags WHERE dataset_id IN ({marks}) ORDER BY key", ids):
        found[r["dataset_id"]]["tags"][r["key"]] = r["value"]
    return list(found.values())


def eval_dataset(conn: sqlite3.Connection, project: str, dataset_id: str) -> dict[str, Any]:
    found = eval_datasets(conn, project, "id=?", (dataset_id,))
    if not found:
        raise NotFound(f"Evaluation dataset with id '{dataset_id}' not found")
    return found[0]


def eval_dataset_records(conn: sqlite3.Connection, dataset_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM eval_dataset_records WHERE dataset_id=? ORDER BY created_seq, key "
                        "LIMIT ? OFFSET ?", (dataset_id, limit, offset)).fetchall()
    return [{"dataset_record_id": f"dr-{r['key']}", "dataset_id": dataset_id, "inputs": json.loads(r["inputs"]),
             "expectations": json.loads(r["expectations"]), "tags": json.loads(r["tags"]),
             "outputs": None if r["outputs"] is None else json.loads(r["outputs"]),
             "source": None if r["source"] is None else json.loads(r["source"]),
             "created_time": millis(r["created_at"]), "last_update_time": millis(r["updated_at"]),
             "created_by": r["created_by"], "last_updated_by": r["last_updated_by"]} for r in rows]
