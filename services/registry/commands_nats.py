"""The registry's commands over NATS (``cairn.cmd.registry.<name>``) for the scheduler, which
creates, starts and finishes a run for every job: the same route functions as the HTTP API, so the
answers are the same, without an HTTP request on either side (see cairn.kernel.service_commands);
and ``project_exists``, which the artifact store asks before a write names a project."""

from __future__ import annotations

from typing import Any, cast

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.ids import check_project_name
from cairn.kernel.service import ServiceRuntime
from cairn.kernel.service_commands import ServiceCommand
from cairn.services.registry import api
from cairn.services.registry.store import RegistryStore


def _project(payload: dict[str, Any]) -> str:
    project = payload.get("project")
    if not isinstance(project, str):
        raise InvalidInput("project: a project name is required")
    check_project_name(project)
    return project


def _run_id(payload: dict[str, Any]) -> str:
    run_id = payload.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise InvalidInput("run_id: a run id is required")
    return run_id


def registry_commands(rt: ServiceRuntime) -> dict[str, ServiceCommand]:
    """Command name -> handler taking ``{"project": ..., ...}`` and the caller's context."""

    async def create_experiment(payload: dict[str, Any], ctx: CommandContext) -> Any:
        return await api.create_experiment(_project(payload), api.NamedCreate.model_validate(payload.get("body", {})), rt, ctx)

    async def create_run(payload: dict[str, Any], ctx: CommandContext) -> Any:
        return await api.create_run(_project(payload), api.RunCreate.model_validate(payload.get("body", {})), rt, ctx)

    async def start_run(payload: dict[str, Any], ctx: CommandContext) -> Any:
        return await api.start_run(_project(payload), _run_id(payload), rt, ctx)

    async def finish_run(payload: dict[str, Any], ctx: CommandContext) -> Any:
        return await api.finish_run(_project(payload), _run_id(payload), api.RunFinish.model_validate(payload.get("body", {})),
                                    rt, ctx)

    async def project_exists(payload: dict[str, Any], ctx: CommandContext) -> Any:
        """For the other services' writes: a write into a project that does not exist is a 404
        for everyone, site admins included (they pass every membership check)."""
        try:
            cast(RegistryStore, rt.store).project(_project(payload))
        except NotFound:
            return {"exists": False}
        return {"exists": True}

    return {"create_experiment": create_experiment, "create_run": create_run, "start_run": start_run,
            "finish_run": finish_run, "project_exists": project_exists}
