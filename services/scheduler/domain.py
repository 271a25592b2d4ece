"""Jobs and agents as pure functions: commands check the state and return one event; ``evolve``
folds an event into the aggregate's state. No I/O here.

Aggregates: ``job`` (in the job's project, id = job id) and ``agent`` (in the site project
``_site``, which no user project can be called, id = agent id).

A job moves queued -> assigned -> running -> succeeded | failed | cancelled. A failed, timed-out
or lost attempt is followed by ``job.retried`` (queued again as attempt n+1) while retries are
left. Every report names its attempt; a report for any attempt but the current one is refused
(fencing), so a late agent can never make a job count twice.
"""

from __future__ import annotations

from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import Conflict, NotFound

State = dict[str, Any] | None
SITE = "_site"
ACTIVE = ("assigned", "running")
FINAL = ("succeeded", "failed", "cancelled")
MAX_LOST_RETRIES = 3  # lost attempts are the platform's fault: retried apart from max_retries


class StaleReport(Conflict):
    """An agent reported on an attempt that is no longer the job's current one."""

    code = "stale_attempt"


def _job(state: State, job_id: str) -> dict[str, Any]:
    if state is None:
        raise NotFound(f"job {job_id!r} does not exist")
    return state


def submit_job(state: State, *, job_id: str, run_id: str, project: str, spec: dict[str, Any]) -> Decision:
    if state is not None:
        return None
    return "job.submitted", {"job_id": job_id, "run_id": run_id, "project": project, "spec": spec}


def assign_job(state: State, *, job_id: str, attempt: int, ranks: list[dict[str, Any]],
               master_addr: str, master_port: int) -> Decision:
    """Assign every rank of the current attempt at once; no-op if the job moved on meanwhile."""
    job = _job(state, job_id)
    if job["status"] != "queued" or job["attempt"] != attempt:
        return None
    return "job.assigned", {"attempt": attempt, "ranks": ranks, "master_addr": master_addr,
                            "master_port": master_port}


def _check_current(job: dict[str, Any], job_id: str, attempt: int, agent_id: str, rank: int) -> None:
    assigned = {(r["rank"], r["agent_id"]) for r in job.get("ranks", [])}
    if job["attempt"] != attempt or job["status"] not in ACTIVE or (rank, agent_id) not in assigned:
        raise StaleReport(f"job {job_id!r} attempt {attempt} rank {rank} on agent {agent_id!r} is not "
                          f"current (the job is {job['status']} at attempt {job['attempt']}); stop it",
                          details={"job_id": job_id, "attempt": job["attempt"], "status": job["status"]})


def start_job(state: State, *, job_id: str, attempt: int, agent_id: str, rank: int,
              started_at: float) -> Decision:
    job = _job(state, job_id)
    _check_current(job, job_id, attempt, agent_id, rank)
    if job["status"] == "running":
        return None
    return "job.started", {"attempt": attempt, "agent_id": agent_id, "rank": rank, "started_at": started_at}


def _attempt_failed(job: dict[str, Any], *, exit_code: int | None, reason: str, message: str) -> Decision:
    attempt = job["attempt"]
    if job.get("cancel_requested"):
        return "job.cancelled", {"attempt": attempt, "message": message or "cancelled"}
    if reason == "lost":
        retry = job.get("losses", 0) < MAX_LOST_RETRIES
    else:
        retry = job.get("failures", 0) < job["spec"]["max_retries"]
    if retry:
        return "job.retried", {"attempt": attempt + 1, "previous_attempt": attempt, "exit_code": exit_code,
                               "reason": reason, "message": message[:8000]}
    return "job.failed", {"attempt": attempt, "exit_code": exit_code, "reason": reason, "message": message[:8000]}


def finish_rank(state: State, *, job_id: str, attempt: int, agent_id: str, rank: int, exit_code: int | None,
                reason: str, message: str = "") -> Decision:
    """A rank's process ended. Success needs every rank; any failure fails the whole attempt.
    The attempt already decided (succeeded, failed or cancelled at this attempt, this rank on this
    agent): nothing to record, and no refusal either. It is this report again (the agent asks
    another replica when an answer is slow, and both may get it) or a rank that ended after
    another one's failure decided the attempt; its process has ended, so there is nothing to stop."""
    job = _job(state, job_id)
    if job["attempt"] == attempt and job["status"] in FINAL \
            and any(r["rank"] == rank and r["agent_id"] == agent_id for r in job.get("ranks", [])):
        return None
    _check_current(job, job_id, attempt, agent_id, rank)
    if exit_code == 0 and reason == "exit":
        if job.get("cancel_requested"):
            return "job.cancelled", {"attempt": attempt, "message": "cancelled (the process had exited 0)"}
        done = set(job.get("ranks_done", [])) | {rank}
        if len(done) < len(job["ranks"]):
            if rank in job.get("ranks_done", []):
                return None
            return "job.rank_exited", {"attempt": attempt, "rank": rank, "exit_code": 0}
        return "job.succeeded", {"attempt": attempt, "exit_code": 0}
    return _attempt_failed(job, exit_code=exit_code, reason=reason if reason != "exit" else "exit",
                           message=message or f"rank {rank} exited with {exit_code}")


def lose_attempt(state: State, *, job_id: str, attempt: int, agent_id: str) -> Decision:
    job = _job(state, job_id)
    if job["attempt"] != attempt or job["status"] not in ACTIVE:
        return None
    return "job.lost", {"attempt": attempt, "agent_id": agent_id}


def requeue_lost(state: State, *, job_id: str) -> Decision:
    """After ``job.lost``: retry (or fail, or finish cancelling)."""
    job = _job(state, job_id)
    if job["status"] != "lost":
        return None
    return _attempt_failed(job, exit_code=None, reason="lost",
                           message=f"agent {job.get('lost_agent')} was lost during attempt {job['attempt']}")


def cancel_job(state: State, *, job_id: str) -> Decision:
    job = _job(state, job_id)
    if job["status"] in FINAL or job.get("cancel_requested"):
        return None
    if job["status"] in ("queued", "lost"):
        return "job.cancelled", {"attempt": job["attempt"], "message": "cancelled before it ran"}
    return "job.cancel_requested", {"attempt": job["attempt"]}


def evolve_job(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "job.submitted":
        return {"status": "queued", "attempt": 1, "spec": data["spec"], "run_id": data["run_id"],
                "ranks": [], "ranks_done": [], "failures": 0, "losses": 0, "cancel_requested": False}
    state = dict(state or {})
    if event_type == "job.assigned":
        state.update(status="assigned", ranks=data["ranks"], ranks_done=[])
    elif event_type == "job.started":
        state["status"] = "running"
    elif event_type == "job.rank_exited":
        state["ranks_done"] = sorted(set(state.get("ranks_done", [])) | {data["rank"]})
    elif event_type == "job.succeeded":
        state["status"] = "succeeded"
    elif event_type == "job.failed":
        state["status"] = "failed"
    elif event_type == "job.cancelled":
        state["status"] = "cancelled"
    elif event_type == "job.cancel_requested":
        state["cancel_requested"] = True
    elif event_type == "job.lost":
        state.update(status="lost", lost_agent=data["agent_id"])
    elif event_type == "job.retried":
        counter = "losses" if data["reason"] == "lost" else "failures"
        state[counter] = state.get(counter, 0) + 1
        state.update(status="queued", attempt=data["attempt"], ranks=[], ranks_done=[])
    return state


# --- agents ------------------------------------------------------------------------------------

def register_agent(state: State, *, agent_id: str, name: str, queue: str, host: str,
                   capacity: dict[str, Any]) -> Decision:
    if state is not None and state["status"] == "active" and state["queue"] == queue \
            and state["capacity"] == capacity and state["host"] == host:
        return None
    return "agent.registered", {"agent_id": agent_id, "name": name, "queue": queue, "host": host,
                                "capacity": capacity}


def lose_agent(state: State, *, agent_id: str, message: str) -> Decision:
    if state is None or state["status"] != "active":
        return None
    return "agent.lost", {"agent_id": agent_id, "message": message}


def evolve_agent(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "agent.registered":
        return {"status": "active", "queue": data["queue"], "capacity": data["capacity"], "host": data["host"]}
    state = dict(state or {})
    if event_type == "agent.lost":
        state["status"] = "lost"
    return state


EVOLVERS = {"job": evolve_job, "agent": evolve_agent}
