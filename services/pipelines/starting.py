"""Starting a pipeline run: the one function every trigger calls (the API's manual start, a push,
an event, a schedule), so that every run is started the same way: inputs resolved to digests at
the start (a run reads exactly what was there when it began), the pipeline's concurrency policy
applied, then ``pipeline_run.started`` appended. The engine does the rest from the log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.ids import new_id
from cairn.kernel.service import ServiceRuntime
from cairn.pipelines.spec import Pipeline
from cairn.services.pipelines import domain
from cairn.services.pipelines.gates import decide_concurrency
from cairn.services.pipelines.store import PipelinesStore


def resolve_inputs(store: PipelinesStore, project: str, pipeline: Pipeline) -> dict[str, str]:
    """Every ``dataset:``/``model:`` input of the pipeline -> the digest it names now (a dataset
    version's manifest, a model version's artifact). An unknown one is an ``InvalidInput`` naming
    the reference and the step that reads it."""
    resolved: dict[str, str] = {}
    for step in pipeline.steps:
        for ref in step.inputs.values():
            text = str(ref)
            if ref.kind == "artifact" or text in resolved:
                continue
            try:
                if ref.kind == "dataset":
                    _, resolved[text] = store.dataset_digest(project, ref.name, ref.version)
                else:
                    _, resolved[text] = store.model_digest(project, ref.name, ref.version, ref.alias)
            except NotFound as err:
                raise InvalidInput(f"step {step.id!r} reads {text}, which cannot be resolved: {err.message}",
                                   details={"field": "inputs", "ref": text, "step": step.id}) from None
    return resolved


def code_digest_of(code: Mapping[str, Any] | None) -> str | None:
    """The code snapshot's digest for caching: the tree's when known (the same files give the
    same digest whatever archive carried them), else the archive's."""
    if not code:
        return None
    return code.get("tree_digest") or code.get("archive_digest") or None


def _store(runtime: ServiceRuntime) -> PipelinesStore:
    store = runtime.store
    assert isinstance(store, PipelinesStore)
    return store


def _side_ctx(ctx: CommandContext, suffix: str) -> CommandContext:
    """The request's context for another command it causes (its own idempotency key, if any)."""
    key = f"{ctx.idempotency_key}:{suffix}" if ctx.idempotency_key else None
    return replace(ctx, idempotency_key=key)


async def start_pipeline_run(runtime: ServiceRuntime, ctx: CommandContext, *, project: str, pipeline: Pipeline,
                             params: Mapping[str, Any], trigger: Mapping[str, Any],
                             code: Mapping[str, Any] | None = None, no_cache: bool = False,
                             status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Start a run of ``pipeline`` and return its view, or ``{"skipped": true, "reason"}`` when
    the pipeline's ``skip`` policy keeps it from starting (nothing is appended then).

    ``queue``: the run starts with ``trigger.queued_behind`` naming the runs in progress, and the
    engine starts none of its steps until they finish. ``cancel-older``: those runs get
    ``pipeline_run.cancel_requested`` once the new run is known to be valid."""
    store = _store(runtime)
    earlier = runtime.commands.remembered(ctx, project)
    if earlier is not None and earlier.type == "pipeline_run.started":
        return store.run_view(project, earlier.aggregate_id)  # a retried request: nothing again
    inputs = resolve_inputs(store, project, pipeline)
    code_digest = code_digest_of(code)
    args: dict[str, Any] = {"pipeline": pipeline, "params": dict(params), "inputs": inputs,
                            "code_digest": code_digest, "environment_digest": None, "no_cache": no_cache,
                            "code": code, "status": status}
    domain.start_run(None, trigger=trigger, **args)  # a bad param or trigger changes nothing below
    in_progress = store.in_progress(project, pipeline.name)
    decision = decide_concurrency(pipeline.concurrency, in_progress)
    run_trigger = dict(trigger)
    if decision.wait_for:
        run_trigger["queued_behind"] = list(decision.wait_for)
    elif not decision.start:
        return {"skipped": True, "reason": decision.reason, "pipeline": pipeline.name, "in_progress": in_progress}
    for older in decision.cancel:
        await runtime.commands.execute(
            _side_ctx(ctx, f"cancel:{older}"), project=project, aggregate="pipeline_run", aggregate_id=older,
            decide=lambda state: None if state is None or state["outcome"] is not None else domain.request_cancel(
                state, reason=f"cancelled by a newer run of {pipeline.name} (concurrency: cancel-older)"))
    outcome = await runtime.commands.execute(
        ctx, project=project, aggregate="pipeline_run", aggregate_id=new_id(),
        decide=lambda state: domain.start_run(state, trigger=run_trigger, **args))
    return store.run_view(project, outcome.aggregate_id)
