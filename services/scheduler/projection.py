"""Scheduler read model: events -> SQLite rows. One handler per event type; the aggregate
snapshots the command side decides on are folded in the same transaction."""

from __future__ import annotations

import json
import sqlite3

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, SnapshotProjection
from cairn.services.scheduler.domain import EVOLVERS
from cairn.services.scheduler.replica_sets import EVOLVERS as REPLICA_EVOLVERS
from cairn.services.scheduler.sweeps.projection import SWEEP_EVOLVERS, SWEEP_HANDLERS

HANDLERS = EventHandlers()
handles = HANDLERS.handles


# The aggregates whose events this read model is made of (the only ones the log delivers to it).
AGGREGATES = ("job", "agent", "sweep", "replica_set")


def projection() -> SnapshotProjection:
    """Job, agent and replica set events, and the sweeps' (they live in the same read model)."""
    return SnapshotProjection({**EVOLVERS, **REPLICA_EVOLVERS, **SWEEP_EVOLVERS},
                              EventHandlers({**HANDLERS, **SWEEP_HANDLERS}))


def _history(conn: sqlite3.Connection, e: Event) -> None:
    data = {k: v for k, v in e.data.items() if k != "spec"}
    conn.execute("INSERT OR IGNORE INTO job_history(job_id, seq, type, time, actor, data) VALUES(?, ?, ?, ?, ?, ?)",
                 (e.aggregate_id, e.sequence, e.type, e.time, e.actor, json.dumps(data)))


def _update(conn: sqlite3.Connection, e: Event, **columns: object) -> None:
    sets = ", ".join(f"{k}=?" for k in columns)
    conn.execute(f"UPDATE jobs SET {sets}, updated_seq=? WHERE id=?", (*columns.values(), e.sequence, e.aggregate_id))
    _history(conn, e)


@handles("job.submitted")
def _submitted(conn: sqlite3.Connection, e: Event) -> None:
    spec = e.data["spec"]
    res = spec["resources"]
    conn.execute(
        "INSERT OR IGNORE INTO jobs(id, project, run_id, name, queue, priority, status, attempt, spec, nodes, cpus, "
        "memory_mib, gpus, gpu_type, submitted_seq, submitted_at, submitted_by, updated_seq) "
        "VALUES(?, ?, ?, ?, ?, ?, 'queued', 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (e.aggregate_id, e.project, e.data["run_id"], spec.get("name"), spec["queue"], spec["priority"],
         json.dumps(spec), spec["nodes"], res["cpus"], res["memory_mib"], res["gpus"], res["gpu_type"],
         e.sequence, e.time, e.actor, e.sequence))
    if spec.get("replica_set"):
        conn.execute("INSERT OR IGNORE INTO replica_jobs(job_id, project, set_name) VALUES(?, ?, ?)",
                     (e.aggregate_id, e.project, spec["replica_set"]))
    _history(conn, e)


@handles("job.assigned")
def _assigned(conn: sqlite3.Connection, e: Event) -> None:
    _update(conn, e, status="assigned", assigned_at=e.time, ranks=json.dumps(e.data["ranks"]),
            master_addr=e.data["master_addr"], master_port=e.data["master_port"])


@handles("job.started")
def _started(conn: sqlite3.Connection, e: Event) -> None:
    _update(conn, e, status="running", started_at=e.time)


@handles("job.rank_exited", "job.cancel_requested")
def _noted(conn: sqlite3.Connection, e: Event) -> None:
    if e.type == "job.cancel_requested":
        _update(conn, e, cancel_requested=1)
    else:
        _history(conn, e)


@handles("job.succeeded", "job.failed", "job.cancelled")
def _ended(conn: sqlite3.Connection, e: Event) -> None:
    status = e.type.split(".", 1)[1]
    _update(conn, e, status=status, ended_at=e.time, exit_code=e.data.get("exit_code"),
            reason=e.data.get("reason"), message=e.data.get("message"))


@handles("job.lost")
def _lost(conn: sqlite3.Connection, e: Event) -> None:
    _update(conn, e, status="lost", message=f"agent {e.data['agent_id']} was lost")


@handles("job.retried")
def _retried(conn: sqlite3.Connection, e: Event) -> None:
    counter = "losses" if e.data["reason"] == "lost" else "failures"
    conn.execute(f"UPDATE jobs SET {counter}={counter}+1 WHERE id=?", (e.aggregate_id,))
    _update(conn, e, status="queued", attempt=e.data["attempt"], ranks="[]", exit_code=e.data["exit_code"],
            reason=e.data["reason"], message=e.data["message"], assigned_at=None)


@handles("agent.registered")
def _agent_registered(conn: sqlite3.Connection, e: Event) -> None:
    cap = e.data["capacity"]
    conn.execute(
        "INSERT INTO agents(id, name, queue, host, cpus, memory_mib, gpus, gpu_types, status, registered_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, 'active', ?) ON CONFLICT(id) DO UPDATE SET name=excluded.name, "
        "queue=excluded.queue, host=excluded.host, cpus=excluded.cpus, memory_mib=excluded.memory_mib, "
        "gpus=excluded.gpus, gpu_types=excluded.gpu_types, status='active', registered_at=excluded.registered_at, "
        "lost_at=NULL, message=NULL",
        (e.data["agent_id"], e.data["name"], e.data["queue"], e.data["host"], cap["cpus"], cap["memory_mib"],
         cap["gpus"], json.dumps(cap["gpu_types"]), e.time))


@handles("agent.lost")
def _agent_lost(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE agents SET status='lost', lost_at=?, message=? WHERE id=?",
                 (e.time, e.data["message"], e.data["agent_id"]))


@handles("replica_set.updated")
def _replica_set_updated(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute(
        "INSERT INTO replica_sets(project, name, command, env, replicas, resources, spread, queue, deleted, "
        "updated_at, updated_by, updated_seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) "
        "ON CONFLICT(project, name) DO UPDATE SET command=excluded.command, env=excluded.env, "
        "replicas=excluded.replicas, resources=excluded.resources, spread=excluded.spread, queue=excluded.queue, "
        "deleted=0, updated_at=excluded.updated_at, updated_by=excluded.updated_by, updated_seq=excluded.updated_seq",
        (e.project, e.aggregate_id, json.dumps(d["command"]), json.dumps(d["env"]), d["replicas"],
         json.dumps(d["resources"]), int(d["spread"]), d["queue"], e.time, e.actor, e.sequence))


@handles("replica_set.deleted")
def _replica_set_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE replica_sets SET deleted=1, updated_at=?, updated_by=?, updated_seq=? "
                 "WHERE project=? AND name=?", (e.time, e.actor, e.sequence, e.project, e.aggregate_id))
