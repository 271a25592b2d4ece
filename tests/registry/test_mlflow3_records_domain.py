"""The registry's MLflow 3 records as pure domain functions (no stack): logged models (params
immutable, tags, status, tombstone), evaluation datasets (records upserted by their inputs),
scorers (versions), and the logged-model filter and order that search uses."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.kernel.errors import Conflict, InvalidInput, NotFound
from cairn.services.registry import eval_datasets, logged_models, scorers
from cairn.services.registry.logged_model_search import compile_filter, order_models, with_datasets

MID = "m-" + "a" * 32


def _fold(evolve: Any, state: Any, decision: Any) -> Any:
    assert decision is not None
    return evolve(state, *decision)


def _model() -> dict[str, Any]:
    created = logged_models.create_logged_model(None, model_id=MID, experiment_id="e", name="m", model_type="",
                                                source_run_id=None, params={"lr": 0.1}, tags={"t": "1"})
    return _fold(logged_models.evolve_logged_model, None, created)


def test_logged_model_params_are_immutable_and_tags_change() -> None:
    state = _model()
    assert state["params"] == {"lr": "0.1"}
    assert logged_models.log_logged_model_params(state, model_id=MID, params={"lr": "0.1"}) is None
    with pytest.raises(Conflict, match="immutable"):
        logged_models.log_logged_model_params(state, model_id=MID, params={"lr": "0.2"})
    state = _fold(logged_models.evolve_logged_model, state,
                  logged_models.set_logged_model_tags(state, model_id=MID, tags={"t": "2", "u": "3"}))
    state = _fold(logged_models.evolve_logged_model, state,
                  logged_models.delete_logged_model_tag(state, model_id=MID, key="u"))
    assert state["tags"] == {"t": "2"}
    with pytest.raises(NotFound, match="No tag with key 'u'"):
        logged_models.delete_logged_model_tag(state, model_id=MID, key="u")


def test_a_deleted_logged_model_is_not_found_and_names_follow_mlflow() -> None:
    state = _model()
    state = _fold(logged_models.evolve_logged_model, state, logged_models.delete_logged_model(state, model_id=MID))
    with pytest.raises(NotFound, match="not found"):
        logged_models.finalize_logged_model(state, model_id=MID, status="ready")
    for bad in ("a/b", "a.b", "a:b", "", "x\n"):
        with pytest.raises(InvalidInput, match="Invalid model name"):
            logged_models.create_logged_model(None, model_id=MID, experiment_id="e", name=bad, model_type="",
                                              source_run_id=None, params={}, tags={})


def test_records_with_the_same_inputs_update_and_others_insert() -> None:
    created = eval_datasets.create_eval_dataset(None, dataset_id="d", name="qa", experiment_ids=["e"], tags={},
                                                created_by=None)
    state = _fold(eval_datasets.evolve_eval_dataset, None, created)
    first = eval_datasets.upsert_records(state, dataset_id="d", updated_by=None,
                                         records=[{"inputs": {"q": 1}}, {"inputs": {"q": 2}}])
    state = _fold(eval_datasets.evolve_eval_dataset, state, first)
    second = eval_datasets.upsert_records(state, dataset_id="d", updated_by=None,
                                          records=[{"inputs": {"q": 2}, "expectations": {"a": 1}}, {"inputs": {"q": 3}}])
    assert second is not None
    assert [r["update"] for r in second[1]["records"]] == [True, False]
    with pytest.raises(InvalidInput, match="inputs"):
        eval_datasets.upsert_records(state, dataset_id="d", updated_by=None, records=[{"expectations": {}}])


def test_scorer_versions_count_up_from_the_highest_live_one() -> None:
    state = None
    for expected in (1, 2):
        decision = scorers.register_scorer(state, experiment_id="e", name="judge", serialized_scorer="{}")
        assert decision is not None and decision[1]["version"] == expected
        state = scorers.evolve_scorer(state, *decision)
    state = _fold(scorers.evolve_scorer, state, scorers.delete_scorer(state, name="judge", version=2))
    again = scorers.register_scorer(state, experiment_id="e", name="judge", serialized_scorer="{}")
    assert again is not None and again[1]["version"] == 2
    with pytest.raises(NotFound):
        scorers.delete_scorer(state, name="judge", version=7)


def _row(mid: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"id": mid, "name": mid, "model_type": "", "status": "ready", "source_run_id": None, "created_seq": seq,
            "creation_timestamp": 1000, "last_updated_timestamp": 1000, "params": {}, "tags": {}, "metrics": []} | extra


def test_filters_datasets_and_order_over_models() -> None:
    acc = [{"key": "acc", "value": 0.9, "step": 1, "timestamp": 1, "dataset_name": "eval", "dataset_digest": "d"}]
    models = [_row("a", 1, params={"lr": "0.1"}, metrics=acc), _row("b", 2, status="pending", tags={"k": "v w"})]
    match = lambda text: [m["id"] for m in models if all(p(m) for p in compile_filter(text))]  # noqa: E731
    assert match("params.lr = '0.1'") == ["a"]
    assert match("metrics.acc >= 0.9 AND name LIKE 'a%'") == ["a"]
    assert match("status = 'PENDING'") == ["b"] and match("tags.k = 'v w'") == ["b"]
    assert match("name IN ('a', 'b')") == ["a", "b"]
    with pytest.raises(InvalidInput, match="<field> <op> <value>"):
        compile_filter("name ~ 'a'")
    with pytest.raises(InvalidInput, match="cannot filter by 'colour'"):
        compile_filter("colour = 'red'")
    assert [m["id"] for m in with_datasets(models, [{"dataset_name": "eval"}])] == ["a"]
    assert [m["id"] for m in order_models(models, [])] == ["b", "a"]  # newest first
    assert [m["id"] for m in order_models(models, [{"field_name": "metrics.acc", "ascending": True}])] == ["a", "b"]
