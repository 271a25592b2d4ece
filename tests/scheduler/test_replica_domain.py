"""Replica sets' pure decisions: the aggregate, how many replicas to start or stop, the
crash-loop back-off, the replica's environment, and spreading replicas over agents."""

from __future__ import annotations

import pytest

from cairn.kernel.errors import NotFound
from cairn.services.scheduler.dispatch import AgentSlot, plan, replica_holders
from cairn.services.scheduler.replica_sets import (
    Backoff,
    after_replica_ended,
    delete_replica_set,
    evolve_replica_set,
    reconcile_plan,
    replica_env,
    spread_choice,
    update_replica_set,
)

RES = {"cpus": 1.0, "memory_mib": 0, "gpus": 0, "gpu_type": None}


def desired(**over: object) -> dict:
    return {"name": "web", "command": ["serve"], "env": {}, "replicas": 2, "resources": RES, "spread": True,
            "queue": "default", **over}


def test_a_put_records_the_whole_desired_state_and_a_repeat_appends_nothing() -> None:
    event_type, data = update_replica_set(None, **desired())
    assert event_type == "replica_set.updated" and data["replicas"] == 2
    state = evolve_replica_set(None, event_type, data)
    assert update_replica_set(state, **desired()) is None
    assert update_replica_set(state, **desired(replicas=3)) == ("replica_set.updated", desired(replicas=3))


def test_delete_needs_a_set_and_a_deleted_set_can_be_put_again() -> None:
    with pytest.raises(NotFound, match="replica set 'web' does not exist"):
        delete_replica_set(None, name="web")
    state = evolve_replica_set(None, *update_replica_set(None, **desired()))
    state = evolve_replica_set(state, *delete_replica_set(state, name="web"))
    assert state["deleted"]
    with pytest.raises(NotFound):
        delete_replica_set(state, name="web")
    assert update_replica_set(state, **desired()) is not None  # same spec, but the set was deleted


def test_the_plan_starts_what_is_missing_and_stops_the_newest_first() -> None:
    live = [{"id": "a", "submitted_seq": 5}, {"id": "c", "submitted_seq": 9}, {"id": "b", "submitted_seq": 7}]
    assert reconcile_plan(5, live).start == 2 and reconcile_plan(5, live).stop == []
    assert reconcile_plan(3, live).start == 0 and reconcile_plan(3, live).stop == []
    assert reconcile_plan(1, live).stop == ["c", "b"]
    assert reconcile_plan(0, live).stop == ["c", "b", "a"]  # a deleted set


def test_quick_ends_double_the_back_off_up_to_a_minute_and_a_healthy_run_resets_it() -> None:
    b = Backoff()
    delays = []
    for step in range(9):
        b = after_replica_ended(b, ran_s=0.1 if step % 2 else None, now=100.0)
        delays.append(b.delay_s)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert b.not_before == 160.0 and b.crashes == 9
    assert after_replica_ended(b, ran_s=3600.0, now=200.0) == Backoff()


def test_a_replica_learns_its_set_id_and_reachable_address() -> None:
    env = replica_env({"MODEL": "x"}, set_name="deploy-fraud", job_id="j1", host="10.0.0.5")
    assert env == {"MODEL": "x", "CAIRN_REPLICA_SET": "deploy-fraud", "CAIRN_REPLICA_ID": "j1",
                   "CAIRN_HOST_ADDRESS": "10.0.0.5"}


def test_spread_prefers_empty_agents_and_doubles_up_only_when_agents_are_short() -> None:
    assert spread_choice(["a", "b"], {"a"}, agents_in_queue=2, replicas=2) == ["b", "a"]
    assert spread_choice(["a"], {"a"}, agents_in_queue=2, replicas=2) is None  # b is busy: wait for it
    assert spread_choice(["a"], {"a"}, agents_in_queue=1, replicas=2) == ["a"]  # one agent: double up


def slot(agent_id: str, cpus: float = 4) -> AgentSlot:
    return AgentSlot(agent_id, "default", f"host-{agent_id}", cpus, 1024, 0)


def replica_job(job_id: str, seq: int, replicas: int = 2) -> dict:
    return {"id": job_id, "project": "p", "queue": "default", "priority": 0, "attempt": 1, "nodes": 1, "cpus": 1.0,
            "memory_mib": 0, "gpus": 0, "gpu_type": None, "submitted_seq": seq, "replica_set": "p/web",
            "spread": True, "replicas": replicas}


def test_the_dispatcher_puts_two_replicas_on_two_agents_though_one_has_room_for_both() -> None:
    slots = {"a": slot("a", cpus=8), "b": slot("b", cpus=2)}
    decisions = plan([replica_job("r1", 1), replica_job("r2", 2)], slots, {})
    assert sorted(chosen[0].agent_id for _, chosen in decisions) == ["a", "b"]


def test_a_replacement_goes_to_the_agent_without_a_replica() -> None:
    active = [{"project": "p", "ranks": [{"agent_id": "a", "rank": 0}], "replica_set": "p/web", "cpus": 1.0,
               "memory_mib": 0, "gpus": 0}]
    slots = {"a": slot("a", cpus=8), "b": slot("b", cpus=2)}
    decisions = plan([replica_job("r3", 3)], slots, {"p": 1}, replica_holders(active))
    assert [chosen[0].agent_id for _, chosen in decisions] == ["b"]
