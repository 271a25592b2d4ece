"""Registry read model: SQLite schema and the queries the API serves."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cairn.kernel.envelope import subject_for
from cairn.kernel.errors import NotFound
from cairn.kernel.store import SqliteStore, load_state, save_state
from cairn.services.registry.domain import ModelNames
from cairn.services.registry.eval_dataset_view import EVAL_DATASET_SCHEMA
from cairn.services.registry.logged_model_view import LOGGED_MODEL_SCHEMA
from cairn.services.registry.run_metrics import RUN_METRICS_SCHEMA
from cairn.services.registry.run_record_view import RECORD_SCHEMA
from cairn.services.registry.scorers import SCORER_SCHEMA

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY, description TEXT NOT NULL, archived INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
    archived INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    created_by TEXT NOT NULL, created_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS experiments_by_project ON experiments(project, name);
CREATE TABLE IF NOT EXISTS experiment_tags (
    experiment_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key));
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, experiment_id TEXT NOT NULL, name TEXT NOT NULL,
    status TEXT NOT NULL, status_message TEXT, description TEXT NOT NULL, archived INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, started_at TEXT, ended_at TEXT,
    created_by TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_project ON runs(project, experiment_id, created_at);
CREATE TABLE IF NOT EXISTS run_params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key));
CREATE INDEX IF NOT EXISTS run_params_by_key ON run_params(key, value);
CREATE TABLE IF NOT EXISTS run_tags (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key));
CREATE INDEX IF NOT EXISTS run_tags_by_key ON run_tags(key, value);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
    archived INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    created_by TEXT NOT NULL, created_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS models_by_project ON models(project, name);
CREATE TABLE IF NOT EXISTS model_tags (
    model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key));
CREATE TABLE IF NOT EXISTS model_versions (
    model_id TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT NOT NULL,
    artifact_digest TEXT NOT NULL, description TEXT NOT NULL, archived INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, created_by TEXT NOT NULL,
    created_seq INTEGER NOT NULL, PRIMARY KEY (model_id, version));
CREATE TABLE IF NOT EXISTS model_version_tags (
    model_id TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (model_id, version, key));
CREATE TABLE IF NOT EXISTS model_version_sources (
    model_id TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (model_id, version));
CREATE TABLE IF NOT EXISTS model_aliases (
    model_id TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (model_id, alias));
CREATE TABLE IF NOT EXISTS alias_history (
    seq INTEGER PRIMARY KEY, model_id TEXT NOT NULL, alias TEXT NOT NULL, action TEXT NOT NULL,
    version INTEGER NOT NULL, previous_version INTEGER, time TEXT NOT NULL, actor TEXT NOT NULL);
"""


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    if "archived" in out:
        out["archived"] = bool(out["archived"])
    return out


class RegistryStore(SqliteStore):
    """The registry's read model."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA + RECORD_SCHEMA + RUN_METRICS_SCHEMA + LOGGED_MODEL_SCHEMA
                         + EVAL_DATASET_SCHEMA + SCORER_SCHEMA)
        self._give_models_their_state()

    def _give_models_their_state(self) -> None:
        """Upgrade a read model built before models had subjects of their own: their name,
        description, archived flag and tags were in the project's snapshot, and the model's
        snapshot had only versions and aliases. Copy them from the views into the model's
        snapshot, keeping its position (the model subject's real last sequence; 0 when empty),
        which appends expect. Idempotent; a rebuild by replay makes the same snapshots."""
        with self.transaction() as conn:
            for row in conn.execute("SELECT id, project, name, description, archived FROM models").fetchall():
                subject = subject_for(row["project"], "model", row["id"])
                seq, state = load_state(conn, subject)
                if state is not None and "name" in state:
                    continue
                tags = {t["key"]: t["value"] for t in conn.execute(
                    "SELECT key, value FROM model_tags WHERE model_id=?", (row["id"],))}
                state = {"latest_version": 0, "versions": {}, "aliases": {}, **(state or {}),
                         "name": row["name"], "description": row["description"],
                         "archived": bool(row["archived"]), "tags": tags}
                save_state(conn, subject, seq, state)

    # projects
    def project(self, name: str) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM projects WHERE name=?", (name,))
        if row is None:
            raise NotFound(f"project {name!r} does not exist")
        return _row(row)

    def projects(self, include_archived: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM projects" + ("" if include_archived else " WHERE archived=0")
        return [_row(r) for r in self.query(sql + " ORDER BY name")]

    # experiments
    def experiment(self, project: str, experiment_id: str) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM experiments WHERE id=? AND project=?", (experiment_id, project))
        if row is None:
            raise NotFound(f"experiment {experiment_id!r} does not exist in project {project!r}")
        out = _row(row)
        out["tags"] = self._tags("experiment_tags", "experiment_id", experiment_id)
        return out

    def experiment_by_name(self, project: str, name: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT id FROM experiments WHERE project=? AND name=?", (project, name))
        return self.experiment(project, row["id"]) if row else None

    def experiments(self, project: str, include_archived: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT id FROM experiments WHERE project=?" + ("" if include_archived else " AND archived=0")
        return [self.experiment(project, r["id"]) for r in self.query(sql + " ORDER BY created_at", (project,))]

    # runs
    def run(self, project: str, run_id: str) -> dict[str, Any]:
        return self.runs_by_ids(project, [run_id])[0]

    def runs_by_ids(self, project: str, run_ids: list[str]) -> list[dict[str, Any]]:
        """The runs with these ids, in this order (a search page): three queries, not three per run."""
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        rows = {r["id"]: _row(r) for r in self.query(
            f"SELECT * FROM runs WHERE project=? AND id IN ({marks})", (project, *run_ids))}
        missing = [run_id for run_id in run_ids if run_id not in rows]
        if missing:
            raise NotFound(f"run {missing[0]!r} does not exist in project {project!r}")
        for table, field in (("run_params", "params"), ("run_tags", "tags")):
            for run in rows.values():
                run[field] = {}
            for r in self.query(f"SELECT run_id, key, value FROM {table} WHERE run_id IN ({marks}) ORDER BY key",
                                tuple(run_ids)):
                rows[r["run_id"]][field][r["key"]] = r["value"]
        return [rows[run_id] for run_id in run_ids]

    # models
    def model(self, project: str, name: str) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM models WHERE project=? AND name=?", (project, name))
        if row is None:
            raise NotFound(f"model {name!r} does not exist in project {project!r}")
        out = _row(row)
        out["tags"] = self._tags("model_tags", "model_id", out["id"])
        out["aliases"] = {r["alias"]: r["version"] for r in self.query(
            "SELECT alias, version FROM model_aliases WHERE model_id=? ORDER BY alias", (out["id"],))}
        latest = self.query_one("SELECT MAX(version) AS v FROM model_versions WHERE model_id=?", (out["id"],))
        out["latest_version"] = latest["v"] if latest and latest["v"] is not None else None
        return out

    def models(self, project: str, include_archived: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT name FROM models WHERE project=?" + ("" if include_archived else " AND archived=0")
        return [self.model(project, r["name"]) for r in self.query(sql + " ORDER BY name", (project,))]

    def model_version(self, project: str, model_name: str, version: int) -> dict[str, Any]:
        model = self.model(project, model_name)
        row = self.query_one("SELECT * FROM model_versions WHERE model_id=? AND version=?",
                             (model["id"], version))
        if row is None:
            latest = model["latest_version"]
            hint = f"latest is {latest}" if latest else "it has no versions yet"
            raise NotFound(f"model {model_name!r} has no version {version}; {hint}")
        return self._version(model, row)

    def _version(self, model: dict[str, Any], row: sqlite3.Row) -> dict[str, Any]:
        out = _row(row)
        out["model"] = model["name"]
        out["aliases"] = sorted(a for a, v in model["aliases"].items() if v == out["version"])
        out["tags"] = {r["key"]: r["value"] for r in self.query(
            "SELECT key, value FROM model_version_tags WHERE model_id=? AND version=? ORDER BY key",
            (model["id"], out["version"]))}
        if not out["artifact_digest"]:  # registered without files (model_commands.py)
            held = self.query_one("SELECT source, reason FROM model_version_sources WHERE model_id=? AND version=?",
                                  (model["id"], out["version"]))
            out["artifact_digest"] = None
            out["files_unavailable"] = {"source": held["source"], "reason": held["reason"]} if held else None
        return out

    def model_versions(self, project: str, model_name: str, include_archived: bool = False) -> list[dict[str, Any]]:
        model = self.model(project, model_name)
        sql = "SELECT * FROM model_versions WHERE model_id=?" + ("" if include_archived else " AND archived=0")
        return [self._version(model, r) for r in self.query(sql + " ORDER BY version", (model["id"],))]

    def alias_history(self, project: str, model_name: str, alias: str) -> list[dict[str, Any]]:
        model = self.model(project, model_name)
        return [dict(r) for r in self.query(
            "SELECT seq, alias, action, version, previous_version, time, actor FROM alias_history "
            "WHERE model_id=? AND alias=? ORDER BY seq", (model["id"], alias))]

    def created_by_event(self, table: str, sequence: int) -> sqlite3.Row:
        """The experiment, model or model version that the event at ``sequence`` created."""
        assert table in ("experiments", "models", "model_versions")
        row = self.query_one(f"SELECT * FROM {table} WHERE created_seq=?", (sequence,))
        if row is None:
            raise NotFound(f"nothing in {table} was created by event {sequence}")
        return row

    def _tags(self, table: str, column: str, owner: str) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.query(
            f"SELECT key, value FROM {table} WHERE {column}=? ORDER BY key", (owner,))}


def model_names(conn: sqlite3.Connection, project: str) -> ModelNames:
    """The guard's view for creating or renaming a model of ``project`` (see domain.ModelNames)."""
    exists = conn.execute("SELECT 1 FROM projects WHERE name=?", (project,)).fetchone() is not None
    names = {r["name"]: r["id"] for r in conn.execute("SELECT name, id FROM models WHERE project=?", (project,))}
    return ModelNames(project_exists=exists, names=names)
