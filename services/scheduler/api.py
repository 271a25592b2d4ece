"""Scheduler routes: jobs per project (submit, list, show, logs, cancel) and agents (register,
list). Routes are thin: specs are checked in spec.py, decisions made in domain.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput
from cairn.kernel.http import command_context
from cairn.kernel.identity import AGENT, EDITOR, SIGNED_IN, VIEWER, requires
from cairn.kernel.ids import FREE_NAME_PATTERN, check_project_name, check_token
from cairn.protocol import LOGS_STREAM, log_subject
from cairn.services.registry.project_check import project_exists_on_writes
from cairn.services.scheduler import domain
from cairn.services.scheduler.core import (
    HEARTBEAT_SUBJECT,
    REPORT_SUBJECT,
    SchedulerCore,
    agent_subject,
)
from cairn.services.scheduler.logs import log_chunks
from cairn.services.scheduler.store import SchedulerStore

router = APIRouter(dependencies=[Depends(project_exists_on_writes)])
Ctx = Annotated[CommandContext, Depends(command_context)]


async def _core(request: Request) -> SchedulerCore:
    return request.app.state.core


async def _store(request: Request) -> SchedulerStore:
    return request.app.state.runtime.store


async def _project(project: str) -> str:
    return check_project_name(project)


Core = Annotated[SchedulerCore, Depends(_core)]
Store = Annotated[SchedulerStore, Depends(_store)]
ProjectName = Annotated[str, Depends(_project)]


@router.post("/projects/{project}/jobs", status_code=201, tags=["jobs"], **requires(EDITOR))
async def submit_job(project: ProjectName, core: Core, store: Store, ctx: Ctx,
                     spec: Annotated[dict[str, Any], Body(description="the job spec (see docs/scheduler.md)")]
                     ) -> dict[str, Any]:
    """Submit a job: creates its run in the registry (scheduled), then queues the job. An optional
    ``run_tags`` mapping (string -> string) is set on the job's run."""
    spec = dict(spec)
    tags = spec.pop("run_tags", None) or {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InvalidInput("run_tags must map tag names to strings, e.g. {'team': 'vision'}")
    job = store.job(project, await core.submit(ctx, project, spec, tags=tags))
    return core.explain_waiting([job])[0]


@router.get("/projects/{project}/jobs", tags=["jobs"], **requires(VIEWER))
def list_jobs(project: ProjectName, store: Store, core: Core,
              status: Annotated[str | None, Query(max_length=32)] = None,
              queue: Annotated[str | None, Query(max_length=64)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """A project's jobs, newest first; a queued job's ``reason`` says why it waits."""
    return {"jobs": core.explain_waiting(store.jobs(project, status=status, queue=queue, limit=limit))}


@router.get("/projects/{project}/jobs/{job_id}", tags=["jobs"], **requires(VIEWER))
def get_job(project: ProjectName, job_id: str, store: Store, core: Core) -> dict[str, Any]:
    """A job with its spec, current attempt, ranks and event history; while it is queued,
    ``reason`` says why it waits and ``unschedulable`` whether any registered agent could run it."""
    return core.explain_waiting([store.job(project, check_token(job_id, "job id"))])[0]


@router.post("/projects/{project}/jobs/{job_id}/cancel", tags=["jobs"], **requires(EDITOR))
async def cancel_job(project: ProjectName, job_id: str, core: Core, store: Store, ctx: Ctx) -> dict[str, Any]:
    """Cancel: a queued job ends at once; a running one is stopped (SIGTERM, then SIGKILL)."""
    store.job(project, check_token(job_id, "job id"))
    await core.cancel(ctx, project, job_id)
    return store.job(project, job_id)


@router.get("/projects/{project}/jobs/{job_id}/logs", tags=["jobs"], **requires(VIEWER))
async def job_logs(project: ProjectName, job_id: str, request: Request, store: Store,
                   attempt: Annotated[int | None, Query(ge=1)] = None,
                   follow: bool = False) -> StreamingResponse:
    """The output of an attempt (default: the current one), stdout and stderr interleaved;
    ``follow=true`` streams it live until the attempt ends."""
    job = store.job(project, check_token(job_id, "job id"))
    which = attempt or job["attempt"]

    def finished() -> bool:
        now = store.job_by_id(job_id)
        return now is None or now["status"] in domain.FINAL or now["attempt"] != which

    nc = request.app.state.runtime.log.nc
    chunks = log_chunks(nc, log_subject(project, job_id, which), follow=follow, writers=job["nodes"],
                        finished=finished)
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8",
                             headers={"Cache-Control": "no-store", "X-Cairn-Attempt": str(which)})


# --- agents ----------------------------------------------------------------------------------------

class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: float = Field(ge=0, le=100000)
    memory_mib: int = Field(ge=0)
    gpus: int = Field(default=0, ge=0, le=1024)
    gpu_types: list[str] = Field(default_factory=list, max_length=1024)


class AgentRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=128)
    name: str = Field(pattern=FREE_NAME_PATTERN)
    queue: str = Field(default="default", max_length=63)
    host: str = Field(pattern=FREE_NAME_PATTERN)
    capacity: Capacity


@router.post("/agents", tags=["agents"], **requires(AGENT))
async def register_agent(body: AgentRegister, request: Request, core: Core, store: Store, ctx: Ctx) -> dict[str, Any]:
    """An agent announces itself (needs a site-admin or service-account token); the answer says
    where to listen for assignments, how often to send heartbeats, and the NATS user to connect
    as (``nats_credentials``; null when NATS takes connections without credentials)."""
    check_token(body.agent_id, "agent_id")
    check_project_name(body.queue)
    capacity = body.capacity.model_dump()
    await core.execute(ctx, domain.SITE, "agent", body.agent_id, lambda s: domain.register_agent(
        s, agent_id=body.agent_id, name=body.name, queue=body.queue, host=body.host, capacity=capacity))
    core.renew(body.agent_id)
    await core.resend_missing(body.agent_id, [], min_age_s=0.0)
    settings = request.app.state.settings
    nats_credentials = request.app.state.agent_nats_credentials
    return {"agent": store.agent(body.agent_id), "nats_url": settings.scheduler_agent_nats_url or settings.nats_url,
            "nats_credentials": nats_credentials.to_dict() if nats_credentials else None,
            "subject": agent_subject(body.agent_id), "report_subject": REPORT_SUBJECT,
            "heartbeat_subject": HEARTBEAT_SUBJECT, "logs_stream": LOGS_STREAM,
            "lease_s": core.lease_s, "heartbeat_s": settings.scheduler_heartbeat_s}


@router.get("/agents", tags=["agents"], **requires(SIGNED_IN))
def list_agents(store: Store, core: Core, include_lost: bool = False) -> dict[str, Any]:
    live = core.live_agents()
    agents = store.agents(include_lost=include_lost)
    for agent in agents:
        agent["live"] = agent["id"] in live
    return {"agents": agents}
