"""Artifact-store read model: events -> SQLite tables, one handler per event type, plus the
aggregate snapshots the command side reads, folded in the same transaction. Model versions
(registry events) are read too, only to keep the blobs they point at from being collected."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.store import load_state, record_idempotency, save_state
from cairn.services.artifacts.domain import EVOLVERS

Handler = Callable[[sqlite3.Connection, Event], None]
HANDLERS: dict[str, Handler] = {}


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for event_type in event_types:
            HANDLERS[event_type] = fn
        return fn
    return register


def _ref(conn: sqlite3.Connection, digest: str, source: str, may_be_manifest: bool) -> None:
    project = source.split(":", 1)[1].split("/", 1)[0]  # sources are "<kind>:<project>/..."
    conn.execute("INSERT OR IGNORE INTO blob_refs(digest, source, may_be_manifest, project) VALUES(?, ?, ?, ?)",
                 (digest, source, int(may_be_manifest), project))


class ArtifactsProjection:
    """Entry point: snapshots cached per batch (written once at its end) and the views."""

    def __init__(self) -> None:
        self._snapshots: dict[str, tuple[int, dict[str, Any]]] = {}

    def __call__(self, conn: sqlite3.Connection, event: Event) -> None:
        handler = HANDLERS.get(event.type)
        if handler is None:
            return  # another service's event
        evolve = EVOLVERS.get(event.aggregate)
        if evolve is not None:
            cached = self._snapshots.get(event.subject)
            state = cached[1] if cached is not None else load_state(conn, event.subject)[1]
            self._snapshots[event.subject] = (event.sequence, evolve(state, event.type, event.data))
            record_idempotency(conn, event)
        handler(conn, event)

    def begin_batch(self) -> None:
        self._snapshots.clear()

    def end_batch(self, conn: sqlite3.Connection) -> None:
        for subject, (sequence, state) in self._snapshots.items():
            save_state(conn, subject, sequence, state)
        self._snapshots.clear()


@handles("dataset.version_created")
def _version_created(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT INTO dataset_versions(project, name, version, manifest_digest, files, total_size, "
        "description, created_at, created_by, seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (e.project, e.aggregate_id, d["version"], d["manifest_digest"], d["files"], d["total_size"],
         d["description"], e.time, e.actor, e.sequence))
    _ref(conn, d["manifest_digest"], f"dataset:{e.project}/{e.aggregate_id}@v{d['version']}", True)


@handles("run.artifact_logged")
def _artifact_logged(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT INTO run_artifacts(project, run_id, name, digest, kind, size, files, created_at, "
        "created_by, seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (e.project, e.aggregate_id, d["name"], d["digest"], d["kind"], d["size"], d["files"], e.time,
         e.actor, e.sequence))
    _ref(conn, d["digest"], f"artifact:{e.project}/{e.aggregate_id}/{d['name']}", d["kind"] != "file")


@handles("run.dataset_used")
def _dataset_used(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT OR IGNORE INTO dataset_uses(project, run_id, dataset, version, manifest_digest, "
        "created_at, seq) VALUES(?, ?, ?, ?, ?, ?, ?)",
        (e.project, e.aggregate_id, d["dataset"], d["version"], d["manifest_digest"], e.time, e.sequence))


@handles("model_version.created")
def _model_version_created(conn: sqlite3.Connection, e: Event) -> None:
    # A model version may point at a single file or at a directory's manifest: look at it.
    _ref(conn, e.data["artifact_digest"],
         f"model_version:{e.project}/{e.aggregate_id}@v{e.data['version']}", True)
