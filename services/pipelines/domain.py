"""The ``pipeline_run`` aggregate as pure functions (id = the run id, in the run's project):
commands check the state and return one event (type, data); ``evolve`` folds an event into the
state; ``next_actions`` says what the engine does next. No I/O here.

A step moves pending -> running -> succeeded | failed, or pending -> skipped | cached, or (an
approval) pending -> waiting_approval -> succeeded | failed. A job step that failed with retries
left is started again as attempt n+1. A step is ready when each of its needs succeeded, was a
cache hit, or was skipped because its own ``when:`` was false (a decision, not a failure: the
example pipeline skips the approval of a very good model and promotes it). A step that fails for
good skips what depends on it; the run finishes when nothing is pending, running or waiting.

Job ids are made from the run, step and attempt, so an engine that restarts and submits the same
step again gets the scheduler's "already exists" instead of a second job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.envelope import Event
from cairn.kernel.errors import Conflict, EventOutOfOrder, Forbidden, InvalidInput, NotFound
from cairn.pipelines.expr import ExpressionError, evaluate
from cairn.pipelines.spec import ROLES, Pipeline, Step
from cairn.services.pipelines.cache import CacheEntry, cache_key
from cairn.services.pipelines.gates import GateDecision

State = dict[str, Any] | None
TRIGGERS = ("push", "event", "schedule", "manual")
DONE = ("succeeded", "cached")
RETRYABLE = ("exit", "timeout", "lost", "error")
OUTCOMES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Action:
    """One thing the engine does next. ``event`` is the event to append for it; ``job`` is set
    when the step is a job to submit to the scheduler under ``job_id``; ``kind`` one of start,
    request_approval, cache_hit, skip, fail, cancel_job, finish."""

    kind: str
    step: str | None
    event: tuple[str, dict[str, Any]] | None
    job_id: str | None = None


def _run(state: State) -> dict[str, Any]:
    if state is None:
        raise NotFound("this pipeline run does not exist")
    return state


def _step_state(state: dict[str, Any], step: str) -> dict[str, Any]:
    if step not in state["steps"]:
        raise NotFound(f"pipeline {state['name']!r} has no step {step!r}; its steps: {', '.join(state['steps'])}",
                       details={"field": "step"})
    return state["steps"][step]


# --- commands ------------------------------------------------------------------------------------

def start_run(state: State, *, pipeline: Pipeline, params: Mapping[str, Any], trigger: Mapping[str, Any],
              inputs: Mapping[str, str], code_digest: str | None = None, environment_digest: str | None = None,
              no_cache: bool = False, code: Mapping[str, Any] | None = None,
              status: Mapping[str, Any] | None = None) -> Decision:
    """Start a run of ``pipeline`` with ``params`` over its defaults. ``inputs`` maps each dataset
    and model reference of the pipeline to the digest it resolved to when the run started;
    ``code`` is the code snapshot's record (digests, commit, branch, repo) and ``status`` where the
    run reports its state on the code host (``{url, repo, sha}``; the token is never in an event)."""
    if state is not None:
        raise Conflict("this pipeline run has started already")
    unknown = sorted(set(params) - set(pipeline.params))
    if unknown:
        raise InvalidInput(f"pipeline {pipeline.name!r} has no param {unknown[0]!r}; its params: "
                           f"{', '.join(sorted(pipeline.params)) or '(none)'}", details={"field": "params"})
    kind = trigger.get("kind")
    if kind not in TRIGGERS:
        raise InvalidInput(f"trigger kind must be one of {', '.join(TRIGGERS)}, not {kind!r}",
                           details={"field": "trigger.kind"})
    if kind == "manual" and not trigger.get("actor"):
        raise InvalidInput("a manual trigger names the actor who started it", details={"field": "trigger.actor"})
    if kind == "push" and not trigger.get("commit"):
        raise InvalidInput("a push trigger names the commit to run", details={"field": "trigger.commit"})
    wanted = sorted({str(ref) for step in pipeline.steps for ref in step.inputs.values() if ref.kind != "artifact"})
    missing = [ref for ref in wanted if ref not in inputs]
    if missing:
        raise InvalidInput(f"input {missing[0]} was not resolved to a digest", details={"field": "inputs"})
    return "pipeline_run.started", {
        "pipeline": pipeline.name, "digest": pipeline.digest(), "definition": pipeline.to_dict(),
        "params": {**pipeline.params, **params}, "trigger": dict(trigger), "inputs": dict(inputs),
        "code_digest": code_digest, "environment_digest": environment_digest, "no_cache": bool(no_cache),
        "code": dict(code) if code is not None else None, "status": dict(status) if status is not None else None}


def _running(state: State, step: str, attempt: int) -> dict[str, Any]:
    current = _step_state(_run(state), step)
    if current["state"] != "running" or current["attempt"] != attempt:
        raise Conflict(f"step {step!r} is {current['state']} at attempt {current['attempt']}: "
                       f"a report for attempt {attempt} is stale", details={"field": "attempt"})
    return current


def record_success(state: State, *, step: str, attempt: int, outputs: Mapping[str, Any],
                   metrics: Mapping[str, Any]) -> Decision:
    """A step's job (or the engine's own work for a special step) succeeded with these outputs
    (name -> digest) and metrics; every output the step declares must be there."""
    _running(state, step, attempt)
    declared = _run(state)["definition_steps"][step]["outputs"]
    missing = [name for name in declared if name not in outputs]
    if missing:
        raise InvalidInput(f"step {step!r} declares output {missing[0]!r} but did not produce it",
                           details={"field": "outputs"})
    return "step.succeeded", {"step": step, "attempt": attempt, "outputs": dict(outputs), "metrics": dict(metrics)}


def record_failure(state: State, *, step: str, attempt: int, reason: str, message: str) -> Decision:
    _running(state, step, attempt)
    if reason not in (*RETRYABLE, "cancelled"):
        raise InvalidInput(f"reason must be one of {', '.join(RETRYABLE)}, cancelled; not {reason!r}",
                           details={"field": "reason"})
    return "step.failed", {"step": step, "attempt": attempt, "reason": reason, "message": message[:8000]}


def record_gate(state: State, *, step: str, decision: GateDecision) -> Decision:
    current = _running(state, step, _step_state(_run(state), step)["attempt"])
    if current["kind"] != "gate":
        raise InvalidInput(f"step {step!r} is a {current['kind']} step, not a gate", details={"field": "step"})
    return ("gate.passed" if decision.passed else "gate.failed"), {
        "step": step, "comparisons": list(decision.comparisons), "message": decision.message[:8000]}


def _approval(state: State, step: str, actor: str, role: str) -> tuple[dict[str, Any], str]:
    current = _step_state(_run(state), step)
    if current["state"] != "waiting_approval":
        raise Conflict(f"step {step!r} is {current['state']}, not waiting for approval", details={"field": "step"})
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}", details={"field": "role"})
    required = current["required_role"]
    if ROLES.index(role) < ROLES.index(required):
        raise Forbidden(f"step {step!r} needs a {required} to decide; {actor!r} is a {role} on this project",
                        details={"required_role": required})
    return current, required


def grant_approval(state: State, *, step: str, actor: str, role: str, comment: str = "") -> Decision:
    """A person with at least the step's role approves; only while the step waits."""
    _, required = _approval(state, step, actor, role)
    return "approval.granted", {"step": step, "actor": actor, "role": role, "required_role": required,
                                "comment": comment[:2000]}


def reject_approval(state: State, *, step: str, actor: str, role: str, comment: str = "") -> Decision:
    _, required = _approval(state, step, actor, role)
    return "approval.rejected", {"step": step, "actor": actor, "role": role, "required_role": required,
                                 "comment": comment[:2000]}


def request_cancel(state: State, *, reason: str) -> Decision:
    """Ask the run to stop: pending steps are skipped, running jobs cancelled, then it finishes
    cancelled. A repeated request is a no-op; a finished run cannot be cancelled."""
    run = _run(state)
    if run["outcome"] is not None:
        raise Conflict(f"the run finished ({run['outcome']}); there is nothing to cancel")
    if run["cancel_requested"]:
        return None
    return "pipeline_run.cancel_requested", {"reason": reason[:2000]}


# --- state ---------------------------------------------------------------------------------------

def _new_step(step: dict[str, Any]) -> dict[str, Any]:
    return {"kind": step["kind"], "state": "pending", "attempt": 0, "job_id": None, "cache_key": None,
            "outputs": {}, "metrics": {}, "started_at": None, "finished_at": None, "reason": None,
            "message": None, "source_run": None, "required_role": None, "decided_by": None,
            "comparisons": None}


def evolve(state: State, event: Event) -> dict[str, Any]:
    """Fold one event into the run's state (timestamps are the events' own, so a replay rebuilds
    exactly the same state)."""
    kind, data, time = event.type, event.data, event.time
    if kind == "pipeline_run.started":
        definition = data["definition"]
        return {"run_id": event.aggregate_id, "name": data["pipeline"], "digest": data["digest"],
                "definition": definition, "definition_steps": {s["id"]: s for s in definition["steps"]},
                "params": data["params"], "trigger": data["trigger"], "inputs": data["inputs"],
                "code_digest": data["code_digest"], "environment_digest": data["environment_digest"],
                "no_cache": data["no_cache"], "code": data.get("code"), "status_target": data.get("status"),
                "started_at": time, "finished_at": None, "outcome": None,
                "cancel_requested": False, "cancel_reason": None,
                "steps": {s["id"]: _new_step(s) for s in definition["steps"]}}
    if state is None:
        raise EventOutOfOrder(f"{kind} for a pipeline run that does not exist: no pipeline_run.started came before it")
    if kind == "pipeline_run.cancel_requested":
        state["cancel_requested"], state["cancel_reason"] = True, data["reason"]
        return state
    if kind == "pipeline_run.finished":
        state["outcome"], state["finished_at"] = data["outcome"], time
        return state
    step = state["steps"].get(data["step"])
    if step is None:
        raise EventOutOfOrder(f"{kind} names step {data['step']!r}, which run {state['run_id']} does not have")
    if kind == "step.started":
        step.update(state="running", attempt=data["attempt"], job_id=data["job_id"], cache_key=data["cache_key"],
                    started_at=time, finished_at=None, reason=None, message=None)
    elif kind == "approval.requested":
        step.update(state="waiting_approval", attempt=1, cache_key=data["cache_key"], started_at=time,
                    required_role=data["role"])
    elif kind in ("step.succeeded", "step.failed", "step.skipped", "step.cached", "gate.passed", "gate.failed",
                  "approval.granted", "approval.rejected"):
        failed = kind in ("step.failed", "gate.failed", "approval.rejected")
        step["state"] = {"step.skipped": "skipped", "step.cached": "cached"}.get(
            kind, "failed" if failed else "succeeded")
        step["finished_at"] = time
        step["outputs"] = data.get("outputs", step["outputs"])
        step["metrics"] = data.get("metrics", step["metrics"])
        step["reason"] = data.get("reason", {"gate.failed": "gate", "approval.rejected": "rejected"}.get(kind))
        step["message"] = data.get("message", data.get("comment"))
        if kind == "step.cached":
            step.update(cache_key=data["cache_key"], source_run=data["source_run"])
        if kind.startswith("gate."):
            step["comparisons"] = data["comparisons"]
        if kind.startswith("approval."):
            step["decided_by"] = {"actor": data["actor"], "role": data["role"]}
    return state


# --- what next -----------------------------------------------------------------------------------

def job_id_for(run_id: str, step: str, attempt: int) -> str:
    return f"{run_id}-{step}-{attempt}"


def _failed_for_good(step: Step, current: dict[str, Any]) -> bool:
    if current["state"] != "failed":
        return False
    return not (step.kind == "job" and current["reason"] in RETRYABLE and current["attempt"] <= step.retries)


def _context(state: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    return {sid: {"metrics": s["metrics"], "outputs": s["outputs"]} for sid, s in state["steps"].items()
            if s["state"] in DONE}


def _input_digests(state: dict[str, Any], step: Step) -> dict[str, str]:
    digests: dict[str, str] = {}
    for name, ref in step.inputs.items():
        if ref.kind == "artifact":
            digests[name] = str(state["steps"][ref.step]["outputs"].get(ref.name))
        else:
            digests[name] = state["inputs"][str(ref)]
    for need in step.needs:  # a step's result depends on its needs', so their keys go in too
        digests[f"step:{need}"] = state["steps"][need]["cache_key"] or "skipped"
    return digests


def next_actions(state: State, pipeline: Pipeline, cache: Mapping[str, CacheEntry] | None = None) -> list[Action]:
    """What to do now, in the pipeline's order. ``cache`` maps cache keys to earlier successful
    steps (ignored when the run was started with ``no_cache``). Empty when there is nothing to do
    but wait (for jobs, gates, approvals)."""
    run = _run(state)
    if run["outcome"] is not None:
        return []
    steps = run["steps"]
    actions: list[Action] = []
    cancelling = run["cancel_requested"]
    broken = {sid for sid in pipeline.order if _failed_for_good(pipeline.step(sid), steps[sid])}
    for sid in pipeline.order:
        step, current = pipeline.step(sid), steps[sid]
        if cancelling and current["state"] in ("pending", "waiting_approval"):
            actions.append(Action("skip", sid, ("step.skipped", {"step": sid, "reason": "cancelled",
                                                                 "message": run["cancel_reason"] or "run cancelled"})))
            continue
        if cancelling and current["state"] == "running" and current["job_id"] is not None:
            actions.append(Action("cancel_job", sid, None, job_id=current["job_id"]))
            continue
        if cancelling:
            continue
        if current["state"] == "failed" and sid not in broken:  # retries left
            actions.append(_start(run, step, current["attempt"] + 1))
            continue
        if current["state"] != "pending":
            continue
        needs = [steps[n] for n in step.needs]
        upstream = [n for n in step.needs if n in broken or (steps[n]["state"] == "skipped"
                                                             and steps[n]["reason"] != "condition_false")]
        if upstream:
            actions.append(Action("skip", sid, ("step.skipped", {
                "step": sid, "reason": "upstream_failed", "message": f"{upstream[0]} did not succeed"})))
            broken.add(sid)
            continue
        if not all(n["state"] in DONE or (n["state"] == "skipped" and n["reason"] == "condition_false")
                   for n in needs):
            continue
        actions.append(_ready(run, step, cache))
    if not actions and not any(s["state"] in ("pending", "running", "waiting_approval") for s in steps.values()):
        failed = [sid for sid in pipeline.order if steps[sid]["state"] == "failed"]
        outcome = "cancelled" if cancelling else ("failed" if failed else "succeeded")
        message = (run["cancel_reason"] or "cancelled") if cancelling else (
            f"step {failed[0]} failed" if failed else "every step succeeded, was cached or skipped")
        actions.append(Action("finish", None, ("pipeline_run.finished",
                                               {"outcome": outcome, "failed_steps": failed, "message": message})))
    return actions


def _ready(run: dict[str, Any], step: Step, cache: Mapping[str, CacheEntry] | None) -> Action:
    if step.when is not None:
        try:
            holds = evaluate(step.when, run["params"], _context(run))
            if not isinstance(holds, bool):
                raise ExpressionError(f"when: gave {holds!r}, not true or false", 0)
        except ExpressionError as err:
            return Action("fail", step.id, ("step.failed", {
                "step": step.id, "attempt": 0, "reason": "condition",
                "message": f"when: could not be decided: {err.message}"}))
        if not holds:
            return Action("skip", step.id, ("step.skipped", {
                "step": step.id, "reason": "condition_false",
                "message": f"when: {run['definition_steps'][step.id]['when']} is false"}))
    key = cache_key(step, run["code_digest"], run["params"], _input_digests(run, step), run["environment_digest"])
    hit = None if run["no_cache"] or cache is None else cache.get(key)
    if hit is not None:
        return Action("cache_hit", step.id, ("step.cached", {
            "step": step.id, "cache_key": key, "outputs": dict(hit.outputs), "metrics": dict(hit.metrics),
            "source_run": hit.run_id}))
    if step.kind == "approval":
        role = step.special.role  # type: ignore[union-attr]
        return Action("request_approval", step.id, ("approval.requested", {
            "step": step.id, "role": role, "message": step.special.message, "cache_key": key}))  # type: ignore[union-attr]
    return _start(run, step, 1, key)


def _start(run: dict[str, Any], step: Step, attempt: int, key: str | None = None) -> Action:
    job_id = job_id_for(run["run_id"], step.id, attempt) if step.kind == "job" else None
    key = key or run["steps"][step.id]["cache_key"]
    return Action("start", step.id, ("step.started", {"step": step.id, "attempt": attempt, "kind": step.kind,
                                                      "job_id": job_id, "cache_key": key}), job_id=job_id)
