"""The sweep aggregate's commands and folds (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from simulated_scheduler import base_doc

from cairn.kernel.errors import Conflict, NotFound
from cairn.services.scheduler.sweeps import domain
from cairn.services.scheduler.sweeps.spec import parse_sweep_spec


def _fold(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    state = None
    for event_type, data in events:
        state = domain.evolve_sweep(state, event_type, data)
    assert state is not None
    return state


def _created(goal: str = "minimize") -> tuple[str, dict[str, Any]]:
    spec = parse_sweep_spec(base_doc(metric={"name": "acc", "goal": goal}))
    decision = domain.create_sweep(None, sweep_id="s", spec=spec, created_at="2026-01-01T00:00:00Z")
    assert decision is not None
    return decision


def _trial(number: int, x: float, value: float | None, state: str = "complete") -> list[tuple[str, dict[str, Any]]]:
    return [("sweep.trial_started", {"number": number, "params": {"x": x}, "system_attrs": {},
                                     "job_id": f"j{number}", "run_id": f"r{number}"}),
            ("sweep.trial_finished", {"number": number, "state": state, "value": value, "step": 8})]


def test_create_is_idempotent_and_stop_says_why_it_cannot() -> None:
    created = _created()
    state = _fold([created])
    assert domain.create_sweep(state, sweep_id="s", spec=parse_sweep_spec(base_doc()), created_at="x") is None
    assert domain.stop_sweep(state, sweep_id="s", reason="enough") == ("sweep.stopped", {"reason": "enough"})
    stopped = _fold([created, ("sweep.stopped", {"reason": "enough"})])
    assert domain.stop_sweep(stopped, sweep_id="s", reason="again") is None
    done = _fold([created, ("sweep.completed", {"reason": "max_trials", "best_trial": None, "best_value": None})])
    with pytest.raises(Conflict, match="already completed"):
        domain.stop_sweep(done, sweep_id="s", reason="late")
    with pytest.raises(NotFound, match="'nope'"):
        domain.stop_sweep(None, sweep_id="nope", reason="x")


@pytest.mark.parametrize("goal, best", [("minimize", 1), ("maximize", 2)])
def test_the_best_trial_follows_the_goal_and_ignores_unfinished_ones(goal: str, best: int) -> None:
    state = _fold([_created(goal), *_trial(0, 0.0, 0.5), *_trial(1, 1.0, 0.2), *_trial(2, 2.0, 0.9),
                   *_trial(3, 3.0, 0.9), *_trial(4, 4.0, None, "failed"), *_trial(5, 5.0, 0.01, "cancelled"),
                   ("sweep.trial_started", {"number": 6, "params": {"x": 6.0}, "system_attrs": {},
                                            "job_id": "j6", "run_id": "r6"}),
                   ("sweep.trial_pruned", {"number": 6, "step": 2, "value": 0.0})])
    found = domain.best_trial(state)
    assert found is not None and found["number"] == best  # on a tie (2 and 3) the earlier trial wins
    assert state["best_trial"] == best
    assert domain.trial_counts(state) == {"running": 0, "complete": 4, "pruned": 1, "failed": 1, "cancelled": 1}


def test_the_table_has_a_row_per_trial_and_a_dimension_per_parameter() -> None:
    spec = parse_sweep_spec(base_doc(parameters={"x": {"type": "float", "min": -4, "max": 6},
                                                 "opt": {"values": ["adam", "sgd"]}}))
    created = domain.create_sweep(None, sweep_id="s", spec=spec, created_at="2026-01-01T00:00:00Z")
    assert created is not None
    table = domain.parallel_coordinates(_fold([created, *_trial(0, 1.5, 0.25)]))
    assert table["metric"] == "loss" and table["goal"] == "minimize"
    assert {d["name"]: d for d in table["dimensions"]} == {
        "x": {"name": "x", "type": "float", "min": -4.0, "max": 6.0, "log": False},
        "opt": {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]}}
    assert table["rows"] == [{"trial": 0, "state": "complete", "params": {"x": 1.5}, "loss": 0.25, "step": 8,
                              "run_id": "r0", "job_id": "j0"}]
