"""Deployments read model: events -> SQLite. Deployment and environment events fold into their
snapshots (which the API serves directly); the registry's model events keep the model, version
and alias tables that creating and following a deployment read; ``run.dataset_used`` says which
dataset versions a deployed version's run was trained on."""

from __future__ import annotations

import sqlite3

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, SnapshotProjection
from cairn.services.deployments.domain import EVOLVERS
from cairn.services.deployments.store import record_deployment

HANDLERS = EventHandlers()
handles = HANDLERS.handles

# deployment and environment are this service's; model and dataset_use are the registry's
AGGREGATES = ("deployment", "environment", "model", "dataset_use")
DEPLOYMENT_EVENTS = ("deployment.created", "deployment.version_changed", "deployment.scaled",
                     "deployment.traffic_split", "deployment.replica_started", "deployment.replica_stopped",
                     "deployment.replica_failed", "deployment.deleted")


def projection() -> SnapshotProjection:
    """A fresh entry point for one service instance (its batch cache is its own)."""
    return SnapshotProjection(EVOLVERS, HANDLERS)


@handles(*DEPLOYMENT_EVENTS)
def _deployment(conn: sqlite3.Connection, e: Event) -> None:
    record_deployment(conn, e.project, e.aggregate_id)  # the snapshot is the view


@handles("environment.protected", "environment.unprotected")
def _environment(conn: sqlite3.Connection, e: Event) -> None:
    """The snapshot is the view."""


@handles("model.created")
def _model_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR REPLACE INTO models(id, project, name) VALUES(?, ?, ?)",
                 (e.data["model_id"], e.project, e.data["name"]))


@handles("model.updated")
def _model_updated(conn: sqlite3.Connection, e: Event) -> None:
    if "name" in e.data:
        conn.execute("UPDATE models SET name=? WHERE id=?", (e.data["name"], e.data["model_id"]))


@handles("model_version.created")
def _version_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR REPLACE INTO model_versions(model_id, version, run_id) VALUES(?, ?, ?)",
                 (e.aggregate_id, e.data["version"], e.data["run_id"]))


@handles("model_version.alias_set")
def _alias_set(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT INTO model_aliases(model_id, alias, version) VALUES(?, ?, ?) "
                 "ON CONFLICT(model_id, alias) DO UPDATE SET version=excluded.version",
                 (e.aggregate_id, e.data["alias"], e.data["version"]))


@handles("model_version.alias_removed")
def _alias_removed(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM model_aliases WHERE model_id=? AND alias=?", (e.aggregate_id, e.data["alias"]))


@handles("run.dataset_used")
def _dataset_used(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR IGNORE INTO run_datasets(run_id, dataset, version) VALUES(?, ?, ?)",
                 (e.aggregate_id, e.data["dataset"], e.data["version"]))
