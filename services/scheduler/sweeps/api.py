"""Sweep HTTP API (an APIRouter the scheduler app includes): create, list, show (with the best
trial), the parallel-coordinates table, stop. Routes are thin: the spec module checks input, the
domain decides, the read model answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.envelope import utc_now
from cairn.kernel.errors import InvalidInput
from cairn.kernel.http import command_context
from cairn.kernel.identity import EDITOR, VIEWER, requires
from cairn.kernel.ids import ID_PATTERN, PROJECT_NAME_PATTERN, new_id
from cairn.kernel.service import Runtime, ServiceRuntime
from cairn.services.registry.project_check import project_exists_on_writes
from cairn.services.scheduler.sweeps import domain
from cairn.services.scheduler.sweeps.projection import SweepQueries
from cairn.services.scheduler.sweeps.spec import SweepSpec, parse_sweep_spec, trial_job_spec

router = APIRouter(dependencies=[Depends(project_exists_on_writes)])
Ctx = Annotated[CommandContext, Depends(command_context)]
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
SweepId = Annotated[str, Path(pattern=ID_PATTERN, description="sweep id")]
EXAMPLE = {"name": "lr-search", "method": "bayes", "seed": 1,
           "metric": {"name": "val_loss", "goal": "minimize"},
           "parameters": {"lr": {"type": "log_uniform", "min": 1e-5, "max": 1e-1},
                          "optimizer": {"values": ["adam", "sgd"]}},
           "max_parallel": 4, "budget": {"max_trials": 40},
           "early_stopping": {"type": "median", "warmup_trials": 5, "min_steps": 3},
           "job": {"command": "python train.py", "params": {"epochs": 20}}}


def _queries(rt: ServiceRuntime) -> SweepQueries:
    return SweepQueries(rt.store)


class SweepStop(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="stopped by request", max_length=2000)


def check_job_template(spec: SweepSpec) -> None:
    """Check the job template the way the scheduler checks a job, with a sample trial's params,
    so a sweep whose every trial would be refused is refused at once."""
    try:
        from cairn.services.scheduler.spec import parse_spec as parse_job_spec
    except ImportError:  # the sweeps package used without the scheduler (its own tests)
        return
    sample = {name: p.sample_value() for name, p in spec.parameters.items()}
    try:
        parse_job_spec(trial_job_spec(spec, 0, sample))
    except InvalidInput as err:
        raise InvalidInput(f"job.{err.message}", details={"field": f"job.{err.details.get('field', '')}"}) from None


@router.post("/projects/{project}/sweeps", status_code=201, tags=["sweeps"], **requires(EDITOR))
async def create_sweep(project: ProjectName, rt: Runtime, ctx: Ctx,
                       body: Annotated[dict[str, Any], Body(examples=[EXAMPLE])]) -> dict[str, Any]:
    """Create a sweep from its spec (see docs/sweeps.md); the scheduler starts its trials."""
    spec = parse_sweep_spec(body, project=project)
    check_job_template(spec)
    sweep_id = new_id()
    outcome = await rt.commands.execute(
        ctx, project=project, aggregate="sweep", aggregate_id=sweep_id,
        decide=lambda s: domain.create_sweep(s, sweep_id=sweep_id, spec=spec, created_at=utc_now()))
    return _show(rt, project, outcome.aggregate_id)


@router.get("/projects/{project}/sweeps", tags=["sweeps"], **requires(VIEWER))
def list_sweeps(project: ProjectName, rt: Runtime,
                status: Literal["running", "completed", "stopped"] | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                after: Annotated[int | None, Query(ge=0, description="created_seq of the previous page's last")] = None
                ) -> dict[str, Any]:
    """The project's sweeps, newest first, with trial counts and the best trial so far."""
    sweeps = _queries(rt).sweeps(project, status=status, limit=limit, after=after)
    return {"sweeps": sweeps, "next_after": sweeps[-1]["created_seq"] if len(sweeps) == limit else None}


def _show(rt: ServiceRuntime, project: str, sweep_id: str) -> dict[str, Any]:
    return _queries(rt).get(project, sweep_id)


@router.get("/projects/{project}/sweeps/{sweep_id}", tags=["sweeps"], **requires(VIEWER))
def get_sweep(project: ProjectName, sweep_id: SweepId, rt: Runtime) -> dict[str, Any]:
    """A sweep: spec, status, trial counts, every trial and the best one."""
    return _show(rt, project, sweep_id)


@router.get("/projects/{project}/sweeps/{sweep_id}/table", tags=["sweeps"], **requires(VIEWER))
def sweep_table(project: ProjectName, sweep_id: SweepId, rt: Runtime) -> dict[str, Any]:
    """One row per trial (params, metric value, state) and one dimension per parameter: the
    input of a parallel-coordinates plot."""
    return _queries(rt).table(project, sweep_id)


@router.post("/projects/{project}/sweeps/{sweep_id}/stop", tags=["sweeps"], **requires(EDITOR))
async def stop_sweep(project: ProjectName, sweep_id: SweepId, rt: Runtime, ctx: Ctx,
                     body: SweepStop | None = None) -> dict[str, Any]:
    """Stop a sweep: no new trials; its running trials' jobs are cancelled."""
    reason = (body or SweepStop()).reason
    await rt.commands.execute(ctx, project=project, aggregate="sweep", aggregate_id=sweep_id,
                              decide=lambda s: domain.stop_sweep(s, sweep_id=sweep_id, reason=reason))
    return _show(rt, project, sweep_id)
