"""Deployments HTTP API: thin routes over the domain (commands) and the read model (queries).

Every route that changes a deployment declares EDITOR; deploying to, or changing a deployment in,
a protected environment (``prod`` unless unprotected, or any environment marked protected) also
needs ADMIN, checked in the handler with the same helper the declaration uses. Replica reports
need only EDITOR (a job token of the project): replicas report, people deploy."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext, Decide
from cairn.kernel.http import command_context
from cairn.kernel.identity import ADMIN, EDITOR, VIEWER, caller_of, check_requirement, requires
from cairn.kernel.ids import ALIAS, ID_PATTERN, PROJECT_NAME_PATTERN, field_pattern
from cairn.kernel.service import Runtime, ServiceRuntime
from cairn.services.deployments import domain
from cairn.services.deployments.store import DeploymentsStore
from cairn.serving.inference_records import traffic

log = logging.getLogger(__name__)

router = APIRouter(tags=["deployments"])
Ctx = Annotated[CommandContext, Depends(command_context)]
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
# deployment and environment names are NATS subject tokens and replica-set names: like projects
DeploymentName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="deployment name")]
EnvName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="environment name")]
ReplicaId = Annotated[str, Path(pattern=ID_PATTERN, description="the replica's job id")]
BASE = "/projects/{project}/deployments"
WINDOW_S = 60.0  # the list's traffic figures cover the last minute of the inference log


def _store(rt: ServiceRuntime) -> DeploymentsStore:
    store = rt.store
    assert isinstance(store, DeploymentsStore)
    return store


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Batching(Strict):
    max_batch: int = Field(ge=1, le=4096)
    max_wait_ms: float = Field(ge=0, le=10_000)


class DeploymentCreate(Strict):
    name: str = Field(pattern=PROJECT_NAME_PATTERN, examples=["fraud"])
    environment: str = Field(pattern=PROJECT_NAME_PATTERN, examples=["prod"])
    model: str = Field(min_length=1, max_length=250, description="the registered model's name")
    follows: str | None = Field(default=None, pattern=field_pattern(ALIAS), description="an alias to follow")
    version: int | None = Field(default=None, ge=1, description="a version to pin (instead of follows)")
    replicas: int = Field(default=1, ge=0, le=domain.MAX_REPLICAS)
    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="share of requests logged")
    batching: Batching | None = None
    public: bool = False


class VersionChange(Strict):
    version: int = Field(ge=1)


class Scale(Strict):
    replicas: int = Field(ge=0, le=domain.MAX_REPLICAS)


class Canary(Strict):
    version: int = Field(ge=1)
    percent: float = Field(gt=0, lt=100)


class Shadow(Strict):
    version: int = Field(ge=1)


class TrafficSplit(Strict):
    canary: Canary | None = None
    shadow: Shadow | None = None


class ReplicaReport(Strict):
    url: str = Field(max_length=2048)
    version: int = Field(ge=0)
    state: str = Field(pattern="^(started|stopped|failed)$")
    reason: str = Field(default="", max_length=8000)
    managed: bool = False  # a job of the deployment's replica set (CAIRN_REPLICA_SET was set)


async def _caught_up(rt: ServiceRuntime) -> None:
    """See every event in the log so far (a model registered or an alias set just now)."""
    await rt.runner.wait_for(await rt.log.last_sequence())


def _require_env_role(request: Request, rt: ServiceRuntime, project: str, environment: str) -> None:
    if _store(rt).protected(project, environment):
        check_requirement(caller_of(request), ADMIN, project)


def _live_state(rt: ServiceRuntime, project: str, name: str) -> dict[str, Any]:
    return domain.live(_store(rt).state(project, name)[1], name)


async def _deployment_cmd(rt: ServiceRuntime, ctx: CommandContext, project: str, name: str,
                          decide: Decide) -> dict[str, Any]:
    await rt.commands.execute(ctx, project=project, aggregate="deployment", aggregate_id=name, decide=decide)
    return _store(rt).config(project, name)


async def _changing(request: Request, rt: ServiceRuntime, project: str, name: str) -> dict[str, Any]:
    """The live deployment a change is about, after checking the caller may change it."""
    await rt.commands.settled()
    state = _live_state(rt, project, name)
    _require_env_role(request, rt, project, state["environment"])
    return state


@router.post(BASE, status_code=201, **requires(EDITOR))
async def create_deployment(project: ProjectName, body: DeploymentCreate, request: Request, rt: Runtime,
                            ctx: Ctx) -> dict[str, Any]:
    """Deploy a registered model: following an alias (moves when the alias moves) or pinned."""
    _require_env_role(request, rt, project, body.environment)
    await _caught_up(rt)
    model = _store(rt).model_ref(project, body.model, body.follows)
    batching = body.batching.model_dump() if body.batching else None
    return await _deployment_cmd(rt, ctx, project, body.name, lambda s: domain.create_deployment(
        s, name=body.name, environment=body.environment, model=model, follows=body.follows,
        version=body.version, replicas=body.replicas, sample_rate=body.sample_rate, batching=batching,
        public=body.public))


async def _last_minute(rt: ServiceRuntime, project: str, name: str, sample_rate: float) -> dict[str, Any]:
    if sample_rate <= 0:
        return {"requests_per_s": None, "error_rate": None}
    try:
        seen = await traffic(rt.log.nc, project, name, WINDOW_S)
    except Exception as err:  # noqa: BLE001 - the list answers without its traffic figures
        log.warning("deployment=%s/%s no traffic figures: %r", project, name, err)
        return {"requests_per_s": None, "error_rate": None}
    if not seen["requests"]:
        return {"requests_per_s": 0.0, "error_rate": None}
    return {"requests_per_s": round(seen["requests"] / sample_rate / WINDOW_S, 3),
            "error_rate": round(seen["errors"] / seen["requests"], 4)}


@router.get(BASE, **requires(VIEWER))
async def list_deployments(project: ProjectName, rt: Runtime) -> dict[str, Any]:
    """Deployments by environment: version, the run and datasets it came from, replicas healthy
    and total, and from the inference log's last minute ``requests_per_s`` (sampled requests
    scaled by the sample rate) and ``error_rate`` (null when nothing was sampled)."""
    store = _store(rt)
    rows = []
    for name in await asyncio.to_thread(store.names, project):
        seq, state = store.state(project, name)
        if state is None or state["deleted"]:
            continue
        healthy = sum(1 for r in state["replicas_seen"].values() if r["state"] == "started")
        rows.append({"name": name, "environment": state["environment"], "model": state["model"],
                     "follows": state["follows"], "version": state["version"],
                     **store.provenance(state["model_id"], state["version"]),
                     "replicas": {"healthy": healthy, "total": state["replicas"]},
                     "traffic": state["traffic"], **await _last_minute(rt, project, name, state["sample_rate"]),
                     "seq": seq})
    by_env: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_env.setdefault(row["environment"], []).append(row)
    return {"deployments": rows, "environments": by_env}


@router.get(BASE + "/{name}", **requires(VIEWER))
async def get_deployment(project: ProjectName, name: DeploymentName, rt: Runtime) -> dict[str, Any]:
    """The deployment's configuration, as replicas read it (``seq`` changes when anything does)."""
    return _store(rt).config(project, name)


@router.get(BASE + "/{name}/replicas", **requires(VIEWER))
async def get_replicas(project: ProjectName, name: DeploymentName, rt: Runtime) -> dict[str, Any]:
    """What each replica last reported."""
    state = _live_state(rt, project, name)
    return {"replicas": [{"replica_id": rid, **report} for rid, report in sorted(state["replicas_seen"].items())]}


@router.post(BASE + "/{name}/version", **requires(EDITOR))
async def change_version(project: ProjectName, name: DeploymentName, body: VersionChange, request: Request,
                         rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Switch to another version by hand (a following deployment moves again when its alias does)."""
    state = await _changing(request, rt, project, name)
    await _caught_up(rt)
    model = _store(rt).model_ref(project, state["model"])
    return await _deployment_cmd(rt, ctx, project, name, lambda s: domain.change_version(
        s, name=name, model=model, version=body.version))


@router.post(BASE + "/{name}/rollback", **requires(EDITOR))
async def rollback(project: ProjectName, name: DeploymentName, request: Request, rt: Runtime,
                   ctx: Ctx) -> dict[str, Any]:
    """Back to the previous version on record; 409 when there is none."""
    await _changing(request, rt, project, name)
    return await _deployment_cmd(rt, ctx, project, name, lambda s: domain.rollback(s, name=name))


@router.post(BASE + "/{name}/scale", **requires(EDITOR))
async def scale(project: ProjectName, name: DeploymentName, body: Scale, request: Request, rt: Runtime,
                ctx: Ctx) -> dict[str, Any]:
    await _changing(request, rt, project, name)
    return await _deployment_cmd(rt, ctx, project, name, lambda s: domain.scale(s, name=name, replicas=body.replicas))


@router.put(BASE + "/{name}/traffic", **requires(EDITOR))
async def split_traffic(project: ProjectName, name: DeploymentName, body: TrafficSplit, request: Request,
                        rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Canary (another version answers a share), shadow (another version gets a copy), both, or
    neither (``{}``: clear)."""
    state = await _changing(request, rt, project, name)
    await _caught_up(rt)
    model = _store(rt).model_ref(project, state["model"])
    canary = body.canary.model_dump() if body.canary else None
    shadow = body.shadow.model_dump() if body.shadow else None
    return await _deployment_cmd(rt, ctx, project, name, lambda s: domain.split_traffic(
        s, name=name, model=model, canary=canary, shadow=shadow))


@router.delete(BASE + "/{name}", status_code=204, **requires(EDITOR))
async def delete_deployment(project: ProjectName, name: DeploymentName, request: Request, rt: Runtime,
                            ctx: Ctx) -> Response:
    """Delete the deployment; its replicas are stopped."""
    await _changing(request, rt, project, name)
    await rt.commands.execute(ctx, project=project, aggregate="deployment", aggregate_id=name,
                              decide=lambda s: domain.delete(s, name=name))
    return Response(status_code=204)


@router.put(BASE + "/{name}/replicas/{replica_id}", **requires(EDITOR))
async def report_replica(project: ProjectName, name: DeploymentName, replica_id: ReplicaId, body: ReplicaReport,
                         rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """A replica reports that it started (serving ``version`` at ``url``), stopped or failed."""
    await rt.commands.execute(ctx, project=project, aggregate="deployment", aggregate_id=name,
                              decide=lambda s: domain.report_replica(
                                  s, name=name, replica_id=replica_id, url=body.url, version=body.version,
                                  status=body.state, reason=body.reason, managed=body.managed))
    return {"replica_id": replica_id, "url": body.url, "version": body.version, "state": body.state}


@router.get("/projects/{project}/environments", **requires(VIEWER))
async def list_environments(project: ProjectName, rt: Runtime) -> dict[str, Any]:
    return {"environments": _store(rt).environments(project)}


@router.post("/projects/{project}/environments/{environment}/protect", **requires(ADMIN))
@router.post("/projects/{project}/environments/{environment}/unprotect", **requires(ADMIN))
async def protect_environment(project: ProjectName, environment: EnvName, request: Request, rt: Runtime,
                              ctx: Ctx) -> dict[str, Any]:
    """Mark an environment protected (deploying there needs admin) or not."""
    protected = request.url.path.endswith("/protect")
    await rt.commands.execute(ctx, project=project, aggregate="environment", aggregate_id=environment,
                              decide=lambda s: domain.set_protected(s, environment=environment, protected=protected))
    return {"name": environment, "protected": _store(rt).protected(project, environment)}
