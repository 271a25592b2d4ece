"""The deployment and environment aggregates, pure: commands decide events, evolve folds them."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.kernel.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from cairn.services.deployments import domain

MODEL = domain.ModelRef("fraud-model", "m1", frozenset({1, 2, 3}), alias_version=2)


def fold(*decisions: Any, state: dict[str, Any] | None = None) -> dict[str, Any] | None:
    for decision in decisions:
        if decision is not None:
            state = domain.evolve_deployment(state, decision[0], decision[1])
    return state


def created(**kw: Any) -> dict[str, Any]:
    args = dict(name="fraud", environment="prod", model=MODEL, follows="production", version=None, replicas=2,
                sample_rate=0.1, batching=None, public=False) | kw
    state = fold(domain.create_deployment(None, **args))
    assert state is not None
    return state


def test_create_follows_the_alias_version() -> None:
    event_type, data = domain.create_deployment(None, name="fraud", environment="prod", model=MODEL,
                                                follows="production", version=None, replicas=2,
                                                sample_rate=0.5, batching={"max_batch": 8, "max_wait_ms": 2},
                                                public=False)
    assert event_type == "deployment.created"
    assert data["version"] == 2 and data["follows"] == "production" and data["model_id"] == "m1"
    assert data["batching"] == {"max_batch": 8, "max_wait_ms": 2.0}


@pytest.mark.parametrize(("kw", "error", "field"), [
    ({"follows": None, "version": None}, InvalidInput, "follows"),
    ({"follows": "production", "version": 1}, InvalidInput, "follows"),
    ({"follows": None, "version": 7}, NotFound, "version"),
    ({"replicas": -1}, InvalidInput, "replicas"),
    ({"sample_rate": 1.5}, InvalidInput, "sample_rate"),
    ({"batching": {"max_batch": 0, "max_wait_ms": 1}}, InvalidInput, "batching.max_batch"),
])
def test_create_refuses_bad_input_naming_the_field(kw: dict[str, Any], error: type[Exception], field: str) -> None:
    args = dict(name="fraud", environment="dev", model=MODEL, follows="production", version=None, replicas=1,
                sample_rate=0.0, batching=None, public=False) | kw
    with pytest.raises(error) as raised:
        domain.create_deployment(None, **args)
    assert raised.value.details["field"] == field  # type: ignore[attr-defined]


def test_create_needs_the_alias_to_exist_and_the_name_to_be_free() -> None:
    no_alias = domain.ModelRef("fraud-model", "m1", frozenset({1}), alias_version=None)
    with pytest.raises(NotFound, match="no alias 'production'"):
        domain.create_deployment(None, name="f", environment="dev", model=no_alias, follows="production",
                                 version=None, replicas=1, sample_rate=0, batching=None, public=False)
    with pytest.raises(AlreadyExists):
        domain.create_deployment(created(), name="fraud", environment="dev", model=MODEL, follows=None, version=1,
                                 replicas=1, sample_rate=0, batching=None, public=False)


def test_a_deleted_name_can_be_deployed_again() -> None:
    state = fold(domain.delete(created(), name="fraud"), state=created())
    assert state is not None and state["deleted"]
    with pytest.raises(NotFound):
        domain.scale(state, name="fraud", replicas=3)
    assert domain.create_deployment(state, name="fraud", environment="dev", model=MODEL, follows=None, version=1,
                                    replicas=1, sample_rate=0, batching=None, public=False) is not None


def test_alias_move_changes_the_version_once() -> None:
    state = created()
    decision = domain.follow_alias(state, name="fraud", alias_version=3)
    assert decision == ("deployment.version_changed", {"from": 2, "to": 3, "why": "alias_moved", "model_id": "m1"})
    state = fold(decision, state=state)
    assert domain.follow_alias(state, name="fraud", alias_version=3) is None  # already there
    assert domain.follow_alias(state, name="fraud", alias_version=None) is None  # alias removed: keep serving


def test_a_rollback_holds_until_the_alias_moves_again() -> None:
    state = fold(domain.follow_alias(created(), name="fraud", alias_version=3), state=created())
    state = fold(domain.rollback(state, name="fraud"), state=state)
    assert state is not None and state["version"] == 2 and state["previous_version"] == 3
    assert domain.follow_alias(state, name="fraud", alias_version=3) is None
    assert domain.follow_alias(state, name="fraud", alias_version=1) == (
        "deployment.version_changed", {"from": 2, "to": 1, "why": "alias_moved", "model_id": "m1"})


def test_a_pinned_deployment_does_not_follow() -> None:
    assert domain.follow_alias(created(follows=None, version=1), name="fraud", alias_version=3) is None


def test_rollback_without_a_previous_version_is_a_conflict() -> None:
    with pytest.raises(Conflict, match="nothing to roll back to"):
        domain.rollback(created(), name="fraud")


def test_manual_change_scale_and_split() -> None:
    state = created()
    assert domain.change_version(state, name="fraud", model=MODEL, version=2) is None
    assert domain.change_version(state, name="fraud", model=MODEL, version=1) == (
        "deployment.version_changed", {"from": 2, "to": 1, "why": "manual", "model_id": "m1"})
    with pytest.raises(NotFound, match="no version 9; latest is 3"):
        domain.change_version(state, name="fraud", model=MODEL, version=9)
    assert domain.scale(state, name="fraud", replicas=2) is None
    assert domain.scale(state, name="fraud", replicas=5) == ("deployment.scaled", {"from": 2, "replicas": 5})
    split = domain.split_traffic(state, name="fraud", model=MODEL, canary={"version": 3, "percent": 10},
                                 shadow=None)
    assert split == ("deployment.traffic_split", {"canary": {"version": 3, "percent": 10.0}, "shadow": None})
    with pytest.raises(InvalidInput, match="another version"):
        domain.split_traffic(state, name="fraud", model=MODEL, canary=None, shadow={"version": 2})
    with pytest.raises(InvalidInput):
        domain.split_traffic(state, name="fraud", model=MODEL, canary={"version": 3, "percent": 100}, shadow=None)
    state = fold(split, state=state)
    assert domain.split_traffic(state, name="fraud", model=MODEL, canary=None, shadow=None) == (
        "deployment.traffic_split", {"canary": None, "shadow": None})
    # moving to the canary's version ends the canary
    state = fold(domain.change_version(state, name="fraud", model=MODEL, version=3), state=state)
    assert state is not None and state["traffic"]["canary"] is None


def test_replica_reports_repeat_nothing() -> None:
    state = created()
    decision = domain.report_replica(state, name="fraud", replica_id="j1", url="http://10.0.0.1:1", version=2,
                                     status="started", reason="")
    assert decision is not None and decision[0] == "deployment.replica_started"
    state = fold(decision, state=state)
    assert domain.report_replica(state, name="fraud", replica_id="j1", url="http://10.0.0.1:1", version=2,
                                 status="started", reason="") is None
    with pytest.raises(InvalidInput):
        domain.report_replica(state, name="fraud", replica_id="j1", url="", version=2, status="dead", reason="")


def test_prod_is_protected_until_unprotected() -> None:
    assert domain.is_protected(None, "prod") and not domain.is_protected(None, "dev")
    assert domain.set_protected(None, environment="prod", protected=True) is None
    decision = domain.set_protected(None, environment="prod", protected=False)
    assert decision == ("environment.unprotected", {"environment": "prod"})
    state = domain.evolve_environment(None, *decision)
    assert not domain.is_protected(state, "prod")
    assert domain.set_protected(None, environment="staging", protected=True) == (
        "environment.protected", {"environment": "staging"})
