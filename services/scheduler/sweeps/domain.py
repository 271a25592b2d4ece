"""The sweep aggregate, pure: commands check the state and return one event; ``evolve_sweep``
folds an event into the state. No I/O here.

A sweep (aggregate ``sweep``, id = sweep id, in its project) moves running -> completed | stopped.
Its trials are scheduler jobs, each with its registry run (the "child runs"). Events:

- ``sweep.created``: the normalised spec;
- ``sweep.trial_started``: trial number, params, job and run ids, optuna's bookkeeping for the trial;
- ``sweep.trial_reported``: the intermediate values the pruner saw in one check (step, value);
- ``sweep.trial_pruned``: early stopping stopped the trial (its job is cancelled);
- ``sweep.trial_finished``: final value and state (complete, failed, cancelled);
- ``sweep.completed``: the budget or the grid is spent, the best trial named;
- ``sweep.stopped``: someone stopped it (running trials are then cancelled).

Metric curves live in the metrics service; a sweep records only the points its pruner was shown,
because a pruning decision must replay the same way when the study is rebuilt from the log.
"""

from __future__ import annotations

import math
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import Conflict, EventOutOfOrder, NotFound
from cairn.services.scheduler.sweeps.spec import SweepSpec

State = dict[str, Any] | None
FINAL_SWEEP = ("completed", "stopped")
TRIAL_DONE = ("complete", "pruned", "failed", "cancelled")


def create_sweep(state: State, *, sweep_id: str, spec: SweepSpec, created_at: str) -> Decision:
    if state is not None:
        return None  # a repeated create with the same id is the same sweep
    return "sweep.created", {"sweep_id": sweep_id, "name": spec.name, "created_at": created_at,
                             "spec": spec.model_dump(mode="json")}


def _sweep(state: State, sweep_id: str) -> dict[str, Any]:
    if state is None:
        raise NotFound(f"sweep {sweep_id!r} does not exist")
    return state


def stop_sweep(state: State, *, sweep_id: str, reason: str) -> Decision:
    sweep = _sweep(state, sweep_id)
    if sweep["status"] == "stopped":
        return None
    if sweep["status"] == "completed":
        raise Conflict(f"sweep {sweep_id!r} already completed ({sweep['reason']}); nothing to stop")
    return "sweep.stopped", {"reason": reason[:2000]}


def evolve_sweep(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "sweep.created":
        spec = data["spec"]
        return {"sweep_id": data["sweep_id"], "name": data["name"], "created_at": data["created_at"],
                "spec": spec, "status": "running", "reason": None, "trials": {},
                "best_trial": None}
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a sweep that does not exist: no sweep.created came before it")
    trials = state["trials"]
    if event_type == "sweep.trial_started":
        trials[str(data["number"])] = {
            "number": data["number"], "params": data["params"], "job_id": data.get("job_id"),
            "run_id": data.get("run_id"), "state": "running", "value": None, "step": None,
            "error": None}
    elif event_type == "sweep.trial_reported":
        trial = trials[str(data["number"])]
        step, value = data["points"][-1]
        trial["step"], trial["value"] = step, value
    elif event_type == "sweep.trial_pruned":
        trials[str(data["number"])].update(state="pruned", step=data["step"], value=data["value"])
    elif event_type == "sweep.trial_finished":
        trials[str(data["number"])].update(state=data["state"], value=data.get("value"),
                                           step=data.get("step"), error=data.get("error"))
        state["best_trial"] = _best_number(state)
    elif event_type in ("sweep.completed", "sweep.stopped"):
        state["status"] = "completed" if event_type == "sweep.completed" else "stopped"
        state["reason"] = data["reason"]
    return state


def evolve_sweep_record(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The command side's snapshot of a sweep (all that create and stop decide on): its status,
    kept small so the snapshot is not rewritten with every trial's details."""
    if event_type == "sweep.created":
        return {"sweep_id": data["sweep_id"], "status": "running", "reason": None}
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a sweep that does not exist: no sweep.created came before it")
    if event_type in ("sweep.completed", "sweep.stopped"):
        state = {**state, "status": "completed" if event_type == "sweep.completed" else "stopped",
                 "reason": data["reason"]}
    return state


def _best_number(state: dict[str, Any]) -> int | None:
    best = best_trial(state)
    return None if best is None else best["number"]


def best_trial(state: dict[str, Any]) -> dict[str, Any] | None:
    """The complete trial with the best final value (lowest number wins a tie)."""
    sign = 1.0 if state["spec"]["metric"]["goal"] == "minimize" else -1.0
    done = [t for t in state["trials"].values()
            if t["state"] == "complete" and isinstance(t["value"], (int, float)) and math.isfinite(t["value"])]
    if not done:
        return None
    return min(done, key=lambda t: (sign * t["value"], t["number"]))


def running_trials(state: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((t for t in state["trials"].values() if t["state"] == "running"), key=lambda t: t["number"])


def trial_counts(state: dict[str, Any]) -> dict[str, int]:
    counts = {"running": 0, **{s: 0 for s in TRIAL_DONE}}
    for trial in state["trials"].values():
        counts[trial["state"]] += 1
    return counts


def parallel_coordinates(state: dict[str, Any]) -> dict[str, Any]:
    """One row per trial (number, state, params, metric value) and one dimension per parameter,
    ready for a parallel-coordinates plot."""
    spec = state["spec"]
    metric = spec["metric"]
    dimensions = []
    for name, parameter in spec["parameters"].items():
        dimension: dict[str, Any] = {"name": name, "type": parameter["type"]}
        if parameter["type"] == "categorical":
            dimension["values"] = parameter["values"]
        else:
            dimension.update(min=parameter["min"], max=parameter["max"], log=parameter["log"])
        dimensions.append(dimension)
    rows = [{"trial": t["number"], "state": t["state"], "params": t["params"], metric["name"]: t["value"],
             "step": t["step"], "run_id": t["run_id"], "job_id": t["job_id"]}
            for t in sorted(state["trials"].values(), key=lambda t: t["number"])]
    return {"sweep_id": state["sweep_id"], "metric": metric["name"], "goal": metric["goal"],
            "dimensions": dimensions, "rows": rows}
