"""Model commands added for MLflow parity (model_commands.py), without a platform: tag removal and
versions registered without files, and how the aggregate folds them."""

from __future__ import annotations

import pytest

from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.schemas import _validator
from cairn.services.registry import model_commands
from cairn.services.registry.domain import evolve_model


def model_with_tag() -> dict:
    state = evolve_model(None, "model.created", {"model_id": "m1", "name": "churn", "description": ""})
    return evolve_model(state, "model.tag_set", {"model_id": "m1", "key": "team", "value": "a"})


def test_removing_a_tag_is_an_event_and_removing_a_missing_one_changes_nothing() -> None:
    state = model_with_tag()
    decision = model_commands.delete_model_tag(state, project="p", model_id="m1", key="team")
    assert decision == ("model.tag_deleted", {"model_id": "m1", "key": "team"})
    state = evolve_model(state, *decision)
    assert state["tags"] == {}
    assert model_commands.delete_model_tag(state, project="p", model_id="m1", key="team") is None
    with pytest.raises(InvalidInput):
        model_commands.delete_model_tag(model_with_tag(), project="p", model_id="m1", key="a/b\n")


def test_a_version_without_files_takes_the_next_number_and_keeps_source_and_reason() -> None:
    state = model_with_tag()
    decision = model_commands.create_model_version_without_files(
        state, run_id="run_id", source="runs:/run_id/model", reason="run 'run_id' does not exist", description="")
    assert decision is not None
    event_type, data = decision
    assert event_type == "model_version.created_without_files" and data["version"] == 1
    assert _validator(f"{event_type}.v1").is_valid(data)  # its published schema accepts it
    state = evolve_model(state, event_type, data)
    assert state["latest_version"] == 1
    assert model_commands.delete_model_version_tag(state, model="churn", version=1, key="k") == (
        "model_version.tag_deleted", {"version": 1, "key": "k"})
    with pytest.raises(NotFound, match="has no version 2"):
        model_commands.delete_model_version_tag(state, model="churn", version=2, key="k")


def test_a_version_without_files_needs_a_reason_and_a_clean_run_id() -> None:
    with pytest.raises(InvalidInput, match="reason"):
        model_commands.create_model_version_without_files(model_with_tag(), run_id="", source="s3://b/m",
                                                          reason=" ", description="")
    with pytest.raises(InvalidInput, match="run_id"):
        model_commands.create_model_version_without_files(model_with_tag(), run_id="a\nb", source="s3://b/m",
                                                          reason="r", description="")
