"""Pipelines HTTP API: start a run (from pipeline text or a registered pipeline), list and show
runs (as JSON or drawn), a run's events and its jobs' logs, cancel, and decide approvals. Reading
needs VIEWER, starting and cancelling EDITOR, in the route's project; an approval route is open to
viewers and the domain checks the caller's role against the step's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import Conflict, InvalidInput, NotFound, Unavailable
from cairn.kernel.http import command_context
from cairn.kernel.identity import EDITOR, VIEWER, caller_of, requires
from cairn.kernel.ids import ID_PATTERN, PROJECT_NAME_PATTERN
from cairn.kernel.service import Runtime, ServiceRuntime
from cairn.pipelines.render import render_dot, render_mermaid, render_text
from cairn.pipelines.spec import Pipeline
from cairn.pipelines.validate import load_pipeline
from cairn.services.pipelines import domain
from cairn.services.pipelines.starting import start_pipeline_run
from cairn.services.pipelines.store import RUN_STATUSES, PipelinesStore, pipeline_of

router = APIRouter(prefix="/projects/{project}", tags=["pipelines"])
Ctx = Annotated[CommandContext, Depends(command_context)]
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
RunId = Annotated[str, Path(pattern=ID_PATTERN, description="the pipeline run's id")]
StepId = Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$", description="a step id")]
MAX_PIPELINE_TEXT = 1 << 20
_RENDER = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}


def _store(rt: ServiceRuntime) -> PipelinesStore:
    store = rt.store
    assert isinstance(store, PipelinesStore)
    return store


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunStart(Strict):
    pipeline: str | None = Field(default=None, max_length=MAX_PIPELINE_TEXT, description="pipeline YAML text")
    definition: str | None = Field(default=None, max_length=64, description="a registered pipeline's name")
    params: dict[str, Any] = Field(default_factory=dict, description="overrides of the pipeline's params")
    no_cache: bool = False
    code: dict[str, Any] | None = Field(default=None, description="the code snapshot: archive_digest, tree_digest, "
                                                                   "commit, branch, repo")


class Reason(Strict):
    reason: str = Field(default="", max_length=2000)


class Comment(Strict):
    comment: str = Field(default="", max_length=2000)


_CODE_FIELDS = ("archive_digest", "tree_digest", "commit", "branch", "repo")


def _pipeline_for(store: PipelinesStore, project: str, body: RunStart) -> tuple[Pipeline, dict[str, Any]]:
    """The pipeline to run by hand and its params: the text sent, or a registered definition
    (its registered param overrides under the request's own)."""
    if (body.pipeline is None) == (body.definition is None):
        raise InvalidInput("give either pipeline (the YAML text) or definition (a registered pipeline's name)",
                           details={"field": "pipeline"})
    if body.pipeline is not None:
        return load_pipeline(body.pipeline), dict(body.params)  # PipelineError: 422 with details.problems
    assert body.definition is not None
    registered = store.definition(project, body.definition)
    if registered is None:
        raise NotFound(f"no pipeline {body.definition!r} is registered in project {project!r} "
                       "(cairn pipelines definitions list)", details={"field": "definition"})
    pipeline = load_pipeline(registered["definition"])
    if not pipeline.on.manual:
        raise Conflict(f"pipeline {pipeline.name!r} says on.manual: false; it starts only on its triggers",
                       details={"field": "definition"})
    return pipeline, {**(registered.get("params") or {}), **body.params}


def _code(code: dict[str, Any] | None) -> dict[str, Any] | None:
    if code is None:
        return None
    unknown = sorted(set(code) - set(_CODE_FIELDS))
    if unknown:
        raise InvalidInput(f"code has no field {unknown[0]!r}; its fields: {', '.join(_CODE_FIELDS)}",
                           details={"field": f"code.{unknown[0]}"})
    if not (code.get("archive_digest") or code.get("tree_digest")):
        raise InvalidInput("code needs archive_digest or tree_digest", details={"field": "code"})
    for name, value in code.items():
        if value is not None and (not isinstance(value, str) or len(value) > 1024):
            raise InvalidInput(f"code.{name} must be text of at most 1024 characters", details={"field": f"code.{name}"})
    return {name: code.get(name) for name in _CODE_FIELDS}


@router.post("/runs", status_code=201, **requires(EDITOR))
async def start_run(project: ProjectName, body: RunStart, rt: Runtime, ctx: Ctx, response: Response) -> dict[str, Any]:
    """Start a run by hand. 201 with the run's view; 200 ``{"skipped": true}`` when the pipeline's
    ``skip`` concurrency keeps it from starting."""
    store = _store(rt)
    pipeline, params = _pipeline_for(store, project, body)
    started = await start_pipeline_run(rt, ctx, project=project, pipeline=pipeline, params=params,
                                       trigger={"kind": "manual", "actor": ctx.actor}, code=_code(body.code),
                                       no_cache=body.no_cache)
    if started.get("skipped"):
        response.status_code = 200
    return started


@router.get("/runs", **requires(VIEWER))
async def list_runs(project: ProjectName, rt: Runtime, pipeline: Annotated[str | None, Query(max_length=64)] = None,
                    status: Annotated[str | None, Query()] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Runs newest first, by pipeline and status (running, succeeded, failed, cancelled)."""
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}",
                           details={"field": "status"})
    return {"runs": _store(rt).runs(project, pipeline=pipeline, status=status, limit=limit)}


@router.get("/runs/{run_id}", response_model=None, **requires(VIEWER))
async def show_run(project: ProjectName, run_id: RunId, rt: Runtime,
                   format: Literal["json", "text", "mermaid", "dot"] = "json") -> dict[str, Any] | PlainTextResponse:
    """The run's view; ``format=text|mermaid|dot`` draws its DAG with each step's state."""
    store = _store(rt)
    view = store.run_view(project, run_id)
    if format == "json":
        return view
    _, state = store.run_state(project, run_id)
    assert state is not None
    states = {step["id"]: step["state"] for step in view["steps"]}
    return PlainTextResponse(_RENDER[format](pipeline_of(state), states))


@router.get("/runs/{run_id}/events", **requires(VIEWER))
async def run_events(project: ProjectName, run_id: RunId, rt: Runtime) -> dict[str, Any]:
    """The run's events in log order."""
    return {"events": _store(rt).run_events(project, run_id)}


@router.get("/runs/{run_id}/logs", response_class=PlainTextResponse, **requires(VIEWER))
async def run_logs(project: ProjectName, run_id: RunId, rt: Runtime,
                   step: Annotated[str | None, Query(max_length=64)] = None) -> PlainTextResponse:
    """A job step's output (its current attempt), read from the scheduler; without ``step``, every
    job step that has a job, in the pipeline's order, each under a header line."""
    view = _store(rt).run_view(project, run_id)
    steps = [s for s in view["steps"] if s["kind"] == "job"]
    if step is not None:
        chosen = [s for s in view["steps"] if s["id"] == step]
        if not chosen:
            raise NotFound(f"pipeline run {run_id} has no step {step!r}; its steps: "
                           f"{', '.join(s['id'] for s in view['steps'])}", details={"field": "step"})
        if chosen[0]["kind"] != "job":
            raise InvalidInput(f"step {step!r} is a {chosen[0]['kind']} step: only job steps have logs",
                               details={"field": "step"})
        if chosen[0]["job_id"] is None:
            raise NotFound(f"step {step!r} has not started a job yet", details={"field": "step"})
        return PlainTextResponse(await _job_logs(rt, project, chosen[0]["job_id"]))
    parts = []
    for s in steps:
        if s["job_id"] is not None:
            parts.append(f"==> {s['id']} (attempt {s['attempt']}, job {s['job_id']}) <==\n")
            parts.append(await _job_logs(rt, project, s["job_id"]))
    return PlainTextResponse("".join(parts))


async def _job_logs(rt: ServiceRuntime, project: str, job_id: str) -> str:
    url = getattr(rt.settings, "scheduler_url", "")
    if not url:
        raise Unavailable("this pipelines service has no scheduler URL (CAIRN_SCHEDULER_URL): logs cannot be read")
    try:
        async with httpx.AsyncClient(timeout=30.0) as http:
            resp = await http.get(f"{url}/projects/{project}/jobs/{job_id}/logs", headers=rt.signer.internal())
    except httpx.HTTPError as err:
        raise Unavailable(f"the scheduler could not be reached for job {job_id}'s logs: {err!r}") from None
    if resp.status_code == 404:
        return f"(job {job_id} is not known to the scheduler yet)\n"
    if resp.status_code >= 400:
        raise Unavailable(f"the scheduler answered {resp.status_code} for job {job_id}'s logs")
    return resp.text


@router.post("/runs/{run_id}/cancel", **requires(EDITOR))
async def cancel_run(project: ProjectName, run_id: RunId, rt: Runtime, ctx: Ctx,
                     body: Reason | None = None) -> dict[str, Any]:
    """Ask the run to stop (``pipeline_run.cancel_requested``); the engine skips what is pending,
    cancels running jobs and finishes the run cancelled. Asking again changes nothing."""
    store = _store(rt)
    store.run_view(project, run_id)  # NotFound names the run
    reason = (body.reason if body else "") or f"cancelled by {ctx.actor}"
    await rt.commands.execute(ctx, project=project, aggregate="pipeline_run", aggregate_id=run_id,
                              decide=lambda state: domain.request_cancel(state, reason=reason))
    return store.run_view(project, run_id)


async def _decide(request: Request, project: str, run_id: str, step: str, rt: ServiceRuntime, ctx: CommandContext,
                  comment: str, grant: bool) -> dict[str, Any]:
    store = _store(rt)
    store.run_view(project, run_id)
    caller = caller_of(request)
    role = caller.role_in(project) or "viewer"
    command = domain.grant_approval if grant else domain.reject_approval
    await rt.commands.execute(ctx, project=project, aggregate="pipeline_run", aggregate_id=run_id,
                              decide=lambda state: command(state, step=step, actor=ctx.actor, role=role,
                                                           comment=comment))
    return store.run_view(project, run_id)


@router.post("/runs/{run_id}/steps/{step}/approve", **requires(VIEWER))
async def approve_step(project: ProjectName, run_id: RunId, step: StepId, request: Request, rt: Runtime, ctx: Ctx,
                       body: Comment | None = None) -> dict[str, Any]:
    """Approve a waiting approval step: the caller's role in the project must be at least the
    step's (403 naming both otherwise)."""
    return await _decide(request, project, run_id, step, rt, ctx, body.comment if body else "", True)


@router.post("/runs/{run_id}/steps/{step}/reject", **requires(VIEWER))
async def reject_step(project: ProjectName, run_id: RunId, step: StepId, request: Request, rt: Runtime, ctx: Ctx,
                      body: Comment | None = None) -> dict[str, Any]:
    """Reject a waiting approval step (the run then fails); the same role rule as approving."""
    return await _decide(request, project, run_id, step, rt, ctx, body.comment if body else "", False)
