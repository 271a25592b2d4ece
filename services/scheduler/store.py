"""Scheduler read model: jobs, their history and agents in SQLite, and the queries the API and
the dispatcher read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cairn.kernel.errors import NotFound
from cairn.kernel.store import SqliteStore
from cairn.services.scheduler.sweeps.projection import SWEEP_SCHEMA

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, run_id TEXT NOT NULL, name TEXT, queue TEXT NOT NULL,
    priority INTEGER NOT NULL, status TEXT NOT NULL, attempt INTEGER NOT NULL, spec TEXT NOT NULL,
    nodes INTEGER NOT NULL, cpus REAL NOT NULL, memory_mib INTEGER NOT NULL, gpus INTEGER NOT NULL,
    gpu_type TEXT, submitted_seq INTEGER NOT NULL, submitted_at TEXT NOT NULL, submitted_by TEXT NOT NULL,
    assigned_at TEXT, started_at TEXT, ended_at TEXT, exit_code INTEGER, reason TEXT, message TEXT,
    ranks TEXT NOT NULL DEFAULT '[]', master_addr TEXT, master_port INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    losses INTEGER NOT NULL DEFAULT 0, updated_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, queue, priority, submitted_seq);
CREATE INDEX IF NOT EXISTS jobs_by_project ON jobs(project, submitted_seq);
CREATE TABLE IF NOT EXISTS job_history (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, time TEXT NOT NULL,
    actor TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, seq));
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, queue TEXT NOT NULL, host TEXT NOT NULL,
    cpus REAL NOT NULL, memory_mib INTEGER NOT NULL, gpus INTEGER NOT NULL, gpu_types TEXT NOT NULL,
    status TEXT NOT NULL, registered_at TEXT NOT NULL, lost_at TEXT, message TEXT);
CREATE TABLE IF NOT EXISTS replica_sets (
    project TEXT NOT NULL, name TEXT NOT NULL, command TEXT NOT NULL, env TEXT NOT NULL,
    replicas INTEGER NOT NULL, resources TEXT NOT NULL, spread INTEGER NOT NULL, queue TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL,
    updated_seq INTEGER NOT NULL, PRIMARY KEY (project, name));
CREATE TABLE IF NOT EXISTS replica_jobs (
    job_id TEXT PRIMARY KEY, project TEXT NOT NULL, set_name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS replica_jobs_by_set ON replica_jobs(project, set_name);
"""

# A job's replica set as one key ("project/name"), with what placing it needs (spread, replicas).
REPLICA_JOIN = ("LEFT JOIN replica_jobs rj ON rj.job_id=jobs.id "
                "LEFT JOIN replica_sets rs ON rs.project=rj.project AND rs.name=rj.set_name")
REPLICA_COLUMNS = ("CASE WHEN rj.job_id IS NULL THEN NULL ELSE rj.project || '/' || rj.set_name END AS replica_set, "
                   "COALESCE(rs.spread, 0) AS spread, COALESCE(rs.replicas, 0) AS replicas")

ACTIVE = ("assigned", "running")
JOB_COLUMNS = ("id, project, run_id, name, queue, priority, status, attempt, nodes, cpus, memory_mib, gpus, "
               "gpu_type, submitted_at, submitted_by, assigned_at, started_at, ended_at, exit_code, reason, "
               "message, ranks, master_addr, master_port, cancel_requested, failures, losses")


def _job(row: Any, *, with_spec: bool = False) -> dict[str, Any]:
    job = {k: row[k] for k in row.keys() if k not in ("spec", "ranks", "updated_seq", "submitted_seq")}
    job["ranks"] = json.loads(row["ranks"])
    job["cancel_requested"] = bool(row["cancel_requested"])
    if with_spec:
        job["spec"] = json.loads(row["spec"])
    return job


class SchedulerStore(SqliteStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA + SWEEP_SCHEMA)

    def job(self, project: str, job_id: str) -> dict[str, Any]:
        row = self.query_one(f"SELECT {JOB_COLUMNS}, spec FROM jobs WHERE id=? AND project=?", (job_id, project))
        if row is None:
            raise NotFound(f"job {job_id!r} does not exist in project {project!r}")
        job = _job(row, with_spec=True)
        job["history"] = [
            {"seq": r["seq"], "type": r["type"], "time": r["time"], "actor": r["actor"], "data": json.loads(r["data"])}
            for r in self.query("SELECT * FROM job_history WHERE job_id=? ORDER BY seq", (job_id,))]
        return job

    def job_by_id(self, job_id: str) -> dict[str, Any] | None:
        row = self.query_one(f"SELECT {JOB_COLUMNS}, spec FROM jobs WHERE id=?", (job_id,))
        return _job(row, with_spec=True) if row else None

    def jobs(self, project: str, *, status: str | None = None, queue: str | None = None,
             limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE project=?"
        args: list[Any] = [project]
        if status:
            sql += " AND status=?"
            args.append(status)
        if queue:
            sql += " AND queue=?"
            args.append(queue)
        sql += " ORDER BY submitted_seq DESC LIMIT ?"
        args.append(limit)
        return [_job(r) for r in self.query(sql, args)]

    # --- what the dispatcher reads -------------------------------------------------------------

    def queued_jobs(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT id, jobs.project, jobs.queue, priority, attempt, nodes, cpus, memory_mib, gpus, "
                          f"gpu_type, submitted_seq, {REPLICA_COLUMNS} FROM jobs {REPLICA_JOIN} "
                          "WHERE status='queued' ORDER BY priority DESC, submitted_seq")
        return [dict(r) for r in rows]

    def active_jobs(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT id, jobs.project, status, attempt, cpus, memory_mib, gpus, ranks, run_id, spec, "
                          f"master_addr, master_port, cancel_requested, {REPLICA_COLUMNS} FROM jobs {REPLICA_JOIN} "
                          "WHERE status IN ('assigned', 'running')")
        out = []
        for r in rows:
            job = dict(r)
            job["ranks"] = json.loads(r["ranks"])
            out.append(job)
        return out

    def lost_jobs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT id, project FROM jobs WHERE status='lost'")]

    def agents(self, *, include_lost: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM agents" + ("" if include_lost else " WHERE status='active'") + " ORDER BY name, id"
        out = []
        for r in self.query(sql):
            agent = dict(r)
            agent["gpu_types"] = json.loads(r["gpu_types"])
            out.append(agent)
        return out

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT * FROM agents WHERE id=?", (agent_id,))
        if row is None:
            return None
        agent = dict(row)
        agent["gpu_types"] = json.loads(row["gpu_types"])
        return agent

    # --- replica sets ----------------------------------------------------------------------------

    def replica_set(self, project: str, name: str) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM replica_sets WHERE project=? AND name=? AND deleted=0", (project, name))
        if row is None:
            raise NotFound(f"replica set {name!r} does not exist in project {project!r}")
        return _replica_set(row)

    def replica_sets_to_reconcile(self) -> list[dict[str, Any]]:
        """Every live set, and deleted ones that still have replicas to stop."""
        rows = self.query("SELECT * FROM replica_sets rs WHERE deleted=0 OR EXISTS (SELECT 1 FROM replica_jobs rj "
                          "JOIN jobs ON jobs.id=rj.job_id WHERE rj.project=rs.project AND rj.set_name=rs.name "
                          "AND jobs.status NOT IN ('succeeded', 'failed', 'cancelled') AND jobs.cancel_requested=0)")
        return [_replica_set(r) for r in rows]

    def replica_members(self, project: str, name: str, *, include_ended: bool = False) -> list[dict[str, Any]]:
        """The set's jobs that have not ended (oldest first), with where they run."""
        sql = ("SELECT jobs.id, status, attempt, ranks, submitted_seq, started_at, ended_at, cancel_requested, "
               "reason, exit_code FROM replica_jobs rj JOIN jobs ON jobs.id=rj.job_id "
               "WHERE rj.project=? AND rj.set_name=?")
        if not include_ended:
            sql += " AND jobs.status NOT IN ('succeeded', 'failed', 'cancelled')"
        out = []
        for r in self.query(sql + " ORDER BY submitted_seq", (project, name)):
            job = dict(r)
            job["ranks"] = json.loads(r["ranks"])
            job["cancel_requested"] = bool(r["cancel_requested"])
            out.append(job)
        return out

    def replica_of(self, job_id: str) -> tuple[str, str] | None:
        row = self.query_one("SELECT project, set_name FROM replica_jobs WHERE job_id=?", (job_id,))
        return (row["project"], row["set_name"]) if row else None


def _replica_set(row: Any) -> dict[str, Any]:
    return {"project": row["project"], "name": row["name"], "command": json.loads(row["command"]),
            "env": json.loads(row["env"]), "replicas": row["replicas"], "resources": json.loads(row["resources"]),
            "spread": bool(row["spread"]), "queue": row["queue"], "deleted": bool(row["deleted"]),
            "updated_at": row["updated_at"], "updated_by": row["updated_by"], "seq": row["updated_seq"]}
