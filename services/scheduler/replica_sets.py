"""Replica sets as pure functions: a named, project-scoped count of long-lived jobs that the
scheduler keeps running. No I/O here; the live side is ``replica_core.py``.

Aggregate ``replica_set`` (in its project, id = the set's name): ``replica_set.updated`` carries
the whole desired state (command, env, replicas, resources, spread, queue), so a PUT is one
event and replaying the log gives the same set; ``replica_set.deleted`` stops every replica.
Which jobs belong to a set is recorded on the jobs themselves (``spec.replica_set``), so the
count of live replicas is read from the job events, never kept as a second truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import NotFound

State = dict[str, Any] | None
DESIRED = ("command", "env", "replicas", "resources", "spread", "queue")
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
HEALTHY_S = 30.0  # a replica that ran this long before ending was not crash-looping


def update_replica_set(state: State, *, name: str, command: list[str], env: dict[str, str], replicas: int,
                       resources: dict[str, Any], spread: bool, queue: str) -> Decision:
    """Set the desired state; a PUT of what is already there appends nothing."""
    data = {"name": name, "command": command, "env": env, "replicas": replicas, "resources": resources,
            "spread": spread, "queue": queue}
    if state is not None and not state.get("deleted") and all(state.get(k) == data[k] for k in DESIRED):
        return None
    return "replica_set.updated", data


def delete_replica_set(state: State, *, name: str) -> Decision:
    if state is None or state.get("deleted"):
        raise NotFound(f"replica set {name!r} does not exist")
    return "replica_set.deleted", {"name": name}


def evolve_replica_set(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "replica_set.updated":
        return {**{k: data[k] for k in DESIRED}, "deleted": False}
    state = dict(state or {})
    if event_type == "replica_set.deleted":
        state["deleted"] = True
    return state


EVOLVERS = {"replica_set": evolve_replica_set}


@dataclass(frozen=True)
class ReconcilePlan:
    """What to do for one set now: how many replicas to start, which jobs to stop."""

    start: int
    stop: list[str]


def reconcile_plan(desired: int, live: list[dict[str, Any]]) -> ReconcilePlan:
    """``live``: the set's jobs that have not ended and are not being stopped (each with ``id``
    and ``submitted_seq``). Scale down stops the newest first: the oldest replicas are the ones
    whose callers have warmed caches and connections. A deleted set has ``desired`` 0."""
    if len(live) < desired:
        return ReconcilePlan(start=desired - len(live), stop=[])
    newest_first = sorted(live, key=lambda j: j["submitted_seq"], reverse=True)
    return ReconcilePlan(start=0, stop=[j["id"] for j in newest_first[: len(live) - desired]])


@dataclass(frozen=True)
class Backoff:
    """A set's crash-loop back-off: consecutive quick ends, the current delay, and the earliest
    (clock) time the next replacement may start."""

    crashes: int = 0
    delay_s: float = 0.0
    not_before: float = 0.0


def after_replica_ended(backoff: Backoff, *, ran_s: float | None, now: float) -> Backoff:
    """A replica ended on its own (exit, crash, kill, its agent lost for good). One that ran at
    least ``HEALTHY_S`` resets the back-off; one that never started or ended sooner doubles it
    (1 s, 2 s, 4 s ... 60 s), so a command that exits at once is not restarted in a tight loop."""
    if ran_s is not None and ran_s >= HEALTHY_S:
        return Backoff()
    crashes = backoff.crashes + 1
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (crashes - 1))
    return Backoff(crashes=crashes, delay_s=delay, not_before=now + delay)


def replica_env(spec_env: dict[str, str], *, set_name: str, job_id: str, host: str) -> dict[str, str]:
    """The environment a replica's process gets on top of the set's own: who it is and the
    address other machines reach it at (its agent's registered host)."""
    return {**spec_env, "CAIRN_REPLICA_SET": set_name, "CAIRN_REPLICA_ID": job_id, "CAIRN_HOST_ADDRESS": host}


def spread_choice(fitting_ids: list[str], holders: set[str], *, agents_in_queue: int,
                  replicas: int) -> list[str] | None:
    """Agents a replica may go to, best first: those holding no replica of its set; agents that
    already hold one only when the queue has fewer agents than the set has replicas (doubling up
    is then unavoidable). None: wait for an agent without one to have room."""
    empty = [a for a in fitting_ids if a not in holders]
    if empty:
        return empty + [a for a in fitting_ids if a in holders]
    if agents_in_queue < replicas and fitting_ids:
        return fitting_ids
    return None
