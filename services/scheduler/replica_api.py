"""Replica set routes (``/projects/{p}/replica-sets/{name}``): set the desired state (PUT), read
it with the replicas that run now (GET), delete (DELETE stops every replica). The deployments
service keeps its ``deploy-<name>`` sets through these; see docs/scheduler.md "Replica sets"."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.http import command_context
from cairn.kernel.identity import EDITOR, VIEWER, requires
from cairn.kernel.ids import check_project_name, check_token
from cairn.services.registry.project_check import project_exists_on_writes
from cairn.services.scheduler.core import SchedulerCore
from cairn.services.scheduler.replica_core import ReplicaReconciler
from cairn.services.scheduler.replica_sets import delete_replica_set, update_replica_set
from cairn.services.scheduler.spec import parse_spec
from cairn.services.scheduler.store import SchedulerStore

router = APIRouter(dependencies=[Depends(project_exists_on_writes)])
Ctx = Annotated[CommandContext, Depends(command_context)]
MAX_REPLICAS = 1000


async def _core(request: Request) -> SchedulerCore:
    return request.app.state.core


async def _reconciler(request: Request) -> ReplicaReconciler:
    return request.app.state.replicas


async def _store(request: Request) -> SchedulerStore:
    return request.app.state.runtime.store


async def _project(project: str) -> str:
    return check_project_name(project)


async def _name(name: str) -> str:
    return check_token(name, "replica set name")


Core = Annotated[SchedulerCore, Depends(_core)]
Reconciler = Annotated[ReplicaReconciler, Depends(_reconciler)]
Store = Annotated[SchedulerStore, Depends(_store)]
ProjectName = Annotated[str, Depends(_project)]
SetName = Annotated[str, Depends(_name)]


class ReplicaSetPut(BaseModel):
    """The desired state of a replica set; a PUT replaces all of it."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(min_length=1, max_length=1000)
    env: dict[str, str] = Field(default_factory=dict)
    replicas: int = Field(ge=0, le=MAX_REPLICAS)
    resources: dict[str, Any] = Field(default_factory=dict)
    spread: bool = True
    queue: str = Field(default="default", max_length=63)


def replica_set_view(store: SchedulerStore, reconciler: ReplicaReconciler, project: str,
                     name: str) -> dict[str, Any]:
    """The set, its replicas that have not ended (``running``, each with its state: queued ones
    have no agent yet), how many ended on their own (``restarts``) and its crash-loop back-off."""
    view = store.replica_set(project, name)
    members = store.replica_members(project, name, include_ended=True)
    view["running"] = [
        {"job_id": j["id"], "agent": j["ranks"][0]["agent_id"] if j["ranks"] else None,
         "host": j["ranks"][0]["host"] if j["ranks"] else None, "state": j["status"],
         "started_at": j["started_at"], "attempt": j["attempt"], "stopping": j["cancel_requested"]}
        for j in members if j["status"] not in ("succeeded", "failed", "cancelled")]
    view["restarts"] = sum(1 for j in members if j["status"] in ("succeeded", "failed"))
    view["backoff"] = reconciler.backoff_view(project, name)
    return view


@router.put("/projects/{project}/replica-sets/{name}", tags=["replica-sets"], **requires(EDITOR))
async def put_replica_set(project: ProjectName, name: SetName, body: ReplicaSetPut, core: Core,
                          reconciler: Reconciler, store: Store, ctx: Ctx) -> dict[str, Any]:
    """Create or change a replica set: the scheduler keeps ``replicas`` jobs of ``command``
    running, replaces any that ends, and (``spread``) puts them on different agents while there
    are enough. A bad command, env or resources is a 422 naming the field, and changes nothing."""
    check_project_name(body.queue)
    spec = parse_spec({"command": body.command, "env": body.env, "resources": body.resources, "queue": body.queue})
    await core.execute(ctx, project, "replica_set", name, lambda s: update_replica_set(
        s, name=name, command=spec["command"], env=spec["env"], replicas=body.replicas,
        resources=spec["resources"], spread=body.spread, queue=spec["queue"]))
    reconciler.wake.set()
    return replica_set_view(store, reconciler, project, name)


@router.get("/projects/{project}/replica-sets/{name}", tags=["replica-sets"], **requires(VIEWER))
def get_replica_set(project: ProjectName, name: SetName, store: Store, reconciler: Reconciler) -> dict[str, Any]:
    return replica_set_view(store, reconciler, project, name)


@router.delete("/projects/{project}/replica-sets/{name}", tags=["replica-sets"], **requires(EDITOR))
async def delete_set(project: ProjectName, name: SetName, core: Core, reconciler: Reconciler,
                     ctx: Ctx) -> dict[str, Any]:
    """Delete the set; every replica is stopped (SIGTERM, then SIGKILL) soon after."""
    await core.execute(ctx, project, "replica_set", name, lambda s: delete_replica_set(s, name=name))
    reconciler.wake.set()
    return {"project": project, "name": name, "deleted": True}
