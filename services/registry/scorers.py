"""MLflow 3's registered scorers (GenAI judges and code scorers), one registry aggregate per
(experiment, scorer name): its id is a hash of the two, so the name is unique in its experiment
without a guard. Each registration adds the next version (one more than the highest live one);
deleting removes one version or all. The serialized scorer is kept as MLflow sends it (JSON text).
Pure commands and evolve here, and the projection's table and handlers."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.envelope import Event
from cairn.kernel.errors import EventOutOfOrder, InvalidInput, NotFound
from cairn.kernel.store import EventHandlers

State = dict[str, Any] | None
MAX_SERIALIZED = 512 * 1024  # one version is one event, which must fit a NATS message

SCORER_SCHEMA = """
CREATE TABLE IF NOT EXISTS scorer_versions (
    scorer_id TEXT NOT NULL, project TEXT NOT NULL, experiment_id TEXT NOT NULL, name TEXT NOT NULL,
    version INTEGER NOT NULL, serialized TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    PRIMARY KEY (scorer_id, version));
CREATE INDEX IF NOT EXISTS scorer_versions_by_experiment ON scorer_versions(project, experiment_id, name);
"""
SCORER_HANDLERS = EventHandlers()


def scorer_id(experiment_id: str, name: str) -> str:
    return "s-" + hashlib.sha256(f"{experiment_id}\0{name}".encode()).hexdigest()[:32]


def register_scorer(state: State, *, experiment_id: str, name: str, serialized_scorer: str) -> Decision:
    if not name or len(name) > 256 or not name.isprintable():
        raise InvalidInput(f"scorer name {name!r} is not valid: use 1-256 printable characters",
                           details={"field": "name"})
    if len(serialized_scorer.encode()) > MAX_SERIALIZED:
        raise InvalidInput(f"the serialized scorer is over {MAX_SERIALIZED} bytes", details={"field": "serialized_scorer"})
    versions = (state or {}).get("versions", [])
    return "scorer.registered", {"experiment_id": experiment_id, "name": name, "version": max(versions, default=0) + 1,
                                 "serialized_scorer": serialized_scorer}


def delete_scorer(state: State, *, name: str, version: int | None) -> Decision:
    versions = (state or {}).get("versions", [])
    if not versions:
        raise NotFound(f"Scorer with name '{name}' not found")
    if version is not None and version not in versions:
        raise NotFound(f"Scorer with name '{name}' and version {version} not found")
    return "scorer.deleted", {"version": version}


def evolve_scorer(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "scorer.registered":
        state = state or {"versions": []}
        state["versions"].append(data["version"])
        return state
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a scorer that was never registered")
    state["versions"] = [] if data["version"] is None else [v for v in state["versions"] if v != data["version"]]
    return state


@SCORER_HANDLERS.handles("scorer.registered")
def _registered(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute("INSERT OR REPLACE INTO scorer_versions(scorer_id, project, experiment_id, name, version, serialized, "
                 "created_at, created_by) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                 (e.aggregate_id, e.project, d["experiment_id"], d["name"], d["version"], d["serialized_scorer"],
                  e.time, e.actor))


@SCORER_HANDLERS.handles("scorer.deleted")
def _deleted(conn: sqlite3.Connection, e: Event) -> None:
    if e.data["version"] is None:
        conn.execute("DELETE FROM scorer_versions WHERE scorer_id=?", (e.aggregate_id,))
    else:
        conn.execute("DELETE FROM scorer_versions WHERE scorer_id=? AND version=?", (e.aggregate_id, e.data["version"]))


def scorer_versions(conn: sqlite3.Connection, project: str, experiment_id: str, name: str | None = None,
                    latest_only: bool = False) -> list[dict[str, Any]]:
    """Versions of the experiment's scorers (of one name if given), by name then version; with
    ``latest_only`` the highest version of each name."""
    sql = "SELECT * FROM scorer_versions WHERE project=? AND experiment_id=?"
    args: tuple[Any, ...] = (project, experiment_id)
    if name is not None:
        sql, args = sql + " AND name=?", (*args, name)
    rows = [dict(r) for r in conn.execute(sql + " ORDER BY name, version", args)]
    if latest_only:
        rows = list({r["name"]: r for r in rows}.values())
    return rows
