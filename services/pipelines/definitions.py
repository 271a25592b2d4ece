"""Registered pipelines: the ``pipeline`` aggregate (id = the pipeline's name in a project), its
read model, and the routes that register, list, show and delete definitions.

A definition is what triggers need and a pasted file does not have: where the file lives in which
repository (a push runs the pipeline file *at the pushed commit*), the push hook's secret, where to
send commit statuses, and parameter overrides. The hook secret is kept in the event, as the
gateway keeps a webhook's secret; the status token too (the run's own event carries only the
target, never the token). No route returns either: they say whether one is set.

The projection also records **owed event triggers**: when an event of record arrives that a
definition's ``on.event`` selects, a row keyed by (event id, definition) is written in the same
transaction. The trigger loop (``triggers_runtime``) starts each owed run with the idempotency
key ``trigger.event.<event id>.<name>``; the kernel remembers that key (``idempotency`` table,
rebuilt by replay), so "owed" is simply "no run remembered under its key": exactly once per event
and definition, across restarts and rebuilds, with no bookkeeping event of its own.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.envelope import Event
from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.http import command_context
from cairn.kernel.identity import EDITOR, VIEWER, requires
from cairn.kernel.ids import PROJECT_NAME_PATTERN
from cairn.kernel.schemas import known_schemas
from cairn.kernel.service import Runtime, ServiceRuntime
from cairn.kernel.store import EventHandler, EventHandlers
from cairn.pipelines import load_pipeline
from cairn.pipelines.spec import STEP_ID, Pipeline
from cairn.pipelines.triggers import AGGREGATE_OF_TYPE, EventFilter, event_matches
from cairn.services.pipelines.sealed import key_of, sealed_parts

ACTOR = "service:pipelines"  # the identity the service's own commands and calls carry
DEFAULT_PATH = "cairn/pipeline.yaml"
REPO_NAME = re.compile(r"\A[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+\Z")
# the aggregates whose events ``on.event`` can select (the projection must receive them)
TRIGGER_AGGREGATES = tuple(sorted(set(AGGREGATE_OF_TYPE.values()) | {"run", "job", "pipeline_run"}))
DEFINITIONS_AGGREGATES = ("pipeline", *TRIGGER_AGGREGATES)

DEFINITIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipeline_definitions (
    project TEXT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL, digest TEXT NOT NULL,
    path TEXT NOT NULL, repo TEXT, hook TEXT, status TEXT, params TEXT NOT NULL, triggers TEXT NOT NULL,
    repo_full_name TEXT, registered_at TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (project, name));
CREATE INDEX IF NOT EXISTS pipeline_definitions_by_repo ON pipeline_definitions(repo_full_name);
CREATE TABLE IF NOT EXISTS pipeline_event_triggers (
    project TEXT NOT NULL, event_id TEXT NOT NULL, name TEXT NOT NULL, event_type TEXT NOT NULL,
    subject TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (project, event_id, name));
CREATE INDEX IF NOT EXISTS pipeline_event_triggers_by_seq ON pipeline_event_triggers(seq);
"""


# --- domain: pure -------------------------------------------------------------------------------

def evolve(state: dict[str, Any] | None, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "pipeline.registered":
        return {"registered": True, "digest": data["digest"]}
    if event_type == "pipeline.deleted":
        return {**(state or {}), "registered": False}
    return state or {}


DEFINITIONS_EVOLVERS = {"pipeline": evolve}


def clone_url_problem(url: str, *, allow_local: bool = True) -> str | None:
    """Why a clone URL cannot be fetched from, or None: ``https://`` (through the egress guard
    when it is fetched), and local paths or ``file://`` where the site allows them
    (``CAIRN_PIPELINES_ALLOW_LOCAL_REPOS``: off by default, since a local path would let an
    editor archive any repository the service can read into their project). ssh needs keys the
    service does not hold; plain http and git:// fetch code unauthenticated."""
    if "\n" in url or "\r" in url:
        return "it has a line break"
    if url.startswith("https://"):
        return None
    if url.startswith(("file://", "/")):
        return None if allow_local else ("local repositories are off on this site: use an https:// URL, or set "
                                         "CAIRN_PIPELINES_ALLOW_LOCAL_REPOS=true")
    return "use an https:// URL" + (", a file:// URL or an absolute local path" if allow_local else "")


def register(state: dict[str, Any] | None, *, text: str, path: str, repo: dict[str, str] | None,
             hook: dict[str, str] | None, status: dict[str, str] | None,
             params: dict[str, Any], allow_local: bool = True) -> tuple[str, dict[str, Any]]:
    """Validate the file (every problem with its line: 422) and the rest; register or replace."""
    pipeline = load_pipeline(text)
    unknown = sorted(set(params) - set(pipeline.params))
    if unknown:
        raise InvalidInput(f"params {unknown} are not declared by pipeline {pipeline.name!r}; declared: "
                           f"{', '.join(sorted(pipeline.params)) or 'none'}", details={"field": "params"})
    if path.startswith("/") or ".." in path.split("/") or not path.strip():
        raise InvalidInput(f"path {path!r} must be relative to the repository's root, without '..'",
                           details={"field": "path"})
    if repo is not None:
        if not REPO_NAME.match(repo["full_name"]):
            raise InvalidInput(f"repo.full_name {repo['full_name']!r} must be owner/name",
                               details={"field": "repo.full_name"})
        if (why := clone_url_problem(repo["clone_url"], allow_local=allow_local)) is not None:
            raise InvalidInput(f"repo.clone_url {repo['clone_url']!r} cannot be fetched from: {why}",
                               details={"field": "repo.clone_url"})
    if hook is not None and repo is None:
        raise InvalidInput("a push hook needs repo {full_name, clone_url}: the push names the repository",
                           details={"field": "repo"})
    if pipeline.on.push is not None and hook is None:
        raise InvalidInput(f"pipeline {pipeline.name!r} has on.push: register it with hook {{kind, secret}} "
                           "so pushes can be verified", details={"field": "hook"})
    for event in pipeline.on.events:
        if event.type.split(".", 1)[0] not in TRIGGER_TYPE_PREFIXES:
            raise InvalidInput(f"on.event type {event.type!r} cannot start a pipeline: the service reads the events "
                               f"of {', '.join(sorted(TRIGGER_TYPE_PREFIXES))}", details={"field": "definition"})
    if status is not None and not status["url"].startswith(("https://", "http://")):
        raise InvalidInput("status.url must be the code host's API root (https://...)", details={"field": "status.url"})
    return "pipeline.registered", {"definition": text, "digest": pipeline.digest(), "path": path, "repo": repo,
                                   "hook": hook, "status": status, "params": params,
                                   "triggers": pipeline.on.to_dict()}


def delete(state: dict[str, Any] | None, *, name: str) -> tuple[str, dict[str, Any]]:
    if not state or not state.get("registered"):
        raise NotFound(f"no pipeline {name!r} is registered in this project")
    return "pipeline.deleted", {}


# --- projection ---------------------------------------------------------------------------------

DEFINITIONS_HANDLERS = EventHandlers()
handles = DEFINITIONS_HANDLERS.handles


@handles("pipeline.registered")
def _registered(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    repo = d["repo"]
    conn.execute("INSERT OR REPLACE INTO pipeline_definitions(project, name, definition, digest, path, repo, hook, "
                 "status, params, triggers, repo_full_name, registered_at, seq) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                 (e.project, e.aggregate_id, d["definition"], d["digest"], d["path"], json.dumps(repo),
                  json.dumps(d["hook"]), json.dumps(d["status"]), json.dumps(d["params"]),
                  json.dumps(d["triggers"]), repo["full_name"].lower() if repo else None, e.time, e.sequence))


@handles("pipeline.deleted")
def _deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM pipeline_definitions WHERE project=? AND name=?", (e.project, e.aggregate_id))
    conn.execute("DELETE FROM pipeline_event_triggers WHERE project=? AND name=?", (e.project, e.aggregate_id))


def _owed(conn: sqlite3.Connection, e: Event) -> None:
    """An event some definition's ``on.event`` selects: a run is owed for it (once per definition)."""
    rows = conn.execute("SELECT name, triggers FROM pipeline_definitions WHERE project=? AND triggers LIKE ?",
                        (e.project, '%"event": [{%')).fetchall()
    for name, triggers in rows:
        for spec in json.loads(triggers).get("event", []):
            if event_matches(EventFilter.from_spec(spec), e.type, e.data, aggregate_id=e.aggregate_id):
                conn.execute("INSERT OR IGNORE INTO pipeline_event_triggers(project, event_id, name, event_type, "
                             "subject, seq) VALUES(?,?,?,?,?,?)",
                             (e.project, e.id, name, e.type, e.subject, e.sequence))
                break


for _type in sorted({stem.rsplit(".v", 1)[0] for stem in known_schemas()}):
    if _type.split(".", 1)[0] in TRIGGER_AGGREGATES or AGGREGATE_OF_TYPE.get(_type.split(".", 1)[0]):
        DEFINITIONS_HANDLERS[_type] = _owed
# the event type prefixes ``on.event`` may name (others never reach the projection)
TRIGGER_TYPE_PREFIXES = frozenset(t.split(".", 1)[0] for t, h in DEFINITIONS_HANDLERS.items() if h is _owed)


def merge_handlers(*tables: dict[str, EventHandler]) -> EventHandlers:
    """One handler table from several; a type two tables handle runs both, in the given order
    (the facts and the trigger records both read ``dataset.version_created``, for instance)."""
    merged = EventHandlers()
    for table in tables:
        for event_type, handler in table.items():
            first = merged.get(event_type)
            merged[event_type] = handler if first is None else _both(first, handler)
    return merged


def _both(first: EventHandler, second: EventHandler) -> EventHandler:
    def both(conn: sqlite3.Connection, event: Event) -> None:
        first(conn, event)
        second(conn, event)

    return both


# --- reads --------------------------------------------------------------------------------------

def event_trigger_key(event_id: str, name: str) -> str:
    return f"trigger.event.{event_id}.{name}"


class DefinitionsReader:
    """Queries over the definitions tables (mixed into the service's store: ``query``)."""

    query: Callable[..., list[sqlite3.Row]]

    def definition(self, project: str, name: str) -> dict[str, Any] | None:
        """The whole definition, secrets included: for the service's own use, never for a route."""
        rows = self.query("SELECT * FROM pipeline_definitions WHERE project=? AND name=?", (project, name))
        return _row(rows[0]) if rows else None

    def definitions(self, project: str) -> list[dict[str, Any]]:
        return [_row(r) for r in self.query("SELECT * FROM pipeline_definitions WHERE project=? ORDER BY name",
                                            (project,))]

    def definitions_for_repo(self, full_name: str) -> list[dict[str, Any]]:
        """Definitions of every project whose repository is ``full_name`` (compared case-blind,
        as GitHub and GitLab name repositories)."""
        return [_row(r) for r in self.query("SELECT * FROM pipeline_definitions WHERE repo_full_name=? "
                                            "ORDER BY project, name", (full_name.lower(),))]

    def scheduled_definitions(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM pipeline_definitions WHERE triggers LIKE ? ORDER BY project, name",
                          ('%"schedule": [{%',))
        return [_row(r) for r in rows]

    def status_definitions(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self.query("SELECT * FROM pipeline_definitions WHERE status != 'null'")]

    def owed_event_triggers(self, limit: int = 100) -> list[dict[str, Any]]:
        """Event triggers whose run was not started yet (no command remembered under their key),
        oldest first."""
        rows = self.query(
            "SELECT t.* FROM pipeline_event_triggers t LEFT JOIN idempotency i ON i.key = ? || ':' || t.project "
            "|| ':trigger.event.' || t.event_id || '.' || t.name WHERE i.key IS NULL ORDER BY t.seq LIMIT ?",
            (ACTOR, limit))
        return [dict(r) for r in rows]

    def remembered_run(self, project: str, key: str) -> str | None:
        """The run the service's own command under ``key`` started in ``project``, if it did."""
        rows = self.query("SELECT aggregate_id FROM idempotency WHERE key=?", (f"{ACTOR}:{project}:{key}",))
        return str(rows[0]["aggregate_id"]) if rows else None

    def remembered_keys(self, project: str, prefix: str) -> list[str]:
        """Idempotency keys the service's own commands used in ``project`` that start with
        ``prefix`` (the schedule clock's firings), without the actor and project."""
        scope = f"{ACTOR}:{project}:"
        rows = self.query("SELECT key FROM idempotency WHERE key >= ? AND key < ?",
                          (scope + prefix, scope + prefix + "\U0010ffff"))
        return [r["key"][len(scope):] for r in rows]


def _row(r: sqlite3.Row) -> dict[str, Any]:
    out = dict(r)
    for key in ("repo", "hook", "status", "params", "triggers"):
        out[key] = json.loads(out[key]) if out[key] is not None else None
    out.pop("repo_full_name", None)
    return out


def public(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition as routes show it: the hook's secret and the status token only as "set"."""
    hook, status = definition["hook"], definition["status"]
    return {"project": definition["project"], "name": definition["name"], "digest": definition["digest"],
            "path": definition["path"], "repo": definition["repo"], "params": definition["params"],
            "triggers": definition["triggers"], "definition": definition["definition"],
            "hook": {"kind": hook["kind"], "secret_set": bool(hook["secret"])} if hook else None,
            "status": {"url": status["url"], "token_set": bool(status["token"])} if status else None,
            "registered_at": definition["registered_at"], "seq": definition["seq"]}


def pipeline_of(definition: dict[str, Any]) -> Pipeline:
    return load_pipeline(definition["definition"])


# --- routes -------------------------------------------------------------------------------------

router = APIRouter(prefix="/projects/{project}/definitions", tags=["pipelines"])
Ctx = Annotated[CommandContext, Depends(command_context)]
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
DefinitionName = Annotated[str, Path(pattern=STEP_ID.pattern.removeprefix(r"\A").removesuffix(r"\Z"),
                                     description="the pipeline's name")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Repo(Strict):
    full_name: str = Field(min_length=1, max_length=256, description="owner/name, as the code host names it")
    clone_url: str = Field(min_length=1, max_length=2000, description="https://, file:// or a local path")


class Hook(Strict):
    kind: str = Field(pattern=r"^(github|gitlab)$")
    secret: str = Field(min_length=16, max_length=256, description="the webhook's secret (GitLab: its token)")


class StatusTarget(Strict):
    url: str = Field(min_length=1, max_length=2000, description="the code host's API root, e.g. https://api.github.com")
    token: str = Field(min_length=1, max_length=1000)


class DefinitionCreate(Strict):
    definition: str = Field(min_length=1, max_length=1024 * 1024, description="the pipeline file's text")
    path: str = Field(default=DEFAULT_PATH, max_length=1024, description="where the file is in the repository")
    repo: Repo | None = None
    hook: Hook | None = None
    status: StatusTarget | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="overrides of the file's params")


def _reader(rt: ServiceRuntime) -> DefinitionsReader:
    store = rt.store
    assert isinstance(store, DefinitionsReader)
    return store


@router.post("", status_code=201, **requires(EDITOR))
async def register_definition(project: ProjectName, body: DefinitionCreate, request: Request, rt: Runtime,
                              ctx: Ctx) -> dict[str, Any]:
    """Register (or replace) a pipeline under its file's name; 422 lists the file's problems."""
    from cairn.services.pipelines.hooks import trigger_parts  # hooks imports this module

    name = load_pipeline(body.definition).name
    dump = body.model_dump()
    allow_local = trigger_parts(request.app)[0].pipelines_allow_local_repos
    # the event is on the project's subject, which outside subscribers may read: secrets go sealed
    hook, status = sealed_parts(await key_of(request.app, rt), project, name, dump["hook"], dump["status"])
    await rt.commands.execute(ctx, project=project, aggregate="pipeline", aggregate_id=name,
                              decide=lambda s: register(s, text=body.definition, path=body.path, repo=dump["repo"],
                                                        hook=hook, status=status, params=body.params,
                                                        allow_local=allow_local))
    found = _reader(rt).definition(project, name)
    assert found is not None
    return public(found)


@router.get("", **requires(VIEWER))
async def list_definitions(project: ProjectName, rt: Runtime) -> dict[str, Any]:
    return {"definitions": [public(d) for d in _reader(rt).definitions(project)]}


@router.get("/{name}", **requires(VIEWER))
async def show_definition(project: ProjectName, name: DefinitionName, rt: Runtime) -> dict[str, Any]:
    found = _reader(rt).definition(project, name)
    if found is None:
        raise NotFound(f"no pipeline {name!r} is registered in project {project!r}")
    return public(found)


@router.delete("/{name}", status_code=204, **requires(EDITOR))
async def delete_definition(project: ProjectName, name: DefinitionName, rt: Runtime, ctx: Ctx) -> None:
    await rt.commands.execute(ctx, project=project, aggregate="pipeline", aggregate_id=name,
                              decide=lambda s: delete(s, name=name))
