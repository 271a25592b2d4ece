"""Project creation as one event, decided without a platform: the registry's ``project.created``
names the first admin, and the gateway's projection turns it into a membership (view and
``membership`` aggregate) exactly as the old two-event shape (v1 + ``member.added``) did."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.kernel.envelope import Event, subject_for
from cairn.kernel.errors import AlreadyExists
from cairn.kernel.schemas import validate_event
from cairn.services.gateway import domain as gateway
from cairn.services.gateway.projection import projection
from cairn.services.gateway.store import GatewayStore
from cairn.services.registry import domain as registry


def _created(first_admin: str | None) -> dict:
    decision = registry.create_project(None, name="p", description="", default_experiment_id="e1",
                                       first_admin=first_admin)
    assert decision is not None
    return decision[1]


def test_project_created_names_its_first_admin_and_fits_schema_v2() -> None:
    data = _created("alice")
    assert data["first_admin"] == "alice"
    validate_event(Event(type="project.created", version=2, project="p", aggregate="project", aggregate_id="p",
                         data=data))
    with pytest.raises(AlreadyExists):
        registry.create_project({"name": "p"}, name="p", description="", default_experiment_id="e2")


def test_ensure_project_and_experiment_are_no_ops_when_they_exist() -> None:
    state = registry.evolve_project(None, "project.created", _created(None))
    assert registry.ensure_project(state, name="p", default_experiment_id="e2", first_admin="bob") is None
    assert registry.ensure_experiment(state, project="p", experiment_id="x", name="default") is None
    made = registry.ensure_experiment(state, project="p", experiment_id="x", name="tuning")
    assert made is not None and made[0] == "experiment.created" and made[1]["name"] == "tuning"


def test_the_first_admin_is_the_membership_aggregates_first_member() -> None:
    state = gateway.evolve_membership(None, "project.created", _created("alice"))
    assert state == {"members": {"alice": "admin"}}
    assert gateway.remove_member(state, project="p", user="alice") == ("member.removed", {"user": "alice"})
    assert gateway.evolve_membership(None, "project.created", _created(None)) == {"members": {}}


def _event(seq: int, project: str, aggregate: str, event_type: str, data: dict, version: int = 1) -> Event:
    return Event(type=event_type, version=version, project=project, aggregate=aggregate, aggregate_id=project,
                 data=data, sequence=seq)


def _project_log(project: str, old_shape: bool, first_seq: int) -> list[Event]:
    data = {**_created("alice"), "name": project}
    if not old_shape:
        return [_event(first_seq, project, "project", "project.created", data, version=2)]
    del data["first_admin"]
    return [_event(first_seq, project, "project", "project.created", data),
            _event(first_seq + 1, project, "membership", "member.added", {"user": "alice", "role": "admin"})]


def test_an_old_shaped_log_and_a_new_one_give_the_same_memberships(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "gateway.sqlite3")
    try:
        events = _project_log("old", True, 1) + _project_log("new", False, 3)
        events.append(_event(4, "new", "membership", "member.added", {"user": "bob", "role": "viewer"}))
        events.append(_event(5, "old", "membership", "member.added", {"user": "bob", "role": "viewer"}))
        store.apply(events, projection())
        members = {p: [(m["user"], m["role"]) for m in store.members(p)] for p in ("old", "new")}
        assert members["old"] == members["new"] == [("alice", "admin"), ("bob", "viewer")]
        states = {p: store.query_one("SELECT last_seq, state FROM aggregates WHERE subject=?",
                                     (subject_for(p, "membership", p),)) for p in ("old", "new")}
        assert states["old"]["state"] == states["new"]["state"]
        # each keeps its own subject's last sequence: the next member.* append expects exactly that
        assert (states["old"]["last_seq"], states["new"]["last_seq"]) == (5, 4)
    finally:
        store.close()


def test_a_seeded_membership_keeps_the_sequence_of_its_own_subject(tmp_path: Path) -> None:
    """No membership event yet: the seeded snapshot's sequence is 0 (a new subject), never the
    sequence of the project.created that seeded it, which is on another subject."""
    store = GatewayStore(tmp_path / "gateway.sqlite3")
    try:
        store.apply(_project_log("solo", False, 7), projection())
        row = store.query_one("SELECT last_seq, state FROM aggregates WHERE subject=?",
                              (subject_for("solo", "membership", "solo"),))
        assert row is not None and row["last_seq"] == 0
        assert store.roles_of("alice") == {"solo": "admin"}
    finally:
        store.close()
