"""Sweep spec validation: bad specs fail with a message naming the field to fix."""

from __future__ import annotations

from typing import Any

import pytest
from simulated_scheduler import base_doc

from cairn.kernel.errors import InvalidInput
from cairn.services.scheduler.sweeps.spec import parse_sweep_spec, trial_job_spec


def _error(doc: Any, **kw: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_sweep_spec(doc, **kw)
    return caught.value


def test_a_valid_spec_is_normalised() -> None:
    spec = parse_sweep_spec(base_doc(parameters={
        "lr": {"type": "log_uniform", "min": 1e-5, "max": 1e-1},
        "dropout": {"type": "uniform", "min": 0, "max": 0.5},
        "layers": {"type": "int", "min": 1, "max": 4},
        "opt": {"values": ["adam", "sgd"]}}), project="demo")
    assert spec.project == "demo"
    assert spec.parameters["lr"].type == "float" and spec.parameters["lr"].log
    assert spec.parameters["dropout"].type == "float" and not spec.parameters["dropout"].log
    assert spec.parameters["opt"].type == "categorical"
    assert spec.max_trials() == 8


@pytest.mark.parametrize("change, field, words", [
    ({"method": "hill-climb"}, "method", "grid"),
    ({"metric": {"name": "loss", "goal": "lowest"}}, "metric.goal", "minimize"),
    ({"metric": {"goal": "minimize"}}, "metric.name", "required"),
    ({"parameters": {}}, "parameters", "at least 1"),
    ({"parameters": {"x": {"type": "float", "min": 2, "max": 1}}}, "parameters.x", "'min' must not exceed 'max'"),
    ({"parameters": {"x": {"type": "float", "min": 0, "max": 1, "log": True}}}, "parameters.x", "min > 0"),
    ({"parameters": {"x": {"type": "int", "min": 0.5, "max": 3}}}, "parameters.x", "whole 'min'"),
    ({"parameters": {"x": {"type": "categorical"}}}, "parameters.x", "needs 'values'"),
    ({"parameters": {"x": {"values": [1, 1]}}}, "parameters.x", "duplicates"),
    ({"parameters": {"x": {"type": "float", "min": 0}}}, "parameters.x", "'min' and 'max'"),
    ({"parameters": {"x": {"min": 0, "max": 1}}}, "parameters.x", "give 'values' or a 'type'"),
    ({"parameters": {"x": {"values": [1], "colour": "red"}}}, "parameters.x.colour", "Extra inputs"),
    ({"budget": {}}, "(spec)", "needs a budget"),
    ({"max_parallel": 0}, "max_parallel", "greater than or equal to 1"),
    ({"early_stopping": {"type": "hyperband"}}, "early_stopping", "max_resource"),
    ({"early_stopping": {"type": "asha", "reduction_factor": 1}}, "early_stopping.reduction_factor", "2"),
    ({"job": {"params": {}}}, "job.command", "required"),
    ({"name": "no spaces allowed"}, "name", "pattern"),
])
def test_bad_specs_name_the_field_and_say_what_to_fix(change: dict[str, Any], field: str, words: str) -> None:
    err = _error(base_doc(**change))
    assert err.details["field"] == field, err.message
    assert words in err.message


def test_grid_search_needs_a_finite_set_for_every_parameter() -> None:
    err = _error(base_doc(method="grid"))
    assert "grid search needs a finite set for parameter 'x'" in err.message


def test_grid_budget_is_the_grid_size_unless_smaller() -> None:
    doc = base_doc(method="grid", budget={}, parameters={
        "x": {"type": "float", "min": 0, "max": 1, "step": 0.25}, "n": {"type": "int", "min": 1, "max": 3}})
    spec = parse_sweep_spec(doc)
    assert spec.grid() == {"x": [0.0, 0.25, 0.5, 0.75, 1.0], "n": [1, 2, 3]}
    assert spec.max_trials() == 15
    assert parse_sweep_spec({**doc, "budget": {"max_trials": 4}}).max_trials() == 4


@pytest.mark.parametrize("parameter", [
    {"type": "int", "min": -10**18, "max": 10**18},
    {"type": "float", "min": 0, "max": 1e300, "step": 1e-300},
    {"type": "float", "min": 0, "max": 1, "step": 5e-324},
])
def test_a_huge_grid_is_refused_without_listing_it(parameter: dict[str, Any]) -> None:
    err = _error(base_doc(method="grid", budget={}, parameters={"x": parameter}))
    assert "at most 10000 are allowed" in err.message


def test_a_spec_for_another_project_is_refused() -> None:
    err = _error(base_doc(project="other"), project="demo")
    assert "project 'other'" in err.message and err.details["field"] == "project"


def test_a_spec_that_is_not_a_mapping_is_refused() -> None:
    assert "mapping" in _error(["name"]).message


def test_trial_job_spec_merges_params_and_names_the_trial() -> None:
    spec = parse_sweep_spec(base_doc(job={"command": "python train.py", "params": {"epochs": 9, "x": 0}}))
    job = trial_job_spec(spec, 3, {"x": 2.5})
    assert job["params"] == {"epochs": 9, "x": 2.5}
    assert job["name"] == "xsearch-3" and job["experiment"] == "default"
    assert job["command"] == "python train.py"
