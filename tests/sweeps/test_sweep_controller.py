"""The sweep controller driven against a simulated scheduler (a test double of the scheduler's
job-submission port and the metrics port: its jobs log a loss curve computed from their params,
see simulated_scheduler.py). Randomness is seeded; time is a fake clock; every event the
controller appends is checked against its JSON Schema."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simulated_scheduler import (
    Clock,
    RecordingSink,
    SimulatedScheduler,
    base_doc,
    new_sweep,
    objective,
    run_to_end,
)

from cairn.kernel.errors import ConcurrencyConflict
from cairn.services.scheduler.sweeps import domain
from cairn.services.scheduler.sweeps.controller import SweepController


def _of_type(sink: RecordingSink, event_type: str) -> list[dict[str, Any]]:
    return [data for t, data in sink.events if t == event_type]


async def _run(doc: dict[str, Any], steps: int = 9) -> tuple[SweepController, SimulatedScheduler, RecordingSink]:
    sim, sink = SimulatedScheduler(steps=steps), RecordingSink()
    controller = new_sweep(doc, sim, sink)
    await run_to_end(controller, sim)
    return controller, sim, sink


async def test_grid_search_runs_every_grid_point_once_and_finds_the_optimum() -> None:
    doc = base_doc(method="grid", budget={}, max_parallel=3, parameters={
        "x": {"type": "int", "min": -2, "max": 4}, "opt": {"values": ["adam", "sgd"]}})
    controller, sim, sink = await _run(doc)
    tried = [(t["params"]["x"], t["params"]["opt"]) for t in _of_type(sink, "sweep.trial_started")]
    assert sorted(tried) == sorted(itertools.product(range(-2, 5), ["adam", "sgd"]))
    assert controller.status == "completed"
    completed = _of_type(sink, "sweep.completed")[0]
    assert completed["reason"] == "grid_exhausted"
    best = domain.best_trial(controller.state)
    assert best is not None and best["params"] == {"x": 1, "opt": "adam"}
    assert completed["best_trial"] == best["number"]
    assert completed["best_value"] == pytest.approx(objective({"x": 1}) + 4.0 / 9)


@pytest.mark.parametrize("method", ["random", "bayes"])
async def test_a_seeded_search_is_deterministic(method: str) -> None:
    doc = base_doc(method=method, budget={"max_trials": 14}, parameters={
        "x": {"type": "float", "min": -4, "max": 6}, "opt": {"values": ["adam", "sgd"]}})
    first = [t["params"] for t in _of_type((await _run(doc))[2], "sweep.trial_started")]
    again = [t["params"] for t in _of_type((await _run(doc))[2], "sweep.trial_started")]
    other = [t["params"] for t in _of_type((await _run({**doc, "seed": 8}))[2], "sweep.trial_started")]
    assert len(first) == 14 and first == again
    assert other != first


async def test_max_parallel_is_never_exceeded_and_is_used() -> None:
    controller, sim, _ = await _run(base_doc(max_parallel=3, budget={"max_trials": 10}))
    assert sim.max_running == 3  # run_to_end also checks it after every round


async def test_the_trial_budget_stops_the_sweep() -> None:
    controller, sim, sink = await _run(base_doc(budget={"max_trials": 5}))
    assert len(_of_type(sink, "sweep.trial_started")) == 5 == len(sim.jobs)
    assert [d["state"] for d in _of_type(sink, "sweep.trial_finished")] == ["complete"] * 5
    assert _of_type(sink, "sweep.completed")[0]["reason"] == "max_trials"
    await controller.tick()
    assert len(sim.jobs) == 5  # a completed sweep starts nothing


async def test_the_duration_budget_cancels_running_trials_and_completes() -> None:
    sim, sink, clock = SimulatedScheduler(steps=9), RecordingSink(), Clock()
    controller = new_sweep(base_doc(budget={"max_duration_s": 60}), sim, sink, clock)
    await controller.tick()
    for _ in range(3):
        sim.advance()
        await controller.tick()
    clock.now += 61
    await controller.tick()
    assert controller.status == "completed"
    assert _of_type(sink, "sweep.completed")[0]["reason"] == "max_duration"
    assert [d["state"] for d in _of_type(sink, "sweep.trial_finished")] == ["cancelled", "cancelled"]
    assert all(job.status == "cancelled" for job in sim.jobs.values())


async def test_median_stopping_prunes_exactly_the_trials_worse_than_the_median() -> None:
    """One trial at a time, so the rule is easy to state: after 3 complete trials, a trial is
    stopped (at step 2) when its curve is above the median of the complete trials' curves, which,
    as all curves have one shape, is when its objective is above their objectives' median."""
    doc = base_doc(max_parallel=1, budget={"max_trials": 16},
                   early_stopping={"type": "median", "warmup_trials": 3, "min_steps": 2})
    controller, sim, sink = await _run(doc)
    started = _of_type(sink, "sweep.trial_started")
    expected, completed = set(), []
    for trial in started:
        f = objective(trial["params"])
        if len(completed) >= 3 and f > statistics.median(completed):
            expected.add(trial["number"])
        else:
            completed.append(f)
    pruned = {d["number"] for d in _of_type(sink, "sweep.trial_pruned")}
    assert pruned == expected and len(pruned) >= 4
    assert {d["step"] for d in _of_type(sink, "sweep.trial_pruned")} == {2}
    assert all(sim.jobs[t["job_id"]].status == "cancelled" for t in started if t["number"] in pruned)
    best = domain.best_trial(controller.state)
    assert best is not None and best["number"] not in pruned
    assert objective(best["params"]) == min(objective(t["params"]) for t in started)


async def test_asha_stops_bad_trials_early_and_keeps_the_best() -> None:
    doc = base_doc(max_parallel=3, budget={"max_trials": 24},
                   early_stopping={"type": "asha", "min_resource": 1, "reduction_factor": 3})
    controller, sim, sink = await _run(doc)
    started = {t["number"]: t for t in _of_type(sink, "sweep.trial_started")}
    pruned = {d["number"] for d in _of_type(sink, "sweep.trial_pruned")}
    complete = {d["number"] for d in _of_type(sink, "sweep.trial_finished") if d["state"] == "complete"}
    assert len(pruned) >= 8 and pruned | complete == set(started)
    best = domain.best_trial(controller.state)
    assert best is not None and best["number"] in complete
    f = {n: objective(t["params"]) for n, t in started.items()}
    assert f[best["number"]] == min(f.values())  # the optimum survived every rung
    assert statistics.mean(f[n] for n in pruned) > statistics.mean(f[n] for n in complete)
    for number in pruned:  # a pruned trial ran fewer steps than a full one
        assert len(sim.jobs[started[number]["job_id"]].points) < sim.steps


async def test_hyperband_prunes_too() -> None:
    doc = base_doc(max_parallel=2, budget={"max_trials": 20},
                   early_stopping={"type": "hyperband", "min_resource": 1, "max_resource": 9})
    controller, _, sink = await _run(doc)
    assert _of_type(sink, "sweep.trial_pruned")
    assert controller.status == "completed"


async def test_bayes_search_approaches_the_optimum() -> None:
    controller, _, _ = await _run(base_doc(method="bayes", max_parallel=2, budget={"max_trials": 40}))
    best = domain.best_trial(controller.state)
    assert best is not None and abs(best["params"]["x"] - 1.0) < 0.3


async def test_failed_jobs_fail_their_trials_and_the_failure_budget_stops_the_sweep() -> None:
    sim, sink = SimulatedScheduler(steps=9), RecordingSink()
    sim.fail_params = lambda params: True
    controller = new_sweep(base_doc(budget={"max_trials": 10, "max_failed_trials": 3}), sim, sink)
    await run_to_end(controller, sim)
    failed = [d for d in _of_type(sink, "sweep.trial_finished") if d["state"] == "failed"]
    assert len(failed) >= 3 and all(d["error"] for d in failed)
    assert _of_type(sink, "sweep.completed")[0]["reason"] == "max_failed_trials"
    assert len(sim.jobs) < 10


async def test_refused_submissions_fail_one_trial_per_tick_until_the_failure_budget() -> None:
    sim, sink = SimulatedScheduler(steps=9), RecordingSink()
    sim.refuse = "queue 'gpu-xl' does not exist"
    controller = new_sweep(base_doc(max_parallel=4, budget={"max_trials": 50, "max_failed_trials": 3}), sim, sink)
    await controller.tick()
    assert len(_of_type(sink, "sweep.trial_finished")) == 1
    for _ in range(3):
        await controller.tick()
    assert controller.status == "completed"
    failed = _of_type(sink, "sweep.trial_finished")
    assert len(failed) == 3 and all("queue 'gpu-xl' does not exist" in d["error"] for d in failed)
    assert [d["job_id"] for d in _of_type(sink, "sweep.trial_started")] == [None] * 3
    assert _of_type(sink, "sweep.completed")[0] == {"reason": "max_failed_trials", "best_trial": None,
                                                    "best_value": None}


async def test_a_controller_rebuilt_from_a_lagging_history_cannot_append() -> None:
    """A read model that had not applied the controller's last events yields a stale controller;
    its first append expects an old position and is refused, so it never writes blind."""
    sim, sink = SimulatedScheduler(steps=9), RecordingSink()
    controller = new_sweep(base_doc(), sim, sink)
    await run_to_end(controller, sim, stop_after=4)
    lagging = sink.events[:-3]
    stale = SweepController.rebuild("demo", lagging, sequence=len(lagging), jobs=sim, metrics=sim, sink=sink,
                                    clock=Clock())
    sim.advance()
    with pytest.raises(ConcurrencyConflict):
        await stale.tick()
    assert len(sink.events) == controller.sequence  # nothing was appended by the stale one


async def test_a_stopped_sweep_cancels_its_running_trials() -> None:
    sim, sink = SimulatedScheduler(steps=9), RecordingSink()
    controller = new_sweep(base_doc(), sim, sink)
    await run_to_end(controller, sim, stop_after=3)
    stop = domain.stop_sweep(controller.state, sweep_id="s1", reason="enough")
    assert stop is not None
    sink.events.append(stop)  # as the API appends it; the driver then rebuilds the controller
    controller = SweepController.rebuild("demo", sink.events, sequence=len(sink.events), jobs=sim, metrics=sim,
                                         sink=sink, clock=Clock())
    await controller.tick()
    assert controller.status == "stopped"
    assert not sim.running()
    assert {d["state"] for d in _of_type(sink, "sweep.trial_finished")[-2:]} == {"cancelled"}


@pytest.mark.parametrize("doc", [
    base_doc(method="random", max_parallel=3, budget={"max_trials": 12},
             early_stopping={"type": "median", "warmup_trials": 2, "min_steps": 1}),
    base_doc(method="bayes", max_parallel=2, budget={"max_trials": 14},
             early_stopping={"type": "asha", "min_resource": 1, "reduction_factor": 2}),
    base_doc(method="grid", max_parallel=3, budget={}, parameters={"x": {"type": "int", "min": -3, "max": 5}},
             early_stopping={"type": "hyperband", "min_resource": 1, "max_resource": 9}),
], ids=["random-median", "bayes-asha", "grid-hyperband"])
@pytest.mark.parametrize("restart_after", [1, 5, 12])
async def test_a_controller_rebuilt_from_its_events_carries_on_as_if_never_stopped(
        doc: dict[str, Any], restart_after: int) -> None:
    _, straight_sim, straight = await _run(doc)

    sim, sink = SimulatedScheduler(steps=9), RecordingSink()
    controller = new_sweep(doc, sim, sink)
    await run_to_end(controller, sim, stop_after=restart_after)
    assert controller.status == "running"
    rebuilt = SweepController.rebuild("demo", list(sink.events), sequence=len(sink.events), jobs=sim, metrics=sim,
                                      sink=sink, clock=Clock())
    assert rebuilt.state == controller.state
    assert rebuilt.study.size == controller.study.size
    rounds = 0
    while rebuilt.status == "running":
        rounds += 1
        for job_id, status in sim.advance():
            await rebuilt.on_job_finished(job_id, status)
        await rebuilt.tick()
    assert sink.events == straight.events  # same trials, params, prunings, results
    assert len(sim.jobs) == len(straight_sim.jobs) == len(_of_type(sink, "sweep.trial_started"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000), method=st.sampled_from(["random", "bayes"]),
       rule=st.sampled_from([None, "median", "asha", "hyperband"]), parallel=st.integers(1, 4),
       restart_after=st.integers(0, 30))
def test_any_restart_point_gives_the_same_sweep(seed: int, method: str, rule: str | None, parallel: int,
                                                restart_after: int) -> None:
    doc = base_doc(method=method, seed=seed, max_parallel=parallel, budget={"max_trials": 8},
                   parameters={"x": {"type": "float", "min": -4, "max": 6}, "opt": {"values": ["adam", "sgd"]}})
    if rule is not None:
        doc["early_stopping"] = {"type": rule, "max_resource": 9} if rule == "hyperband" else {"type": rule}

    async def scenario() -> None:
        _, _, straight = await _run(doc)
        sim, sink = SimulatedScheduler(steps=9), RecordingSink()
        controller = new_sweep(doc, sim, sink)
        await run_to_end(controller, sim, stop_after=restart_after)
        controller = SweepController.rebuild("demo", list(sink.events), sequence=len(sink.events), jobs=sim,
                                             metrics=sim, sink=sink, clock=Clock())
        while controller.status == "running":
            for job_id, status in sim.advance():
                await controller.on_job_finished(job_id, status)
            await controller.tick()
        assert sink.events == straight.events

    asyncio.run(scenario())
