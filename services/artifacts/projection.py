"""Artifact-store read model: events -> SQLite tables, one handler per event type, plus the
aggregate snapshots the command side reads, folded in the same transaction. Model versions
(registry events) and registered profiles (the monitor's ``profile.registered``, stored here as
blobs) are read too, only to keep the blobs they point at from being collected.

Which projects hold which blobs (``blob_possessions``, what blob reads are checked against) comes
from the events that prove it: ``blob.possessed`` (``blobs.possessed`` for many),
``dataset.version_created`` (its manifest) and ``run.artifact_logged`` v2 (appended only after the
check); never from events that merely name a digest (model versions, code records, v1 artifact
records)."""

from __future__ import annotations

import sqlite3

from cairn.kernel.envelope import Event, embedded_record
from cairn.kernel.store import EventHandlers, SnapshotProjection
from cairn.services.artifacts.domain import EVOLVERS
from cairn.services.artifacts.media_store import register_media_handlers

HANDLERS = EventHandlers()
handles = HANDLERS.handles

# The aggregates whose events this read model is made of (the only ones the log delivers to it):
# its own (dataset, artifact_set, dataset_use, blob), two of the registry's, model
# (model_version.created) and run (run.environment_recorded, or the record run.created carries),
# and the monitor's profile (profile.registered), whose blobs it keeps.
# media_set: a run's media index (media_store.py); possessions: a project's blobs.possessed.
AGGREGATES = ("dataset", "artifact_set", "dataset_use", "blob", "possessions", "model", "run", "profile", "media_set")


def projection() -> SnapshotProjection:
    """A fresh entry point for one service instance (its batch cache is its own)."""
    return SnapshotProjection(EVOLVERS, HANDLERS)


def _ref(conn: sqlite3.Connection, digest: str, source: str, may_be_manifest: bool) -> None:
    project = source.split(":", 1)[1].split("/", 1)[0]  # sources are "<kind>:<project>/..."
    conn.execute("INSERT OR IGNORE INTO blob_refs(digest, source, may_be_manifest, project) VALUES(?, ?, ?, ?)",
                 (digest, source, int(may_be_manifest), project))


register_media_handlers(HANDLERS, _ref)


@handles("dataset.version_created")
def _version_created(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT INTO dataset_versions(project, name, version, manifest_digest, files, total_size, "
        "description, created_at, created_by, seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (e.project, e.aggregate_id, d["version"], d["manifest_digest"], d["files"], d["total_size"],
         d["description"], e.time, e.actor, e.sequence))
    _ref(conn, d["manifest_digest"], f"dataset:{e.project}/{e.aggregate_id}@v{d['version']}", True)
    # The request carried the manifest itself (and its files were checked as the project's): the
    # project holds the manifest's content.
    _possess(conn, e.project, d["manifest_digest"], e.sequence)


def _possess(conn: sqlite3.Connection, project: str, digest: str, seq: int) -> None:
    conn.execute("INSERT OR IGNORE INTO blob_possessions(project, digest, seq) VALUES(?, ?, ?)",
                 (project, digest, seq))


@handles("blob.possessed")
def _blob_possessed(conn: sqlite3.Connection, e: Event) -> None:
    _possess(conn, e.project, e.data["digest"], e.sequence)


@handles("blobs.possessed")
def _blobs_possessed(conn: sqlite3.Connection, e: Event) -> None:
    for blob in e.data["blobs"]:
        _possess(conn, e.project, blob["digest"], e.sequence)


@handles("run.artifact_logged")
def _artifact_logged(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT INTO run_artifacts(project, run_id, name, digest, kind, size, files, created_at, "
        "created_by, seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (e.project, e.aggregate_id, d["name"], d["digest"], d["kind"], d["size"], d["files"], e.time,
         e.actor, e.sequence))
    _ref(conn, d["digest"], f"artifact:{e.project}/{e.aggregate_id}/{d['name']}", d["kind"] != "file")
    if e.version >= 2:  # appended once the project was seen to hold the blob (v1 was not checked)
        _possess(conn, e.project, d["digest"], e.sequence)


@handles("run.dataset_used")
def _dataset_used(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT OR IGNORE INTO dataset_uses(project, run_id, dataset, version, manifest_digest, "
        "created_at, seq) VALUES(?, ?, ?, ?, ?, ?, ?)",
        (e.project, e.aggregate_id, d["dataset"], d["version"], d["manifest_digest"], e.time, e.sequence))


@handles("model_version.created")
def _model_version_created(conn: sqlite3.Connection, e: Event) -> None:
    # A model version may point at a single file or at a directory's manifest: look at it. Only a
    # GC root: naming a digest gives the project no right to read it (blob_possessions does).
    _ref(conn, e.data["artifact_digest"],
         f"model_version:{e.project}/{e.aggregate_id}@v{e.data['version']}", True)


@handles("profile.registered")
def _profile_registered(conn: sqlite3.Connection, e: Event) -> None:
    # The monitor uploaded the profile into the project first (blob.possessed); this keeps it from GC.
    _ref(conn, e.data["digest"], f"profile:{e.project}/{e.aggregate_id}", False)


@handles("run.environment_recorded", "run.created")
def _code_recorded(conn: sqlite3.Connection, e: Event) -> None:
    # A run's code archive (registry event, or the record a run was created with): keep it from GC.
    # Readable by the run's project only if that project uploaded it (blob_possessions).
    record = embedded_record(e) if e.type == "run.created" else e
    if record is None:
        return
    digest = (record.data.get("code") or {}).get("archive_digest")
    if digest:
        _ref(conn, digest, f"code:{e.project}/{e.aggregate_id}", False)
