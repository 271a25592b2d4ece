"""Matching queued jobs to agents: pure functions over the read model, no I/O.

Order (per queue): the highest priority first; among equal priorities, the project with the
fewest active (assigned or running) jobs first (fair share when a queue is contended); then
first come, first served. A job that does not fit now is skipped for this round (smaller jobs
behind it may run: backfill). A job with ``nodes: N`` gets N distinct agents or nothing.
A replica of a spread replica set goes to an agent holding no replica of its set while the
queue has enough agents (``replica_sets.spread_choice``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cairn.services.scheduler.replica_sets import spread_choice


@dataclass
class AgentSlot:
    """An agent's free resources as the dispatcher sees them during one round."""

    agent_id: str
    queue: str
    host: str
    cpus: float
    memory_mib: int
    gpus: int
    gpu_types: list[str] = field(default_factory=list)

    def fits(self, job: dict[str, Any]) -> bool:
        if self.cpus + 1e-9 < job["cpus"] or self.memory_mib < job["memory_mib"] or self.gpus < job["gpus"]:
            return False
        wanted = (job.get("gpu_type") or "").lower()
        return not wanted or any(wanted in name.lower() for name in self.gpu_types)

    def take(self, job: dict[str, Any]) -> None:
        self.cpus -= job["cpus"]
        self.memory_mib -= job["memory_mib"]
        self.gpus -= job["gpus"]


def free_slots(agents: list[dict[str, Any]], active_jobs: list[dict[str, Any]],
               live: set[str]) -> dict[str, AgentSlot]:
    """Each live agent's capacity minus what its active attempts hold."""
    slots = {a["id"]: AgentSlot(a["id"], a["queue"], a["host"], a["cpus"], a["memory_mib"], a["gpus"],
                                list(a["gpu_types"])) for a in agents if a["id"] in live}
    for job in active_jobs:
        for rank in job["ranks"]:
            slot = slots.get(rank["agent_id"])
            if slot is not None:
                slot.take(job)
    return slots


def replica_holders(active_jobs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Replica set key -> the agents that hold one of its active replicas."""
    holders: dict[str, set[str]] = {}
    for job in active_jobs:
        if job.get("replica_set"):
            holders.setdefault(job["replica_set"], set()).update(r["agent_id"] for r in job["ranks"])
    return holders


def plan(queued: list[dict[str, Any]], slots: dict[str, AgentSlot],
         active_by_project: dict[str, int],
         holders: dict[str, set[str]] | None = None) -> list[tuple[dict[str, Any], list[AgentSlot]]]:
    """Which queued jobs go where this round: [(job, [slot per rank])]. ``holders``: where each
    replica set's active replicas are (``replica_holders``); updated as replicas are placed."""
    holders = {k: set(v) for k, v in (holders or {}).items()}
    by_queue: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for job in queued:  # already sorted by (priority desc, submitted_seq)
        by_queue.setdefault(job["queue"], {}).setdefault(job["project"], []).append(job)
    active = dict(active_by_project)
    decisions: list[tuple[dict[str, Any], list[AgentSlot]]] = []
    for queue, projects in by_queue.items():
        candidates = [s for s in slots.values() if s.queue == queue]
        if not candidates:
            continue
        heads = {project: 0 for project in projects}
        while heads:
            project = min(heads, key=lambda p: (-projects[p][heads[p]]["priority"], active.get(p, 0),
                                                projects[p][heads[p]]["submitted_seq"]))
            job = projects[project][heads[project]]
            chosen = _place(job, candidates, holders)
            if chosen is not None:
                for slot in chosen:
                    slot.take(job)
                if job.get("replica_set"):
                    holders.setdefault(job["replica_set"], set()).update(s.agent_id for s in chosen)
                decisions.append((job, chosen))
                active[project] = active.get(project, 0) + 1
            heads[project] += 1
            if heads[project] >= len(projects[project]):
                del heads[project]
    return decisions


def _place(job: dict[str, Any], candidates: list[AgentSlot],
           holders: dict[str, set[str]]) -> list[AgentSlot] | None:
    """N distinct agents that fit, or None. CPU-only jobs prefer agents without GPUs; then the
    agent with the most free CPUs (spreads load, so processes do not queue up on one machine)."""
    fitting = [s for s in candidates if s.fits(job)]
    if len(fitting) < job["nodes"]:
        return None
    fitting.sort(key=lambda s: (s.gpus if not job["gpus"] else 0, -s.cpus, -s.memory_mib, s.agent_id))
    if job.get("replica_set") and job.get("spread"):
        by_id = {s.agent_id: s for s in fitting}
        order = spread_choice([s.agent_id for s in fitting], holders.get(job["replica_set"], set()),
                              agents_in_queue=len(candidates), replicas=job.get("replicas") or 1)
        if order is None:
            return None
        fitting = [by_id[a] for a in order]
    return fitting[: job["nodes"]]
