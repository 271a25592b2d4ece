"""Registry read model: events -> SQLite tables. One handler per event type; the aggregate state
snapshot used by the command side is folded in the same transaction."""

from __future__ import annotations

import sqlite3

from cairn.kernel.envelope import Event, embedded_record, subject_for
from cairn.kernel.store import EventHandlers, SnapshotProjection
from cairn.services.registry.domain import EVOLVERS, evolve_model
from cairn.services.registry.eval_dataset_view import EVAL_DATASET_HANDLERS
from cairn.services.registry.eval_datasets import evolve_eval_dataset
from cairn.services.registry.logged_model_view import LOGGED_MODEL_HANDLERS
from cairn.services.registry.logged_models import evolve_logged_model
from cairn.services.registry.run_metrics import METRIC_HANDLERS
from cairn.services.registry.run_record_view import RECORD_HANDLERS
from cairn.services.registry.scorers import SCORER_HANDLERS, evolve_scorer

HANDLERS = EventHandlers()
handles = HANDLERS.handles

# The aggregates whose events this read model is made of (the only ones the log delivers to it):
# project (project.*, experiment.*; model.* in logs written before models had their own subjects),
# run (run.* but run.artifact_logged, which is the artifact store's artifact_set), model (model.*,
# model_version.*), dataset_use (the artifact store's run.dataset_used, which the registry
# serves as a run's datasets), metrics (the metrics service's metric.summarized, which run
# search and the run diff read: run_metrics.py) and MLflow 3's records: logged_model, eval_dataset and scorer.
AGGREGATES = ("project", "run", "model", "dataset_use", "metrics", "logged_model", "eval_dataset", "scorer")


class RegistryProjection(SnapshotProjection):
    """The snapshot projection plus one upcaster: ``model.*`` events appended on the project's
    subject (before models had subjects of their own) fold into the model's snapshot as if they
    were on ``cairn.evt.<project>.model.<id>``, without moving that snapshot's position: the event
    is not on that subject, and appends to it expect its real last sequence. The views read
    ``data.model_id``, which both shapes carry, so they need no upcasting."""

    def __call__(self, conn: sqlite3.Connection, event: Event) -> None:
        if event.aggregate == "project" and event.type.startswith("model.") and event.type in self.handlers:
            model_subject = subject_for(event.project, "model", event.data["model_id"])
            self.fold(conn, model_subject, evolve_model, event, advance=False)
        super().__call__(conn, event)


def projection() -> RegistryProjection:
    """A fresh entry point for one service instance (its batch cache is its own)."""
    return RegistryProjection(EVOLVERS | {"logged_model": evolve_logged_model, "eval_dataset": evolve_eval_dataset,
                                          "scorer": evolve_scorer}, HANDLERS)


# --- projects and experiments ------------------------------------------------------------------

@handles("project.created")
def _project_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute(
        "INSERT INTO projects(name, description, archived, created_at, updated_at, created_by) "
        "VALUES(?, ?, 0, ?, ?, ?)", (e.project, e.data["description"], e.time, e.time, e.actor))
    conn.execute(
        "INSERT INTO experiments(id, project, name, description, archived, created_at, updated_at, "
        "created_by, created_seq) VALUES(?, ?, 'default', '', 0, ?, ?, ?, ?)",
        (e.data["default_experiment_id"], e.project, e.time, e.time, e.actor, e.sequence))


@handles("project.updated")
def _project_updated(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE projects SET description=?, updated_at=? WHERE name=?",
                 (e.data["description"], e.time, e.project))


@handles("project.archived", "project.restored")
def _project_archived(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE projects SET archived=?, updated_at=? WHERE name=?",
                 (int(e.type == "project.archived"), e.time, e.project))


@handles("experiment.created")
def _experiment_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute(
        "INSERT INTO experiments(id, project, name, description, archived, created_at, updated_at, "
        "created_by, created_seq) VALUES(?, ?, ?, ?, 0, ?, ?, ?, ?)",
        (e.data["experiment_id"], e.project, e.data["name"], e.data["description"], e.time, e.time,
         e.actor, e.sequence))


@handles("experiment.updated")
def _experiment_updated(conn: sqlite3.Connection, e: Event) -> None:
    for column in ("name", "description"):
        if column in e.data:
            conn.execute(f"UPDATE experiments SET {column}=?, updated_at=? WHERE id=?",
                         (e.data[column], e.time, e.data["experiment_id"]))


@handles("experiment.archived", "experiment.restored")
def _experiment_archived(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE experiments SET archived=?, updated_at=? WHERE id=?",
                 (int(e.type == "experiment.archived"), e.time, e.data["experiment_id"]))


@handles("experiment.tag_set")
def _experiment_tag_set(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute(
        "INSERT INTO experiment_tags(experiment_id, key, value) VALUES(?, ?, ?) "
        "ON CONFLICT(experiment_id, key) DO UPDATE SET value=excluded.value",
        (e.data["experiment_id"], e.data["key"], e.data["value"]))


# --- runs --------------------------------------------------------------------------------------

@handles("run.created")
def _run_created(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    started = e.time if d["status"] == "running" else None
    conn.execute(
        "INSERT INTO runs(id, project, experiment_id, name, status, description, archived, "
        "created_at, updated_at, started_at, created_by) VALUES(?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
        (e.aggregate_id, e.project, d["experiment_id"], d["name"], d["status"], d["description"],
         e.time, e.time, started, e.actor))
    conn.executemany("INSERT INTO run_params(run_id, key, value) VALUES(?, ?, ?)",
                     [(e.aggregate_id, k, v) for k, v in d["params"].items()])
    conn.executemany("INSERT INTO run_tags(run_id, key, value) VALUES(?, ?, ?)",
                     [(e.aggregate_id, k, v) for k, v in d["tags"].items()])
    record = embedded_record(e)
    if record is not None:
        RECORD_HANDLERS[record.type](conn, record)


@handles("run.started")
def _run_started(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE runs SET status='running', started_at=?, updated_at=? WHERE id=?",
                 (e.time, e.time, e.aggregate_id))


@handles("run.finished")
def _run_finished(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE runs SET status=?, status_message=?, ended_at=?, updated_at=? WHERE id=?",
                 (e.data["status"], e.data["message"], e.time, e.time, e.aggregate_id))


@handles("run.params_logged")
def _run_params_logged(conn: sqlite3.Connection, e: Event) -> None:
    conn.executemany("INSERT OR IGNORE INTO run_params(run_id, key, value) VALUES(?, ?, ?)",
                     [(e.aggregate_id, k, v) for k, v in e.data["params"].items()])
    conn.execute("UPDATE runs SET updated_at=? WHERE id=?", (e.time, e.aggregate_id))


@handles("run.tag_set")
def _run_tag_set(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute(
        "INSERT INTO run_tags(run_id, key, value) VALUES(?, ?, ?) "
        "ON CONFLICT(run_id, key) DO UPDATE SET value=excluded.value",
        (e.aggregate_id, e.data["key"], e.data["value"]))
    conn.execute("UPDATE runs SET updated_at=? WHERE id=?", (e.time, e.aggregate_id))


@handles("experiment.tag_deleted")
def _experiment_tag_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM experiment_tags WHERE experiment_id=? AND key=?",
                 (e.data["experiment_id"], e.data["key"]))


@handles("run.tag_deleted")
def _run_tag_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM run_tags WHERE run_id=? AND key=?", (e.aggregate_id, e.data["key"]))
    conn.execute("UPDATE runs SET updated_at=? WHERE id=?", (e.time, e.aggregate_id))


@handles("run.updated")
def _run_updated(conn: sqlite3.Connection, e: Event) -> None:
    for column in ("name", "description"):
        if column in e.data:
            conn.execute(f"UPDATE runs SET {column}=?, updated_at=? WHERE id=?",
                         (e.data[column], e.time, e.aggregate_id))


@handles("run.archived", "run.restored")
def _run_archived(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE runs SET archived=?, updated_at=? WHERE id=?",
                 (int(e.type == "run.archived"), e.time, e.aggregate_id))


# --- models ------------------------------------------------------------------------------------

@handles("model.created")
def _model_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute(
        "INSERT INTO models(id, project, name, description, archived, created_at, updated_at, "
        "created_by, created_seq) VALUES(?, ?, ?, ?, 0, ?, ?, ?, ?)",
        (e.data["model_id"], e.project, e.data["name"], e.data["description"], e.time, e.time, e.actor,
         e.sequence))


@handles("model.updated")
def _model_updated(conn: sqlite3.Connection, e: Event) -> None:
    for column in ("name", "description"):
        if column in e.data:
            conn.execute(f"UPDATE models SET {column}=?, updated_at=? WHERE id=?",
                         (e.data[column], e.time, e.data["model_id"]))


@handles("model.archived", "model.restored")
def _model_archived(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE models SET archived=?, updated_at=? WHERE id=?",
                 (int(e.type == "model.archived"), e.time, e.data["model_id"]))


@handles("model.tag_set")
def _model_tag_set(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute(
        "INSERT INTO model_tags(model_id, key, value) VALUES(?, ?, ?) "
        "ON CONFLICT(model_id, key) DO UPDATE SET value=excluded.value",
        (e.data["model_id"], e.data["key"], e.data["value"]))


@handles("model_version.created")
def _version_created(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT INTO model_versions(model_id, version, run_id, artifact_digest, description, "
        "archived, created_at, updated_at, created_by, created_seq) VALUES(?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
        (e.aggregate_id, d["version"], d["run_id"], d["artifact_digest"], d["description"], e.time,
         e.time, e.actor, e.sequence))
    conn.execute("UPDATE models SET updated_at=? WHERE id=?", (e.time, e.aggregate_id))


@handles("model_version.created_without_files")
def _version_created_without_files(conn: sqlite3.Connection, e: Event) -> None:
    """An empty artifact_digest in the view stands for none (the column predates such versions);
    the source and reason are in model_version_sources, and the store answers ``null``."""
    d = e.data
    conn.execute(
        "INSERT INTO model_versions(model_id, version, run_id, artifact_digest, description, "
        "archived, created_at, updated_at, created_by, created_seq) VALUES(?, ?, ?, '', ?, 0, ?, ?, ?, ?)",
        (e.aggregate_id, d["version"], d["run_id"], d["description"], e.time, e.time, e.actor, e.sequence))
    conn.execute("INSERT OR REPLACE INTO model_version_sources(model_id, version, source, reason) VALUES(?, ?, ?, ?)",
                 (e.aggregate_id, d["version"], d["source"], d["reason"]))
    conn.execute("UPDATE models SET updated_at=? WHERE id=?", (e.time, e.aggregate_id))


@handles("model.tag_deleted")
def _model_tag_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM model_tags WHERE model_id=? AND key=?", (e.data["model_id"], e.data["key"]))


@handles("model_version.tag_deleted")
def _version_tag_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM model_version_tags WHERE model_id=? AND version=? AND key=?",
                 (e.aggregate_id, e.data["version"], e.data["key"]))


@handles("model_version.updated")
def _version_updated(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE model_versions SET description=?, updated_at=? WHERE model_id=? AND version=?",
                 (e.data["description"], e.time, e.aggregate_id, e.data["version"]))


@handles("model_version.archived", "model_version.restored")
def _version_archived(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE model_versions SET archived=?, updated_at=? WHERE model_id=? AND version=?",
                 (int(e.type == "model_version.archived"), e.time, e.aggregate_id, e.data["version"]))
    _model_touched(conn, e)


def _model_touched(conn: sqlite3.Connection, e: Event) -> None:
    """A version's lifecycle (created, archived, restored, given or losing an alias) changes its
    model's ``updated_at``, as MLflow's last_updated_timestamp does; a description edit does not."""
    conn.execute("UPDATE models SET updated_at=? WHERE id=?", (e.time, e.aggregate_id))


@handles("model_version.tag_set")
def _version_tag_set(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute(
        "INSERT INTO model_version_tags(model_id, version, key, value) VALUES(?, ?, ?, ?) "
        "ON CONFLICT(model_id, version, key) DO UPDATE SET value=excluded.value",
        (e.aggregate_id, e.data["version"], e.data["key"], e.data["value"]))


@handles("model_version.alias_set", "model_version.alias_removed")
def _alias_changed(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    if e.type == "model_version.alias_set":
        conn.execute(
            "INSERT INTO model_aliases(model_id, alias, version, updated_at) VALUES(?, ?, ?, ?) "
            "ON CONFLICT(model_id, alias) DO UPDATE SET version=excluded.version, "
            "updated_at=excluded.updated_at", (e.aggregate_id, d["alias"], d["version"], e.time))
    else:
        conn.execute("DELETE FROM model_aliases WHERE model_id=? AND alias=?", (e.aggregate_id, d["alias"]))
    conn.execute("UPDATE model_versions SET updated_at=? WHERE model_id=? AND version=?",
                 (e.time, e.aggregate_id, d["version"]))
    _model_touched(conn, e)
    conn.execute(
        "INSERT INTO alias_history(seq, model_id, alias, action, version, previous_version, time, actor) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
        (e.sequence, e.aggregate_id, d["alias"], "set" if e.type.endswith("alias_set") else "removed",
         d["version"], d.get("previous_version"), e.time, e.actor))


HANDLERS.update(RECORD_HANDLERS)  # reproducibility records and dataset uses (run_record_view.py)
HANDLERS.update(METRIC_HANDLERS)  # runs' metric summaries (run_metrics.py)
HANDLERS.update(LOGGED_MODEL_HANDLERS)  # MLflow 3's logged models (logged_model_view.py)
HANDLERS.update(EVAL_DATASET_HANDLERS)  # MLflow 3's evaluation datasets (eval_dataset_view.py)
HANDLERS.update(SCORER_HANDLERS)  # MLflow 3's scorers (scorers.py)
