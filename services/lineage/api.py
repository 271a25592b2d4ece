"""Lineage routes: upstream, downstream, impact, graph (JSON, DOT, Mermaid), OpenLineage export,
and read-only SQL for site admins. Each route declares the role it needs; walks show only the
signed caller's projects (site admins and other services see everything)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.errors import Forbidden, InvalidInput
from cairn.kernel.identity import SIGNED_IN, SITE_ADMIN, VIEWER, caller_of, requires
from cairn.kernel.ids import ID_PATTERN, PROJECT_NAME_PATTERN
from cairn.services.lineage.queries import IMPACT_KINDS, AsOf, LineageQueries, node_json
from cairn.services.lineage.refs import EXAMPLES
from cairn.services.lineage.render import openlineage_events, to_dot, to_mermaid
from cairn.services.lineage.sql import MAX_ROWS, MAX_SECONDS, run_sql
from cairn.services.lineage.store import LineageStore

router = APIRouter()
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
NodeParam = Annotated[str, Query(min_length=3, max_length=300, description=f"a node reference: {EXAMPLES}")]
DepthParam = Annotated[int | None, Query(ge=1, le=1000, description="stop after this many hops (default: all)")]
AsOfParam = Annotated[str | None, Query(max_length=64, description="a stream sequence or an ISO time (UTC)")]


def _store(request: Request) -> LineageStore:
    store = request.app.state.runtime.store
    assert isinstance(store, LineageStore)
    return store


async def _queries(request: Request) -> LineageQueries:
    return LineageQueries(_store(request))


async def _projects(request: Request) -> list[str] | None:
    """The caller's projects; None means every project."""
    return caller_of(request).projects


Queries = Annotated[LineageQueries, Depends(_queries)]
Projects = Annotated[list[str] | None, Depends(_projects)]


class SqlQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str = Field(min_length=1, max_length=20_000, examples=["SELECT kind, count(*) FROM lineage_nodes GROUP BY 1"])
    max_rows: int = Field(default=1000, ge=1, le=MAX_ROWS)
    timeout_s: float = Field(default=5.0, gt=0, le=MAX_SECONDS)


def _walk(q: LineageQueries, project: str | None, projects: list[str] | None, node: str, direction: str,
          depth: int | None, as_of: str | None, kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    point = AsOf.parse(as_of)
    nid, found = q.resolve(node, project, projects, point)
    items = q.walk(nid, direction, depth=depth, projects=projects, as_of=point, kinds=kinds)
    for item in items:
        item.pop("nid")
    return {"node": found, "direction": "impact" if kinds else direction, "depth": depth,
            "as_of": point.as_dict() if point else None, "count": len(items), "nodes": items}


@router.get("/projects/{project}/upstream", tags=["lineage"], **requires(VIEWER))
def upstream(project: ProjectName, node: NodeParam, q: Queries, projects: Projects,
             depth: DepthParam = None, as_of: AsOfParam = None) -> dict[str, Any]:
    """Everything the node came from (nearest first), optionally cut at a depth or taken as of a point."""
    return _walk(q, project, projects, node, "upstream", depth, as_of)


@router.get("/projects/{project}/downstream", tags=["lineage"], **requires(VIEWER))
def downstream(project: ProjectName, node: NodeParam, q: Queries, projects: Projects,
               depth: DepthParam = None, as_of: AsOfParam = None) -> dict[str, Any]:
    """Everything made from the node, blobs included."""
    return _walk(q, project, projects, node, "downstream", depth, as_of)


@router.get("/projects/{project}/impact", tags=["lineage"], **requires(VIEWER))
def impact(project: ProjectName, node: NodeParam, q: Queries, projects: Projects,
           depth: DepthParam = None, as_of: AsOfParam = None) -> dict[str, Any]:
    """Every run, job, dataset version, model version, alias and deployment that depends on the node."""
    return _walk(q, project, projects, node, "downstream", depth, as_of, IMPACT_KINDS)


GRAPH_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {
    "application/json": {"schema": {"type": "object"}}, "text/vnd.graphviz": {"schema": {"type": "string"}},
    "text/plain": {"schema": {"type": "string"}}}}}


@router.get("/projects/{project}/graph", tags=["lineage"], response_model=None, responses=GRAPH_RESPONSES,
            **requires(VIEWER))
def graph(project: ProjectName, node: NodeParam, q: Queries, projects: Projects,
          direction: Literal["upstream", "downstream", "both"] = "upstream",
          format: Literal["json", "dot", "mermaid"] = "json",
          depth: DepthParam = None, as_of: AsOfParam = None) -> dict[str, Any] | Response:
    """The lineage graph around a node (a model version's, by default upstream) as JSON, DOT or Mermaid."""
    point = AsOf.parse(as_of)
    nid, found = q.resolve(node, project, projects, point)
    result = q.graph(nid, found, direction, depth=depth, projects=projects, as_of=point)
    if format == "dot":
        return PlainTextResponse(to_dot(result), media_type="text/vnd.graphviz")
    if format == "mermaid":
        return PlainTextResponse(to_mermaid(result), media_type="text/plain")
    return dict(result, as_of=point.as_dict() if point else None)


def _run_events(q: LineageQueries, project: str, projects: list[str] | None, nid: int) -> list[dict[str, Any]]:
    row = q._node_row(nid)
    assert row is not None
    run = node_json(row)
    status = q.statuses([nid]).get(nid)
    run["status"], run["status_time"] = (status[0], status[2].isoformat() + "Z") if status else (None, None)
    inputs, outputs = q.run_io(nid, projects)
    return openlineage_events(project, run, inputs, outputs)


@router.get("/projects/{project}/runs/{run_id}/openlineage", tags=["lineage"], **requires(VIEWER))
def run_openlineage(project: ProjectName, run_id: Annotated[str, Path(pattern=ID_PATTERN)],
                    q: Queries, projects: Projects) -> dict[str, Any]:
    """The run's lineage as OpenLineage run events (START, then COMPLETE / FAIL / ABORT once it ended)."""
    nid, _ = q.resolve(f"run:{run_id}", project, projects)
    return {"events": _run_events(q, project, projects, nid)}


@router.get("/projects/{project}/openlineage", tags=["lineage"], **requires(VIEWER))
def project_openlineage(project: ProjectName, q: Queries, projects: Projects,
                        limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    """OpenLineage run events for the project's runs, oldest first (at most ``limit`` runs)."""
    events: list[dict[str, Any]] = []
    for nid in q.runs_in(project, limit):
        events += _run_events(q, project, projects, nid)
    return {"events": events}


@router.get("/node", tags=["lineage"], **requires(SIGNED_IN))
def shared_node(node: NodeParam, q: Queries, projects: Projects,
                direction: Literal["upstream", "downstream"] = "downstream",
                depth: DepthParam = None, as_of: AsOfParam = None) -> dict[str, Any]:
    """Lineage of a node named across projects (``blob:<digest>``, ``commit:<sha>``,
    ``dataset:<project>/<name>@v3``), limited to the caller's projects."""
    return _walk(q, None, projects, node, direction, depth, as_of)


@router.get("/stats", tags=["lineage"], **requires(SITE_ADMIN))
def stats(request: Request, projects: Projects) -> dict[str, Any]:
    """Node and edge counts, and events seen by type (mapped into the graph or only counted)."""
    store = _store(request)
    if projects is not None:
        raise Forbidden("lineage statistics cover every project: this needs a site admin token")
    return {"nodes": dict(store.query("SELECT kind, count(*) FROM all_nodes GROUP BY 1 ORDER BY 1")),
            "edges": dict(store.query("SELECT type, count(*) FROM edges GROUP BY 1 ORDER BY 1")),
            "event_types": [{"type": t, "mapped": m, "events": n} for t, m, n in store.query(
                "SELECT type, mapped, events FROM event_types ORDER BY type")]}


@router.post("/admin/sql", tags=["lineage"], **requires(SITE_ADMIN))
def sql(body: SqlQuery, request: Request, projects: Projects) -> dict[str, Any]:
    """Read-only SQL over the documented views (lineage_nodes, lineage_edges, lineage_event_types),
    site admins only, with a row cap and a time limit."""
    if projects is not None:
        raise Forbidden("raw SQL over lineage is for site admins only")
    if not body.sql.strip():
        raise InvalidInput("sql is empty", details={"field": "sql"})
    return run_sql(_store(request), body.sql, max_rows=body.max_rows, timeout_s=body.timeout_s)
