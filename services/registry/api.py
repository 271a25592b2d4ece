"""Registry HTTP API: thin routes over the domain (commands) and the read model (queries)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cairn.kernel.commands import CommandContext, Decide, Decision, Guard, GuardedDecide, Outcome
from cairn.kernel.envelope import subject_for
from cairn.kernel.errors import NotFound
from cairn.kernel.http import command_context
from cairn.kernel.identity import (
    ADMIN,
    ADMIN_ONLY_ALIASES,
    EDITOR,
    PERSON,
    SIGNED_IN,
    VIEWER,
    caller_of,
    check_requirement,
    requires,
)
from cairn.kernel.ids import (
    DIGEST_PATTERN,
    FREE_NAME_PATTERN,
    KEY_PATTERN,
    PROJECT_NAME_PATTERN,
    check_project_name,
    new_id,
)
from cairn.kernel.service import Runtime, ServiceRuntime
from cairn.protocol import ACCESS_SEQUENCE_HEADER
from cairn.services.registry import domain, run_record
from cairn.services.registry.digest_check import require_stored
from cairn.services.registry.run_record_body import RunRecordPut
from cairn.services.registry.search import compile_search, encode_token
from cairn.services.registry.store import RegistryStore, model_names

router = APIRouter()
Ctx = Annotated[CommandContext, Depends(command_context)]
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
# Params and tags travel in one event, which must fit one NATS message (8 MB on servers we start):
# at most MAX_ENTRIES keys of up to 250 characters with values of up to 8,000 per request, so a
# request too large for the event log fails here, naming the field, in all but the extreme case
# (which the event log refuses with a 413 naming its limit).
MAX_ENTRIES = 1000
Key = Annotated[str, StringConstraints(min_length=1, max_length=250, pattern=KEY_PATTERN)]
ParamValue = Annotated[str, StringConstraints(max_length=8000)] | int | float | bool
TagMap = Annotated[dict[Key, Annotated[str, StringConstraints(max_length=8000)]],
                   Field(max_length=MAX_ENTRIES, description=f"at most {MAX_ENTRIES} tags")]
ParamMap = Annotated[dict[Key, ParamValue], Field(max_length=MAX_ENTRIES, description=f"at most {MAX_ENTRIES} params")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=FREE_NAME_PATTERN)]


def _store(rt: ServiceRuntime) -> RegistryStore:
    store = rt.store
    assert isinstance(store, RegistryStore)
    return store


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- request models ----------------------------------------------------------------------------

class ProjectCreate(Strict):
    name: str = Field(pattern=PROJECT_NAME_PATTERN, examples=["vision"])
    description: str = Field(default="", max_length=8000)


class DescriptionUpdate(Strict):
    description: str = Field(max_length=8000)


class NamedCreate(Strict):
    name: Name
    description: str = Field(default="", max_length=8000)


class NamedUpdate(Strict):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=8000)


class TagValue(Strict):
    value: str = Field(max_length=8000)


class RunCreate(Strict):
    experiment_id: str | None = Field(default=None, max_length=128)
    experiment: Name | None = Field(default=None, description="experiment name")
    name: Name | None = None
    params: ParamMap = Field(default_factory=dict)
    tags: TagMap = Field(default_factory=dict)
    description: str = Field(default="", max_length=8000)
    start: bool = True
    record: RunRecordPut | None = Field(default=None, description=(
        "the run's reproducibility record (as PUT .../environment), recorded in the event that creates the run"))


class RunFinish(Strict):
    status: Literal["finished", "failed", "killed"] = "finished"
    message: str = Field(default="", max_length=8000)


class ParamsLog(Strict):
    params: ParamMap


class RunSearch(Strict):
    experiment_ids: list[str] | None = None
    filter: str | None = Field(default=None, max_length=4000)
    order_by: list[str] | None = Field(default=None, max_length=10)
    include_archived: bool = False
    page_size: int = Field(default=100, ge=1, le=1000)
    page_token: str | None = None


class VersionCreate(Strict):
    run_id: str = Field(min_length=1, max_length=128)
    artifact_digest: str = Field(pattern=DIGEST_PATTERN, description="the manifest digest of a model folder the project stored (printed by cairn artifacts log DIR --kind model / run.log_model)")
    description: str = Field(default="", max_length=8000)


class AliasSet(Strict):
    version: int = Field(ge=1)


# --- helpers -----------------------------------------------------------------------------------

async def _run_command(rt: ServiceRuntime, ctx: CommandContext, project: str, aggregate: str,
                       aggregate_id: str, decide: Decide) -> Outcome:
    return await rt.commands.execute(ctx, project=project, aggregate=aggregate,
                                     aggregate_id=aggregate_id, decide=decide)


def _project_cmd(rt: ServiceRuntime, ctx: CommandContext, project: str, decide: Decide) -> Any:
    return _run_command(rt, ctx, project, "project", project, decide)


def _model_naming_cmd(rt: ServiceRuntime, ctx: CommandContext, project: str, model_id: str,
                      decide: GuardedDecide) -> Any:
    """A command that gives a model a name: it decides on the project's model names too, guarded
    by every model subject of the project, so two requests cannot both take one name."""
    guard = Guard(subject_for(project, "model", "*"), lambda conn: model_names(conn, project))
    return rt.commands.execute_guarded(ctx, project=project, aggregate="model", aggregate_id=model_id,
                                       guard=guard, decide=decide)


def _archiving(request: Request) -> bool:
    return request.url.path.endswith("/archive")


def _model_id(rt: ServiceRuntime, project: str, name: str) -> str:
    return _store(rt).model(project, name)["id"]


# --- projects ----------------------------------------------------------------------------------

def first_admin(request: Request) -> str | None:
    """Who becomes a new project's first admin: the creating user; nobody for a site admin or a
    service (they see every project without being members, as before)."""
    caller = caller_of(request)
    return None if caller.site_admin else caller.user


def tell_access_changed(response: Response, outcome: Outcome) -> None:
    """Name the sequence of an event that made the caller a member, so that the gateway answers
    only once its own projection (which authorizes the next request) has applied it."""
    if outcome.type == "project.created":
        response.headers[ACCESS_SEQUENCE_HEADER] = str(outcome.sequence)


@router.post("/projects", status_code=201, tags=["projects"], **requires(PERSON))
async def create_project(body: ProjectCreate, rt: Runtime, ctx: Ctx, request: Request,
                         response: Response) -> dict[str, Any]:
    """Create a project (with an experiment named ``default``); its creator is its first admin."""
    check_project_name(body.name)
    default_experiment = new_id()
    admin = first_admin(request)
    outcome = await _project_cmd(rt, ctx, body.name, lambda s: domain.create_project(
        s, name=body.name, description=body.description, default_experiment_id=default_experiment,
        first_admin=admin))
    tell_access_changed(response, outcome)
    return _store(rt).project(body.name)


@router.get("/projects", tags=["projects"], **requires(SIGNED_IN))
def list_projects(rt: Runtime, request: Request, include_archived: bool = False) -> dict[str, Any]:
    """The projects the caller is a member of (every project for site admins)."""
    projects = _store(rt).projects(include_archived)
    mine = caller_of(request).projects
    if mine is not None:
        member = set(mine)
        projects = [p for p in projects if p["name"] in member]
    return {"projects": projects}


@router.get("/projects/{project}", tags=["projects"], **requires(VIEWER))
def get_project(project: ProjectName, rt: Runtime) -> dict[str, Any]:
    return _store(rt).project(project)


@router.patch("/projects/{project}", tags=["projects"], **requires(EDITOR))
async def update_project(project: ProjectName, body: DescriptionUpdate, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    await _project_cmd(rt, ctx, project, lambda s: domain.update_project(
        s, project=project, description=body.description))
    return _store(rt).project(project)


@router.post("/projects/{project}/archive", tags=["projects"], **requires(ADMIN))
@router.post("/projects/{project}/restore", tags=["projects"], **requires(ADMIN))
async def archive_project(project: ProjectName, request: Request, rt: Runtime,
                          ctx: Ctx) -> dict[str, Any]:
    await _project_cmd(rt, ctx, project, lambda s: domain.set_project_archived(
        s, project=project, archived=_archiving(request)))
    return _store(rt).project(project)


# --- experiments -------------------------------------------------------------------------------

@router.post("/projects/{project}/experiments", status_code=201, tags=["experiments"], **requires(EDITOR))
async def create_experiment(project: ProjectName, body: NamedCreate, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    experiment_id = new_id()
    outcome = await _project_cmd(rt, ctx, project, lambda s: domain.create_experiment(
        s, project=project, experiment_id=experiment_id, name=body.name, description=body.description))
    store = _store(rt)
    return store.experiment(project, store.created_by_event("experiments", outcome.sequence)["id"])


@router.get("/projects/{project}/experiments", tags=["experiments"], **requires(VIEWER))
def list_experiments(project: ProjectName, rt: Runtime, include_archived: bool = False,
                     name: str | None = None) -> dict[str, Any]:
    store = _store(rt)
    store.project(project)
    if name is not None:
        found = store.experiment_by_name(project, name)
        return {"experiments": [found] if found else []}
    return {"experiments": store.experiments(project, include_archived)}


@router.get("/projects/{project}/experiments/{experiment_id}", tags=["experiments"], **requires(VIEWER))
def get_experiment(project: ProjectName, experiment_id: str, rt: Runtime) -> dict[str, Any]:
    return _store(rt).experiment(project, experiment_id)


@router.patch("/projects/{project}/experiments/{experiment_id}", tags=["experiments"], **requires(EDITOR))
async def update_experiment(project: ProjectName, experiment_id: str, body: NamedUpdate, rt: Runtime,
                            ctx: Ctx) -> dict[str, Any]:
    await _project_cmd(rt, ctx, project, lambda s: domain.update_experiment(
        s, project=project, experiment_id=experiment_id, name=body.name, description=body.description))
    return _store(rt).experiment(project, experiment_id)


@router.post("/projects/{project}/experiments/{experiment_id}/archive", tags=["experiments"], **requires(ADMIN))
@router.post("/projects/{project}/experiments/{experiment_id}/restore", tags=["experiments"], **requires(ADMIN))
async def archive_experiment(project: ProjectName, experiment_id: str, request: Request, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    await _project_cmd(rt, ctx, project, lambda s: domain.set_experiment_archived(
        s, project=project, experiment_id=experiment_id, archived=_archiving(request)))
    return _store(rt).experiment(project, experiment_id)


@router.put("/projects/{project}/experiments/{experiment_id}/tags/{key}", tags=["experiments"], **requires(EDITOR))
async def set_experiment_tag(project: ProjectName, experiment_id: str, key: str, body: TagValue,
                             rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    await _project_cmd(rt, ctx, project, lambda s: domain.set_experiment_tag(
        s, project=project, experiment_id=experiment_id, key=key, value=body.value))
    return _store(rt).experiment(project, experiment_id)


@router.delete("/projects/{project}/experiments/{experiment_id}/tags/{key}", tags=["experiments"], **requires(ADMIN))
async def delete_experiment_tag(project: ProjectName, experiment_id: str, key: str, rt: Runtime,
                                ctx: Ctx) -> dict[str, Any]:
    """Remove an experiment tag (deletions: admin, as for run tags); a missing tag is a 404."""
    present = key in _store(rt).experiment(project, experiment_id)["tags"]
    await _project_cmd(rt, ctx, project, lambda s: domain.delete_experiment_tag(
        s, project=project, experiment_id=experiment_id, key=key, present=present))
    return _store(rt).experiment(project, experiment_id)


# --- runs --------------------------------------------------------------------------------------

@router.post("/projects/{project}/runs", status_code=201, tags=["runs"], **requires(EDITOR))
async def create_run(project: ProjectName, body: RunCreate, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Create a run in an experiment (by id or name; the project's ``default`` when neither)."""
    store = _store(rt)
    store.project(project)
    if body.experiment_id is not None:
        experiment_id = store.experiment(project, body.experiment_id)["id"]
    else:
        name = body.experiment or "default"
        found = store.experiment_by_name(project, name)
        if found is None:
            raise NotFound(f"experiment {name!r} does not exist in project {project!r}; create it first")
        experiment_id = found["id"]
    return await _new_run(rt, ctx, project, experiment_id, body)


async def _new_run(rt: ServiceRuntime, ctx: CommandContext, project: str, experiment_id: str,
                   body: RunCreate) -> dict[str, Any]:
    store = _store(rt)
    run_id = new_id()
    name = body.name or f"run-{run_id[-8:]}"

    def decide(state: domain.State) -> Decision:
        created = domain.create_run(state, run_id=run_id, experiment_id=experiment_id, name=name,
                                    params=body.params, tags=body.tags, description=body.description,
                                    start=body.start)
        return created if body.record is None else _with_record(created, run_id, body.record)

    outcome = await _run_command(rt, ctx, project, "run", run_id, decide)
    return store.run(project, outcome.aggregate_id)


def _with_record(created: tuple[str, dict[str, Any]], run_id: str, record: RunRecordPut) -> Decision:
    """``run.created`` carrying the run's first record (v2's ``record``: the data a
    ``run.environment_recorded`` would have), so a run never exists without the record it was
    created with. One event rather than an atomic batch of two: nats-server stages every atomic
    batch in a temporary file store, which cost a job's dispatch more than anything else."""
    recorded = run_record.record_environment(
        domain.evolve_run(None, *created), run_id=run_id, environment=record.environment,
        code=record.code.event_data() if record.code is not None else None, command=record.command,
        seeds=record.seeds)
    if recorded is None:
        return created
    return created[0], {**created[1], "record": recorded[1]}


@router.get("/projects/{project}/runs", tags=["runs"], response_model=None, **requires(VIEWER))
def list_runs(project: ProjectName, rt: Runtime, request: Request,
              experiment_id: Annotated[list[str] | None, Query()] = None,
              filter: Annotated[str | None, Query(max_length=4000)] = None,
              order_by: Annotated[list[str] | None, Query()] = None,
              include_archived: bool = False,
              page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
              page_token: str | None = None) -> Response:
    """Search runs: by experiment, a filter (``params.lr = '0.1' and status = 'finished'``), sorted."""
    return _search(rt, request, project, RunSearch(experiment_ids=experiment_id, filter=filter,
                                                   order_by=order_by, include_archived=include_archived,
                                                   page_size=page_size, page_token=page_token))


@router.post("/projects/{project}/runs/search", tags=["runs"], response_model=None, **requires(VIEWER))
def search_runs(project: ProjectName, body: RunSearch, rt: Runtime, request: Request) -> Response:
    return _search(rt, request, project, body)


def _search(rt: ServiceRuntime, request: Request, project: str, q: RunSearch) -> Response:
    store = _store(rt)
    store.project(project)

    sql, args, offset = compile_search(project, experiment_ids=q.experiment_ids, filter_text=q.filter,
                                       include_archived=q.include_archived, order_by=q.order_by,
                                       page_size=q.page_size, page_token=q.page_token)
    ids = [r["id"] for r in store.query(sql, args)]
    more = len(ids) > q.page_size
    ids = ids[: q.page_size]
    body = {"runs": store.runs_by_ids(project, ids), "next_page_token": encode_token(offset + q.page_size) if more else None}
    return Response(orjson.dumps(body), media_type="application/json")  # plain rows: no pass of FastAPI's encoder


@router.get("/projects/{project}/runs/{run_id}", tags=["runs"], **requires(VIEWER))
def get_run(project: ProjectName, run_id: str, rt: Runtime) -> dict[str, Any]:
    return _store(rt).run(project, run_id)


def _run_cmd(rt: ServiceRuntime, ctx: CommandContext, project: str, run_id: str, decide: Decide) -> Any:
    _store(rt).run(project, run_id)  # 404 for a run of another project
    return _run_command(rt, ctx, project, "run", run_id, decide)


@router.patch("/projects/{project}/runs/{run_id}", tags=["runs"], **requires(EDITOR))
async def update_run(project: ProjectName, run_id: str, body: NamedUpdate, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    await _run_cmd(rt, ctx, project, run_id, lambda s: domain.update_run(
        s, run_id=run_id, name=body.name, description=body.description))
    return _store(rt).run(project, run_id)


@router.post("/projects/{project}/runs/{run_id}/start", tags=["runs"], **requires(EDITOR))
async def start_run(project: ProjectName, run_id: str, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    await _run_cmd(rt, ctx, project, run_id, lambda s: domain.start_run(s, run_id=run_id))
    return _store(rt).run(project, run_id)


@router.post("/projects/{project}/runs/{run_id}/finish", tags=["runs"], **requires(EDITOR))
async def finish_run(project: ProjectName, run_id: str, body: RunFinish, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """End a run: ``finished``, ``failed`` or ``killed``."""
    await _run_cmd(rt, ctx, project, run_id, lambda s: domain.finish_run(
        s, run_id=run_id, status=body.status, message=body.message))
    return _store(rt).run(project, run_id)


@router.post("/projects/{project}/runs/{run_id}/params", tags=["runs"], **requires(EDITOR))
async def log_params(project: ProjectName, run_id: str, body: ParamsLog, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Log params; a param already set to another value is a 409 (params are immutable)."""
    await _run_cmd(rt, ctx, project, run_id, lambda s: domain.log_params(s, run_id=run_id, params=body.params))
    return _store(rt).run(project, run_id)


@router.put("/projects/{project}/runs/{run_id}/tags/{key}", tags=["runs"], **requires(EDITOR))
async def set_run_tag(project: ProjectName, run_id: str, key: str, body: TagValue, rt: Runtime,
                      ctx: Ctx) -> dict[str, Any]:
    await _run_cmd(rt, ctx, project, run_id, lambda s: domain.set_run_tag(
        s, run_id=run_id, key=key, value=body.value))
    return _store(rt).run(project, run_id)


@router.delete("/projects/{project}/runs/{run_id}/tags/{key}", tags=["runs"], **requires(ADMIN))
async def delete_run_tag(project: ProjectName, run_id: str, key: str, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    await _run_cmd(rt, ctx, project, run_id, lambda s: domain.delete_run_tag(s, run_id=run_id, key=key))
    return _store(rt).run(project, run_id)


@router.post("/projects/{project}/runs/{run_id}/archive", tags=["runs"], **requires(ADMIN))
@router.post("/projects/{project}/runs/{run_id}/restore", tags=["runs"], **requires(ADMIN))
async def archive_run(project: ProjectName, run_id: str, request: Request, rt: Runtime,
                      ctx: Ctx) -> dict[str, Any]:
    await _run_cmd(rt, ctx, project, run_id, lambda s: domain.set_run_archived(
        s, run_id=run_id, archived=_archiving(request)))
    return _store(rt).run(project, run_id)


# --- models ------------------------------------------------------------------------------------

@router.post("/projects/{project}/models", status_code=201, tags=["models"], **requires(EDITOR))
async def create_model(project: ProjectName, body: NamedCreate, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    model_id = new_id()
    outcome = await _model_naming_cmd(rt, ctx, project, model_id, lambda s, names: domain.create_model(
        s, names, project=project, model_id=model_id, name=body.name, description=body.description))
    store = _store(rt)
    return store.model(project, store.created_by_event("models", outcome.sequence)["name"])


@router.get("/projects/{project}/models", tags=["models"], **requires(VIEWER))
def list_models(project: ProjectName, rt: Runtime, include_archived: bool = False) -> dict[str, Any]:
    _store(rt).project(project)
    return {"models": _store(rt).models(project, include_archived)}


@router.get("/projects/{project}/models/{model}", tags=["models"], **requires(VIEWER))
def get_model(project: ProjectName, model: str, rt: Runtime) -> dict[str, Any]:
    return _store(rt).model(project, model)


@router.patch("/projects/{project}/models/{model}", tags=["models"], **requires(EDITOR))
async def update_model(project: ProjectName, model: str, body: NamedUpdate, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    model_id = _model_id(rt, project, model)
    await _model_naming_cmd(rt, ctx, project, model_id, lambda s, names: domain.update_model(
        s, names, project=project, model_id=model_id, name=body.name, description=body.description))
    return _store(rt).model(project, body.name or model)


@router.post("/projects/{project}/models/{model}/archive", tags=["models"], **requires(ADMIN))
@router.post("/projects/{project}/models/{model}/restore", tags=["models"], **requires(ADMIN))
async def archive_model(project: ProjectName, model: str, request: Request, rt: Runtime,
                        ctx: Ctx) -> dict[str, Any]:
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: domain.set_model_archived(
        s, project=project, model_id=model_id, archived=_archiving(request)))
    return _store(rt).model(project, model)


@router.put("/projects/{project}/models/{model}/tags/{key}", tags=["models"], **requires(EDITOR))
async def set_model_tag(project: ProjectName, model: str, key: str, body: TagValue, rt: Runtime,
                        ctx: Ctx) -> dict[str, Any]:
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: domain.set_model_tag(
        s, project=project, model_id=model_id, key=key, value=body.value))
    return _store(rt).model(project, model)


@router.post("/projects/{project}/models/{model}/versions", status_code=201, tags=["models"], **requires(EDITOR))
async def create_model_version(project: ProjectName, model: str, body: VersionCreate, rt: Runtime,
                               ctx: Ctx) -> dict[str, Any]:
    """Register a version: it points at a run and at the manifest digest of a model folder that the
    project stored (``cairn artifacts log DIR --kind model`` / ``run.log_model`` print it; a digest stored nowhere in
    the project is a 422, nothing appended); numbers count up from 1."""
    store = _store(rt)
    model_id = _model_id(rt, project, model)
    store.run(project, body.run_id)
    await require_stored(rt, ctx, project, body.artifact_digest)
    outcome = await _run_command(rt, ctx, project, "model", model_id, lambda s: domain.create_model_version(
        s, run_id=body.run_id, artifact_digest=body.artifact_digest, description=body.description))
    version = store.created_by_event("model_versions", outcome.sequence)["version"]
    return store.model_version(project, model, version)


@router.get("/projects/{project}/models/{model}/versions", tags=["models"], **requires(VIEWER))
def list_model_versions(project: ProjectName, model: str, rt: Runtime, include_archived: bool = False) -> dict[str, Any]:
    return {"versions": _store(rt).model_versions(project, model, include_archived)}


@router.get("/projects/{project}/models/{model}/versions/{version}", tags=["models"], **requires(VIEWER))
def get_model_version(project: ProjectName, model: str, version: int, rt: Runtime) -> dict[str, Any]:
    return _store(rt).model_version(project, model, version)


@router.patch("/projects/{project}/models/{model}/versions/{version}", tags=["models"], **requires(EDITOR))
async def update_model_version(project: ProjectName, model: str, version: int, body: DescriptionUpdate,
                               rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: domain.update_model_version(
        s, model=model, version=version, description=body.description))
    return _store(rt).model_version(project, model, version)


@router.post("/projects/{project}/models/{model}/versions/{version}/archive", tags=["models"], **requires(ADMIN))
@router.post("/projects/{project}/models/{model}/versions/{version}/restore", tags=["models"], **requires(ADMIN))
async def archive_model_version(project: ProjectName, model: str, version: int,
                                request: Request, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: domain.set_model_version_archived(
        s, model=model, version=version, archived=_archiving(request)))
    return _store(rt).model_version(project, model, version)


@router.put("/projects/{project}/models/{model}/versions/{version}/tags/{key}", tags=["models"], **requires(EDITOR))
async def set_model_version_tag(project: ProjectName, model: str, version: int, key: str, body: TagValue,
                                rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: domain.set_model_version_tag(
        s, model=model, version=version, key=key, value=body.value))
    return _store(rt).model_version(project, model, version)


@router.put("/projects/{project}/models/{model}/aliases/{alias}", tags=["models"], **requires(EDITOR))
async def set_alias(project: ProjectName, model: str, alias: str, body: AliasSet, rt: Runtime,
                    ctx: Ctx, request: Request) -> dict[str, Any]:
    """Point an alias (``staging``, ``production``, any name) at a version; history is kept.
    Moving ``production`` needs the admin role."""
    if alias.lower() in ADMIN_ONLY_ALIASES:
        check_requirement(caller_of(request), ADMIN, project)
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: domain.set_alias(
        s, model=model, alias=alias, version=body.version))
    return _store(rt).model_version(project, model, body.version)


@router.get("/projects/{project}/models/{model}/aliases/{alias}", tags=["models"], **requires(VIEWER))
def get_alias(project: ProjectName, model: str, alias: str, rt: Runtime) -> dict[str, Any]:
    found = _store(rt).model(project, model)
    if alias not in found["aliases"]:
        raise NotFound(f"model {model!r} has no alias {alias!r}")
    return _store(rt).model_version(project, model, found["aliases"][alias])


@router.delete("/projects/{project}/models/{model}/aliases/{alias}", status_code=204, tags=["models"],
               **requires(ADMIN))
async def remove_alias(project: ProjectName, model: str, alias: str, rt: Runtime, ctx: Ctx) -> Response:
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: domain.remove_alias(
        s, model=model, alias=alias))
    return Response(status_code=204)


@router.get("/projects/{project}/models/{model}/aliases/{alias}/history", tags=["models"], **requires(VIEWER))
def alias_history(project: ProjectName, model: str, alias: str, rt: Runtime) -> dict[str, Any]:
    return {"history": _store(rt).alias_history(project, model, alias)}
