"""Matching jobs to agents (pure): resources, queues, priorities, fair share, all-or-none groups."""

from __future__ import annotations

from typing import Any

from cairn.services.scheduler.dispatch import AgentSlot, free_slots, plan


def job(job_id: str, project: str = "a", *, seq: int = 0, priority: int = 0, queue: str = "q", nodes: int = 1,
        cpus: float = 1, memory_mib: int = 0, gpus: int = 0, gpu_type: str | None = None) -> dict[str, Any]:
    return {"id": job_id, "project": project, "submitted_seq": seq, "priority": priority, "queue": queue,
            "nodes": nodes, "cpus": cpus, "memory_mib": memory_mib, "gpus": gpus, "gpu_type": gpu_type,
            "attempt": 1}


def slots(*specs: tuple[str, str, float, int]) -> dict[str, AgentSlot]:
    return {a: AgentSlot(a, q, "127.0.0.1", cpus, 1024, gpus, ["NVIDIA H100"] * bool(gpus)) for a, q, cpus, gpus in specs}


def queued(*jobs: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(jobs, key=lambda j: (-j["priority"], j["submitted_seq"]))


def placed(decisions: list) -> list[tuple[str, list[str]]]:
    return [(j["id"], [s.agent_id for s in chosen]) for j, chosen in decisions]


def test_higher_priority_goes_first_then_first_come_first_served() -> None:
    jobs = queued(job("old"), job("new", seq=5), job("urgent", seq=9, priority=10))
    assert [j for j, _ in placed(plan(jobs, slots(("x", "q", 2, 0)), {}))] == ["urgent", "old"]


def test_a_contended_queue_is_shared_between_projects_by_their_active_jobs() -> None:
    jobs = queued(job("a1", "a", seq=1), job("a2", "a", seq=2), job("a3", "a", seq=3), job("b1", "b", seq=4))
    # project a already runs 2 jobs, b none: b's job goes first although it came last
    chosen = placed(plan(jobs, slots(("x", "q", 2, 0)), {"a": 2}))
    assert [j for j, _ in chosen] == ["b1", "a1"]
    # equal use: alternate between projects
    jobs = queued(job("a1", "a", seq=1), job("a2", "a", seq=2), job("b1", "b", seq=3), job("b2", "b", seq=4))
    assert [j for j, _ in placed(plan(jobs, slots(("x", "q", 4, 0)), {}))] == ["a1", "b1", "a2", "b2"]


def test_jobs_only_go_to_agents_of_their_queue_with_enough_free_resources() -> None:
    jobs = queued(job("big", cpus=8, seq=1), job("small", cpus=1, seq=2), job("other", queue="z", seq=3),
                  job("gpu", gpus=1, gpu_type="h100", seq=4), job("a100", gpus=1, gpu_type="a100", seq=5))
    chosen = dict(placed(plan(jobs, slots(("x", "q", 4, 0), ("g", "q", 4, 1)), {})))
    assert chosen == {"small": ["x"], "gpu": ["g"]}  # big does not fit (backfilled), no agent serves z or a100


def test_a_group_gets_n_distinct_agents_or_nothing() -> None:
    one_free = slots(("x", "q", 4, 0))
    assert plan(queued(job("gang", nodes=2)), one_free, {}) == []
    two = placed(plan(queued(job("gang", nodes=2)), slots(("x", "q", 4, 0), ("y", "q", 4, 0)), {}))
    assert two[0][0] == "gang" and sorted(two[0][1]) == ["x", "y"]


def test_free_resources_subtract_what_active_attempts_hold_on_live_agents() -> None:
    agents = [{"id": "x", "queue": "q", "host": "h", "cpus": 4, "memory_mib": 100, "gpus": 0, "gpu_types": []},
              {"id": "dead", "queue": "q", "host": "h", "cpus": 4, "memory_mib": 100, "gpus": 0, "gpu_types": []}]
    active = [{**job("r", cpus=3, memory_mib=60), "ranks": [{"rank": 0, "agent_id": "x"}]}]
    free = free_slots(agents, active, live={"x"})
    assert list(free) == ["x"] and free["x"].cpus == 1 and free["x"].memory_mib == 40
