"""Deployments read model: the deployment and environment snapshots (the kernel's ``aggregates``
table) and what the service needs of the registry's events: models by name, their versions with
the run each came from, aliases, and the datasets runs used."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cairn.kernel.envelope import subject_for
from cairn.kernel.errors import NotFound
from cairn.kernel.store import SqliteStore, load_state
from cairn.services.deployments.domain import ModelRef, is_protected

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS models_by_name ON models(project, name);
CREATE TABLE IF NOT EXISTS model_versions (
    model_id TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (model_id, version));
CREATE TABLE IF NOT EXISTS model_aliases (
    model_id TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (model_id, alias));
CREATE TABLE IF NOT EXISTS run_datasets (
    run_id TEXT NOT NULL, dataset TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (run_id, dataset, version));
CREATE TABLE IF NOT EXISTS deployments (
    project TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (project, name));
"""


class DeploymentsStore(SqliteStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA)

    # --- models (from the registry's events) ---

    def model_ref(self, project: str, name: str, alias: str | None = None) -> ModelRef:
        row = self.query_one("SELECT id FROM models WHERE project=? AND name=?", (project, name))
        if row is None:
            raise NotFound(f"model {name!r} does not exist in project {project!r}; register it first",
                           details={"field": "model"})
        versions = frozenset(r[0] for r in self.query("SELECT version FROM model_versions WHERE model_id=?", (row[0],)))
        return ModelRef(name, row[0], versions, self.alias_version(row[0], alias) if alias else None)

    def alias_version(self, model_id: str, alias: str) -> int | None:
        row = self.query_one("SELECT version FROM model_aliases WHERE model_id=? AND alias=?", (model_id, alias))
        return int(row[0]) if row else None

    def provenance(self, model_id: str, version: int) -> dict[str, Any]:
        """The run a model version came from and the dataset versions that run used."""
        row = self.query_one("SELECT run_id FROM model_versions WHERE model_id=? AND version=?", (model_id, version))
        if row is None:
            return {"run_id": None, "datasets": []}
        datasets = [f"{r[0]}@v{r[1]}" for r in self.query(
            "SELECT dataset, version FROM run_datasets WHERE run_id=? ORDER BY dataset, version", (row[0],))]
        return {"run_id": row[0], "datasets": datasets}

    # --- deployments and environments (snapshots) ---

    def state(self, project: str, name: str) -> tuple[int, dict[str, Any] | None]:
        return load_state(self.reader(), subject_for(project, "deployment", name))

    def config(self, project: str, name: str) -> dict[str, Any]:
        """A deployment as its replicas read it (contract: ``seq`` moves whenever anything does)."""
        seq, state = self.state(project, name)
        if state is None:
            raise NotFound(f"deployment {name!r} does not exist in project {project!r}")
        return config_of(project, name, seq, state)

    def names(self, project: str) -> list[str]:
        return [r[0] for r in self.query("SELECT name FROM deployments WHERE project=? ORDER BY name", (project,))]

    def every_deployment(self) -> list[tuple[str, str, int, dict[str, Any]]]:
        """(project, name, seq, state) of every deployment, deleted ones too (the reconciler's input)."""
        out = []
        for project, name in self.query("SELECT project, name FROM deployments ORDER BY project, name"):
            seq, state = self.state(project, name)
            if state is not None:
                out.append((project, name, seq, state))
        return out

    def protected(self, project: str, environment: str) -> bool:
        _, state = load_state(self.reader(), subject_for(project, "environment", environment))
        return is_protected(state, environment)

    def environments(self, project: str) -> list[dict[str, Any]]:
        """Environments with deployments or a protection of their own, and ``prod``."""
        prefix = subject_for(project, "environment", "")
        named = {r[0][len(prefix):] for r in self.query(
            "SELECT subject FROM aggregates WHERE subject >= ? AND subject < ?", (prefix, prefix + "\U0010ffff"))}
        for name in self.names(project):
            _, state = self.state(project, name)
            if state is not None and not state["deleted"]:
                named.add(state["environment"])
        named |= {"prod"}
        return [{"name": env, "protected": self.protected(project, env)} for env in sorted(named)]


def config_of(project: str, name: str, seq: int, state: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "project": project, "environment": state["environment"], "model": state["model"],
            "follows": state["follows"], "version": state["version"],
            "previous_version": state["previous_version"], "replicas": state["replicas"],
            "sample_rate": state["sample_rate"], "traffic": state["traffic"], "batching": state["batching"],
            "public": state["public"], "deleted": state["deleted"], "seq": seq}


def record_deployment(conn: sqlite3.Connection, project: str, name: str) -> None:
    conn.execute("INSERT OR IGNORE INTO deployments(project, name) VALUES(?, ?)", (project, name))
