"""Why a queued job is still queued: pure functions over the read model, no I/O.

A job is accepted whatever agents exist (agents often register after the jobs that wait for
them), so the answer is computed when a job is read, from the agents registered now: it is never
stale and clears by itself when a big-enough agent registers. ``unschedulable`` says that no
registered agent of the job's queue could run it even when idle; the other reasons (agents silent
or busy) pass with time.
"""

from __future__ import annotations

from typing import Any

from cairn.services.scheduler.dispatch import AgentSlot


def _capacity(agent: dict[str, Any]) -> AgentSlot:
    return AgentSlot(agent["id"], agent["queue"], agent["host"], agent["cpus"], agent["memory_mib"], agent["gpus"],
                     list(agent["gpu_types"]))


def _num(value: float) -> str:
    return f"{value:g}"


def _short_of(job: dict[str, Any], agents: list[dict[str, Any]], queue: str) -> str:
    """The first resource no agent of the queue offers, with the largest offer."""
    if not any(a["cpus"] + 1e-9 >= job["cpus"] for a in agents):
        return f"no agent on queue {queue} offers cpus={_num(job['cpus'])} (largest: {_num(max(a['cpus'] for a in agents))})"
    if not any(a["memory_mib"] >= job["memory_mib"] for a in agents):
        largest = max(a["memory_mib"] for a in agents)
        return f"no agent on queue {queue} offers memory={job['memory_mib']}Mi (largest: {largest}Mi)"
    if not any(a["gpus"] >= job["gpus"] for a in agents):
        return f"no agent on queue {queue} offers gpus={job['gpus']} (largest: {max(a['gpus'] for a in agents)})"
    offered = sorted({name for a in agents for name in a["gpu_types"]})
    return (f"no agent on queue {queue} offers gpus={job['gpus']} of gpu_type={job.get('gpu_type')} "
            f"(offered: {', '.join(offered) or 'none'})")


def waiting_reason(job: dict[str, Any], agents: list[dict[str, Any]], live: set[str],
                   free: dict[str, AgentSlot]) -> tuple[str, bool]:
    """(reason, unschedulable) for a queued job. ``agents``: the registered agents not lost;
    ``live``: those whose lease is current; ``free``: the live agents' free resources
    (``dispatch.free_slots``)."""
    queue = job["queue"]
    on_queue = [a for a in agents if a["queue"] == queue]
    if not on_queue:
        return f"no agent on queue {queue} (start one: cairn agent --queue {queue})", True
    big_enough = [a for a in on_queue if _capacity(a).fits(job)]
    nodes = job.get("nodes") or 1
    if not big_enough:
        return _short_of(job, on_queue, queue), True
    if len(big_enough) < nodes:
        return (f"nodes={nodes} needs {nodes} agents on queue {queue} that fit, "
                f"only {len(big_enough)} offer(s) enough"), True
    responding = [a for a in big_enough if a["id"] in live]
    if len(responding) < nodes:
        return (f"the agents on queue {queue} that fit ({len(big_enough)}) are not sending heartbeats; "
                "waiting for them to come back"), False
    idle = [a for a in responding if a["id"] in free and free[a["id"]].fits(job)]
    if len(idle) < nodes:
        return f"all agents on queue {queue} that fit ({len(responding)}) are busy; waiting for resources", False
    return f"waiting for the dispatcher (agents on queue {queue} have room, or jobs ahead take it first)", False
