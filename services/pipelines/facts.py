"""What the pipelines engine reads of other services' events, projected into its own read model so
that deciding a step never waits on another service: the scheduler's jobs (by the pipeline's job
key), the registry's runs (tags), artifacts and metrics per run, models with their versions and
aliases, dataset versions, and the monitor's fired alerts.

Every table is keyed so that an event applied twice changes nothing, and a replay from the start
rebuilds the same rows. Metric summaries keep the one with the larger count (an older summary
applied after a newer one is ignored), as the registry's run metrics do.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.errors import NotFound
from cairn.kernel.store import EventHandlers

FACTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS fact_jobs (
    job_id TEXT PRIMARY KEY, project TEXT NOT NULL, job_key TEXT NOT NULL, run_id TEXT NOT NULL,
    status TEXT NOT NULL, attempt INTEGER NOT NULL, reason TEXT, message TEXT);
CREATE INDEX IF NOT EXISTS fact_jobs_by_key ON fact_jobs(job_key);
CREATE TABLE IF NOT EXISTS fact_run_tags (
    run_id TEXT NOT NULL, project TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (run_id, key));
CREATE INDEX IF NOT EXISTS fact_run_tags_by_value ON fact_run_tags(project, key, value);
CREATE TABLE IF NOT EXISTS fact_run_artifacts (
    run_id TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS fact_run_metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, count INTEGER NOT NULL, last TEXT NOT NULL,
    PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS fact_models (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS fact_models_by_name ON fact_models(project, name);
CREATE TABLE IF NOT EXISTS fact_model_versions (
    model_id TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT NOT NULL, artifact_digest TEXT NOT NULL,
    PRIMARY KEY (model_id, version));
CREATE TABLE IF NOT EXISTS fact_model_aliases (
    model_id TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (model_id, alias));
CREATE TABLE IF NOT EXISTS fact_dataset_versions (
    project TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, manifest_digest TEXT NOT NULL,
    PRIMARY KEY (project, name, version));
CREATE TABLE IF NOT EXISTS fact_alerts (
    seq INTEGER PRIMARY KEY, project TEXT NOT NULL, deployment TEXT NOT NULL, time TEXT NOT NULL,
    time_ms INTEGER NOT NULL, rule_id TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS fact_alerts_by_deployment ON fact_alerts(project, deployment, time_ms);
"""

# job (scheduler), run (registry: tags), artifact_set (artifact store: run.artifact_logged),
# metrics (metric.summarized), model (model.*, model_version.*), project (model.* in logs written
# before models had subjects of their own), dataset, alert (monitor).
FACTS_AGGREGATES = ("job", "run", "artifact_set", "metrics", "model", "project", "dataset", "alert")
FACTS_HANDLERS = EventHandlers()
_handles = FACTS_HANDLERS.handles
JOB_KEY_ENV = "CAIRN_PIPELINE_JOB"


def time_ms(text: str) -> int:
    """An envelope time (ISO 8601, ``Z``) as milliseconds since the epoch."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


# --- jobs ----------------------------------------------------------------------------------------

@_handles("job.submitted")
def _job_submitted(conn: sqlite3.Connection, e: Event) -> None:
    key = (e.data["spec"].get("env") or {}).get(JOB_KEY_ENV)
    if not key:
        return  # not a pipeline's job
    conn.execute("INSERT OR IGNORE INTO fact_jobs(job_id, project, job_key, run_id, status, attempt) "
                 "VALUES(?, ?, ?, ?, 'queued', 1)", (e.aggregate_id, e.project, key, e.data["run_id"]))


_JOB_STATUS = {"job.started": "running", "job.succeeded": "succeeded", "job.failed": "failed",
               "job.cancelled": "cancelled", "job.lost": "lost", "job.retried": "queued"}


@_handles(*_JOB_STATUS)
def _job_moved(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    reason = d.get("reason") or {"job.cancelled": "cancelled", "job.lost": "lost"}.get(e.type)
    conn.execute("UPDATE fact_jobs SET status=?, attempt=?, reason=?, message=? WHERE job_id=?",
                 (_JOB_STATUS[e.type], d["attempt"], reason, d.get("message"), e.aggregate_id))


# --- runs: tags, artifacts, metrics ----------------------------------------------------------------

def _tag(conn: sqlite3.Connection, run_id: str, project: str, key: str, value: str) -> None:
    conn.execute("INSERT INTO fact_run_tags(run_id, project, key, value) VALUES(?, ?, ?, ?) "
                 "ON CONFLICT(run_id, key) DO UPDATE SET value=excluded.value", (run_id, project, key, value))


@_handles("run.created")
def _run_created(conn: sqlite3.Connection, e: Event) -> None:
    for key, value in (e.data.get("tags") or {}).items():  # v1 and v2 both carry data.tags
        _tag(conn, e.aggregate_id, e.project, key, value)


@_handles("run.tag_set")
def _run_tag_set(conn: sqlite3.Connection, e: Event) -> None:
    _tag(conn, e.aggregate_id, e.project, e.data["key"], e.data["value"])


@_handles("run.tag_deleted")
def _run_tag_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM fact_run_tags WHERE run_id=? AND key=?", (e.aggregate_id, e.data["key"]))


@_handles("run.artifact_logged")
def _artifact_logged(conn: sqlite3.Connection, e: Event) -> None:
    """v1 and v2 carry the same fields; a name logged again points at its newest digest."""
    conn.execute("INSERT INTO fact_run_artifacts(run_id, name, digest, seq) VALUES(?, ?, ?, ?) "
                 "ON CONFLICT(run_id, name) DO UPDATE SET digest=excluded.digest, seq=excluded.seq "
                 "WHERE excluded.seq > fact_run_artifacts.seq",
                 (e.aggregate_id, e.data["name"], e.data["digest"], e.sequence))


@_handles("metric.summarized")
def _metric_summarized(conn: sqlite3.Connection, e: Event) -> None:
    conn.executemany(
        "INSERT INTO fact_run_metrics(run_id, key, count, last) VALUES(?, ?, ?, ?) "
        "ON CONFLICT(run_id, key) DO UPDATE SET count=excluded.count, last=excluded.last "
        "WHERE excluded.count > fact_run_metrics.count",
        [(s["run_id"], s["key"], s["count"], json.dumps(s["last"])) for s in e.data["summaries"]])


# --- models and datasets -------------------------------------------------------------------------

@_handles("model.created")
def _model_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR REPLACE INTO fact_models(id, project, name) VALUES(?, ?, ?)",
                 (e.data["model_id"], e.project, e.data["name"]))


@_handles("model.updated")
def _model_updated(conn: sqlite3.Connection, e: Event) -> None:
    if "name" in e.data:
        conn.execute("UPDATE fact_models SET name=? WHERE id=?", (e.data["name"], e.data["model_id"]))


@_handles("model_version.created")
def _model_version_created(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute("INSERT OR REPLACE INTO fact_model_versions(model_id, version, run_id, artifact_digest) "
                 "VALUES(?, ?, ?, ?)", (e.aggregate_id, d["version"], d["run_id"], d["artifact_digest"]))


@_handles("model_version.alias_set")
def _alias_set(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT INTO fact_model_aliases(model_id, alias, version) VALUES(?, ?, ?) "
                 "ON CONFLICT(model_id, alias) DO UPDATE SET version=excluded.version",
                 (e.aggregate_id, e.data["alias"], e.data["version"]))


@_handles("model_version.alias_removed")
def _alias_removed(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM fact_model_aliases WHERE model_id=? AND alias=?", (e.aggregate_id, e.data["alias"]))


@_handles("dataset.version_created")
def _dataset_version(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR REPLACE INTO fact_dataset_versions(project, name, version, manifest_digest) "
                 "VALUES(?, ?, ?, ?)", (e.project, e.aggregate_id, e.data["version"], e.data["manifest_digest"]))


@_handles("alert.fired")
def _alert_fired(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute("INSERT OR IGNORE INTO fact_alerts(seq, project, deployment, time, time_ms, rule_id, name, data) "
                 "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                 (e.sequence, e.project, d["deployment"], e.time, time_ms(e.time), d["rule_id"], d["name"],
                  json.dumps(d, separators=(",", ":"))))


class FactsReader:
    """Reads of the facts tables; mixed into the service's store (a ``SqliteStore``), whose
    ``query``/``query_one`` it uses."""

    # provided by SqliteStore (annotations only, so the store's methods are the ones found)
    query: Callable[..., list[sqlite3.Row]]
    query_one: Callable[..., sqlite3.Row | None]

    def dataset_digest(self, project: str, name: str, version: int | None) -> tuple[int, str]:
        """(version, manifest digest) of a dataset version, the newest when ``version`` is None."""
        if version is None:
            row = self.query_one("SELECT version, manifest_digest FROM fact_dataset_versions WHERE project=? AND "
                                 "name=? ORDER BY version DESC LIMIT 1", (project, name))
            if row is None:
                raise NotFound(f"dataset {name!r} has no version in project {project!r}; create one first",
                               details={"field": "inputs", "ref": f"dataset:{name}"})
        else:
            row = self.query_one("SELECT version, manifest_digest FROM fact_dataset_versions WHERE project=? AND "
                                 "name=? AND version=?", (project, name, version))
            if row is None:
                raise NotFound(f"dataset {name}@v{version} does not exist in project {project!r}",
                               details={"field": "inputs", "ref": f"dataset:{name}@v{version}"})
        return int(row[0]), str(row[1])

    def _model_id(self, project: str, name: str) -> str:
        row = self.query_one("SELECT id FROM fact_models WHERE project=? AND name=?", (project, name))
        if row is None:
            raise NotFound(f"model {name!r} does not exist in project {project!r}; register it first",
                           details={"field": "inputs", "ref": f"model:{name}"})
        return str(row[0])

    def model_digest(self, project: str, name: str, version: int | None = None,
                     alias: str | None = None) -> tuple[int, str]:
        """(version, artifact digest) of a model version: the given one, the one behind ``alias``,
        or the newest."""
        model_id = self._model_id(project, name)
        if alias is not None:
            version = self.alias_version(project, name, alias)
            if version is None:
                raise NotFound(f"model {name!r} has no alias {alias!r} in project {project!r}",
                               details={"field": "inputs", "ref": f"model:{name}@{alias}"})
        if version is None:
            row = self.query_one("SELECT version, artifact_digest FROM fact_model_versions WHERE model_id=? "
                                 "ORDER BY version DESC LIMIT 1", (model_id,))
        else:
            row = self.query_one("SELECT version, artifact_digest FROM fact_model_versions WHERE model_id=? "
                                 "AND version=?", (model_id, version))
        if row is None:
            which = f"version {version}" if version is not None else "any version"
            raise NotFound(f"model {name!r} has no {which} in project {project!r}",
                           details={"field": "inputs", "ref": f"model:{name}"})
        return int(row[0]), str(row[1])

    def alias_version(self, project: str, model: str, alias: str) -> int | None:
        row = self.query_one("SELECT a.version FROM fact_model_aliases a JOIN fact_models m ON m.id=a.model_id "
                             "WHERE m.project=? AND m.name=? AND a.alias=?", (project, model, alias))
        return int(row[0]) if row else None

    def model_version_run(self, project: str, model: str, version: int) -> str | None:
        row = self.query_one("SELECT v.run_id FROM fact_model_versions v JOIN fact_models m ON m.id=v.model_id "
                             "WHERE m.project=? AND m.name=? AND v.version=?", (project, model, version))
        return str(row[0]) if row else None

    def job_for_key(self, key: str) -> dict[str, Any] | None:
        """The scheduler's job submitted under a pipeline job key, as it stands now."""
        row = self.query_one("SELECT job_id, run_id, status, attempt, reason, message FROM fact_jobs "
                             "WHERE job_key=? ORDER BY rowid LIMIT 1", (key,))
        return dict(row) if row else None

    def run_artifacts(self, run_id: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.query("SELECT name, digest FROM fact_run_artifacts WHERE run_id=? "
                                               "ORDER BY name", (run_id,))}

    def run_metrics(self, run_id: str) -> dict[str, Any]:
        return {r[0]: json.loads(r[1]) for r in self.query("SELECT key, last FROM fact_run_metrics WHERE run_id=? "
                                                           "ORDER BY key", (run_id,))}

    def run_tags(self, run_id: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.query("SELECT key, value FROM fact_run_tags WHERE run_id=? ORDER BY key",
                                               (run_id,))}

    def seed_runs(self, project: str, pipeline_run: str, step: str) -> list[str]:
        """Runs tagged with this pipeline run and step: the job's own run and any run its process
        started (seeds of one training), in the order they were tagged."""
        rows = self.query(
            "SELECT r.run_id FROM fact_run_tags r JOIN fact_run_tags s ON s.run_id=r.run_id "
            "WHERE r.project=? AND r.key='cairn.pipeline_run' AND r.value=? "
            "AND s.key='cairn.pipeline_step' AND s.value=? ORDER BY r.rowid", (project, pipeline_run, step))
        return [str(r[0]) for r in rows]

    def alerts_fired(self, project: str, deployment: str, since_ms: int) -> list[dict[str, Any]]:
        """``alert.fired`` events for a deployment at or after ``since_ms`` (envelope time)."""
        rows = self.query("SELECT seq, time, rule_id, name, data FROM fact_alerts WHERE project=? AND deployment=? "
                          "AND time_ms>=? ORDER BY seq", (project, deployment, since_ms))
        return [{"seq": r[0], "time": r[1], "rule_id": r[2], "name": r[3], "data": json.loads(r[4])} for r in rows]
