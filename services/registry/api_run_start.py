"""``POST /projects/{project}/runs/start``: what ``cairn.start_run`` needs, in one request.

The project (if absent), the experiment by name (if absent) and the run with its first
reproducibility record (one ``run.created``) are made by one call, so the SDK sends one request
instead of five and the run is one event instead of two. A retry with the same Idempotency-Key
answers the same run: each step has its own key derived from the request's.

Permissions: in a project that exists, the editor role (as ``POST .../runs``); a project that does
not exist yet is created only for a caller who may create projects (``POST /projects``: a user's
own token, not a job's or a service account's), who then becomes its first admin.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import ConcurrencyConflict, NotFound
from cairn.kernel.identity import EDITOR, PERSON, caller_of, check_requirement
from cairn.kernel.ids import check_project_name, new_id
from cairn.services.registry import domain
from cairn.services.registry.api import (
    Ctx,
    ProjectName,
    RunCreate,
    Runtime,
    _new_run,
    _project_cmd,
    _store,
    first_admin,
    tell_access_changed,
)

router = APIRouter()
START_REQUIREMENT = EDITOR  # in a project that exists; creating one needs PERSON (see enforce_start)


def _exists(request: Request, project: str) -> bool:
    try:
        _store(request.app.state.runtime).project(project)
    except NotFound:
        return False
    return True


async def enforce_start(request: Request) -> None:
    """Editor in the project when it exists; the right to create projects when it does not."""
    project = request.path_params["project"]
    caller = caller_of(request)
    if _exists(request, project):
        check_requirement(caller, EDITOR, project)
    else:
        check_requirement(caller, PERSON, None)


def _step(ctx: CommandContext, step: str) -> CommandContext:
    """The request's key for one of its steps, so a retry finds each step's own outcome."""
    return replace(ctx, idempotency_key=f"{ctx.idempotency_key}/{step}") if ctx.idempotency_key else ctx


@router.post("/projects/{project}/runs/start", status_code=201, tags=["runs"],
             dependencies=[Depends(enforce_start)],
             openapi_extra={"x-cairn-role": START_REQUIREMENT, "x-cairn-role-to-create-project": PERSON})
async def start_run_in_one_request(project: ProjectName, body: RunCreate, rt: Runtime, ctx: Ctx,
                                   request: Request, response: Response) -> dict[str, Any]:
    """Create the project and the experiment (by name, ``default`` when omitted) when absent, then
    the run with its record in one event; ``record`` is what ``PUT .../runs/{id}/environment``
    takes. An ``experiment_id`` must name an experiment that exists."""
    store = _store(rt)
    if not _exists(request, project):
        check_project_name(project)
        admin = first_admin(request)
        experiment = new_id()
        created = await _project_cmd(rt, _step(ctx, "project"), project, lambda s: domain.ensure_project(
            s, name=project, default_experiment_id=experiment, first_admin=admin))
        if created.type != "project.created":  # someone else's, made meanwhile: their members only
            check_requirement(caller_of(request), EDITOR, project)
        tell_access_changed(response, created)
    if body.experiment_id is not None:
        return await _new_run(rt, ctx, project, store.experiment(project, body.experiment_id)["id"], body)
    name = body.experiment or "default"
    found = store.experiment_by_name(project, name)
    if found is None:
        experiment_id = new_id()
        await _project_cmd(rt, _step(ctx, "experiment"), project, lambda s: domain.ensure_experiment(
            s, project=project, experiment_id=experiment_id, name=name))
        found = store.experiment_by_name(project, name)
        if found is None:  # renamed by someone else between our command and this read
            raise ConcurrencyConflict(f"experiment {name!r} in project {project!r} was changed meanwhile; retry")
    return await _new_run(rt, ctx, project, found["id"], body)
