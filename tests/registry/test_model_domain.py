"""The model aggregate's decisions and evolution, without a platform: a model's own state (name,
archived, tags) lives on its aggregate; its name's uniqueness is decided on ``ModelNames``."""

from __future__ import annotations

import pytest

from cairn.kernel.errors import AlreadyExists, InvalidInput, NotFound
from cairn.services.registry import domain
from cairn.services.registry.domain import ModelNames, evolve_model

OPEN = ModelNames(project_exists=True, names={})


def created(name: str = "churn") -> dict:
    return evolve_model(None, "model.created", {"model_id": "m1", "name": name, "description": "d"})


def test_creating_a_model_takes_a_free_name_in_an_existing_project() -> None:
    assert domain.create_model(None, OPEN, project="p", model_id="m1", name="churn", description="") == (
        "model.created", {"model_id": "m1", "name": "churn", "description": ""})


def test_a_taken_name_a_missing_project_or_a_bad_name_is_refused() -> None:
    with pytest.raises(AlreadyExists, match="'churn' already exists in project 'p'"):
        domain.create_model(None, ModelNames(True, {"churn": "m0"}), project="p", model_id="m1", name="churn",
                            description="")
    with pytest.raises(NotFound, match="project 'p' does not exist"):
        domain.create_model(None, ModelNames(False, {}), project="p", model_id="m1", name="churn", description="")
    with pytest.raises(InvalidInput):
        domain.create_model(None, OPEN, project="p", model_id="m1", name="a/b", description="")
    with pytest.raises(AlreadyExists):  # the same model id twice
        domain.create_model(created(), OPEN, project="p", model_id="m1", name="other", description="")


def test_renaming_onto_a_taken_name_is_refused_and_onto_its_own_name_is_a_no_op() -> None:
    names = ModelNames(True, {"churn": "m1", "fraud": "m2"})
    with pytest.raises(AlreadyExists, match="'fraud' already exists"):
        domain.update_model(created(), names, project="p", model_id="m1", name="fraud", description=None)
    assert domain.update_model(created(), names, project="p", model_id="m1", name="churn", description=None) is None
    assert domain.update_model(created(), names, project="p", model_id="m1", name="churn-2", description=None) == (
        "model.updated", {"model_id": "m1", "name": "churn-2"})


def test_commands_on_a_model_that_was_never_created_are_not_found() -> None:
    versions_only = evolve_model(None, "model_version.created", {"version": 1})
    for state in (None, versions_only):
        with pytest.raises(NotFound, match="model 'm1' does not exist in project 'p'"):
            domain.set_model_tag(state, project="p", model_id="m1", key="k", value="v")
        with pytest.raises(NotFound):
            domain.set_model_archived(state, project="p", model_id="m1", archived=True)
        with pytest.raises(NotFound):
            domain.update_model(state, OPEN, project="p", model_id="m1", name="x", description=None)


def test_the_model_state_holds_its_name_archived_flag_and_tags() -> None:
    state = created()
    state = evolve_model(state, "model.updated", {"model_id": "m1", "name": "churn-2"})
    state = evolve_model(state, "model.tag_set", {"model_id": "m1", "key": "team", "value": "risk"})
    state = evolve_model(state, "model.archived", {"model_id": "m1"})
    state = evolve_model(state, "model_version.created", {"version": 1})
    assert state == {"name": "churn-2", "description": "d", "archived": True, "tags": {"team": "risk"},
                     "latest_version": 1, "versions": {"1": {"archived": False}}, "aliases": {}}
    assert domain.set_model_archived(state, project="p", model_id="m1", archived=True) is None
    assert domain.set_model_archived(state, project="p", model_id="m1", archived=False) == (
        "model.restored", {"model_id": "m1"})


def test_the_project_no_longer_keeps_model_names() -> None:
    project = domain.evolve_project(None, "project.created", {"name": "p", "description": "",
                                                              "default_experiment_id": "e0"})
    # an old log's model.created on the project's subject leaves the project's state as it was
    assert domain.evolve_project(dict(project), "model.created", {"model_id": "m1", "name": "churn",
                                                                  "description": ""}) == project
    assert "model_names" not in project
