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
"""

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
        rows = self.query("SELECT id, project, queue, priority, attempt, nodes, cpus, memory_mib, gpus, gpu_type, "
                          "submitted_seq FROM jobs WHERE status='queued' ORDER BY priority DESC, submitted_seq")
        return [dict(r) for r in rows]

    def active_jobs(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT id, project, status, attempt, cpus, memory_mib, gpus, ranks, run_id, spec, "
                          "master_addr, master_port, cancel_requested FROM jobs WHERE status IN ('assigned', 'running')")
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
