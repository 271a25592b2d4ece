"""Traces HTTP API of the metrics service (``/projects/{p}/traces/...``): spans in (to Parquet),
trace info, tags, run links, assessments and deletes as events of record, search and
filter correlation. The gateway's MLflow layer and OTLP receiver are its callers."""

from __future__ import annotations

import functools
import json
import math
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.envelope import subject_for
from cairn.kernel.errors import InvalidInput
from cairn.kernel.http import command_context
from cairn.kernel.identity import ADMIN, EDITOR, VIEWER, requires
from cairn.kernel.ids import PROJECT_NAME_PATTERN
from cairn.kernel.store import load_state
from cairn.services.metrics import traces_domain as domain
from cairn.services.metrics.runtime import MetricsRuntime
from cairn.services.metrics.traces_search import matches, parse_filter, parse_order
from cairn.services.metrics.traces_spans import SpanFiles, info_from_spans

router = APIRouter(tags=["traces"])
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
TraceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="trace id")]
Ctx = Annotated[CommandContext, Depends(command_context)]
Token = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
MAX_SCAN = 50_000  # traces read for one search or correlation
MAX_ASSESSMENT_BYTES = 64 << 10  # one assessment travels in one event of record


async def _runtime(request: Request) -> MetricsRuntime:
    return request.app.state.metrics


Runtime = Annotated[MetricsRuntime, Depends(_runtime)]


def spans_of(rt: MetricsRuntime) -> SpanFiles:
    return SpanFiles(rt.root / "traces")


class TraceInfoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment_id: Token | None = None
    request_time_ms: int | None = Field(default=None, ge=0)
    execution_ms: int | None = Field(default=None, ge=0)
    state: str | None = None
    request_preview: str | None = Field(default=None, max_length=10_000)
    response_preview: str | None = Field(default=None, max_length=10_000)
    client_request_id: str | None = Field(default=None, max_length=1000)
    metadata: dict[str, Annotated[str, Field(max_length=65_536)]] = Field(default_factory=dict, max_length=1000)
    tags: dict[str, Annotated[str, Field(max_length=65_536)]] = Field(default_factory=dict, max_length=1000)


class SpansIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment_id: Token
    spans: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=250, pattern=r"^[^\x00-\x1f\x7f]+$")
    value: str | None = Field(default=None, max_length=65_536)


class LinksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_ids: list[Token] = Field(min_length=1, max_length=100)


class AssessmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assessment: dict[str, Any]
    create: bool = True


class DeleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment_id: Token
    max_timestamp_ms: int | None = None
    max_traces: int | None = Field(default=None, ge=1)
    trace_ids: list[Token] = Field(default_factory=list, max_length=1000)


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment_ids: list[Token] = Field(min_length=1, max_length=100)
    filter: str | None = Field(default=None, max_length=10_000)
    order_by: list[str] = Field(default_factory=list, max_length=10)
    max_results: int = Field(default=100, ge=1, le=1000)
    page_token: str | None = Field(default=None, max_length=20)


class CorrelationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment_ids: list[Token] = Field(min_length=1, max_length=100)
    filter1: str = Field(max_length=10_000)
    filter2: str = Field(max_length=10_000)
    base_filter: str | None = Field(default=None, max_length=10_000)


def _state(rt: MetricsRuntime, project: str, trace_id: str) -> dict[str, Any] | None:
    return load_state(rt.runtime.store.reader(), subject_for(project, "trace", trace_id))[1]


def _public(state: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in state.items() if k != "deleted"}
    out["assessments"] = list(state["assessments"].values())
    return out


async def _command(rt: MetricsRuntime, ctx: CommandContext, project: str, trace_id: str, decide: Any) -> None:
    await rt.runtime.commands.execute(ctx, project=project, aggregate="trace", aggregate_id=trace_id, decide=decide)


@router.post("/projects/{project}/traces/{trace_id}/info", **requires(EDITOR))
async def record_info(project: ProjectName, trace_id: TraceId, body: TraceInfoIn, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Record or complete a trace's info (fields given replace; metadata and tags merge)."""
    info = {"trace_id": trace_id, **body.model_dump()}
    if _state(rt, project, trace_id) is None and not body.experiment_id:
        raise InvalidInput(f"trace {trace_id} is new: name its experiment_id", details={"field": "experiment_id"})
    await _command(rt, ctx, project, trace_id, lambda s: domain.decide_record(s, info))
    return _public(domain.live(_state(rt, project, trace_id), trace_id))


@router.post("/projects/{project}/traces/{trace_id}/spans", **requires(EDITOR))
async def log_spans(project: ProjectName, trace_id: TraceId, body: SpansIn, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Write a batch of one trace's spans to Parquet (durable before the answer), then record
    what they tell about the trace (a new trace, or its root span's times, state and previews)."""
    current = _state(rt, project, trace_id)
    if current is not None and not current.get("deleted") and current.get("experiment_id") != body.experiment_id:
        raise InvalidInput(f"trace {trace_id} belongs to experiment {current.get('experiment_id')}",
                           details={"field": "experiment_id"})
    written = spans_of(rt).write(project, trace_id, body.spans)
    info = info_from_spans(trace_id, body.experiment_id, body.spans)
    if current is not None and not current.get("deleted") and current.get("execution_ms") is not None:
        # the trace's info was already completed (its own record wins over what spans tell)
        info = {"trace_id": trace_id, "experiment_id": body.experiment_id, "tags": info["tags"]}
    await _command(rt, ctx, project, trace_id, lambda s: domain.decide_record(s, info))
    return {"trace_id": trace_id, "spans": written}


@router.get("/projects/{project}/traces/{trace_id}", **requires(VIEWER))
async def get_trace(project: ProjectName, trace_id: TraceId, rt: Runtime) -> dict[str, Any]:
    await rt.runtime.commands.settled()
    return _public(domain.live(_state(rt, project, trace_id), trace_id))


@router.get("/projects/{project}/traces/{trace_id}/spans", **requires(VIEWER))
async def get_spans(project: ProjectName, trace_id: TraceId, rt: Runtime) -> dict[str, Any]:
    """The trace's info and every span (MLflow's span form)."""
    info = _public(domain.live(_state(rt, project, trace_id), trace_id))
    return {"info": info, "spans": spans_of(rt).read(project, trace_id)}


@router.post("/projects/{project}/traces/{trace_id}/tags", **requires(EDITOR))
async def set_tag(project: ProjectName, trace_id: TraceId, body: TagIn, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Set a tag, or delete it when ``value`` is null."""
    await _command(rt, ctx, project, trace_id, lambda s: domain.decide_tag(s, trace_id, body.key, body.value))
    return {}


@router.post("/projects/{project}/traces/{trace_id}/links", **requires(EDITOR))
async def link_runs(project: ProjectName, trace_id: TraceId, body: LinksIn, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    for run_id in body.run_ids:
        await rt.check_run(project, run_id)
    await _command(rt, ctx, project, trace_id, lambda s: domain.decide_link(s, trace_id, body.run_ids))
    return {}


@router.post("/projects/{project}/traces/{trace_id}/assessments", **requires(EDITOR))
async def set_assessment(project: ProjectName, trace_id: TraceId, body: AssessmentIn, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Create (a new id is given) or replace an assessment; answers it as stored."""
    assessment = dict(body.assessment)
    if len(json.dumps(assessment)) > MAX_ASSESSMENT_BYTES:
        raise InvalidInput(f"the assessment is over {MAX_ASSESSMENT_BYTES} bytes as JSON; keep values and "
                           "rationale shorter", details={"field": "assessment"})
    if body.create:
        assessment["assessment_id"] = f"a-{uuid.uuid4().hex}"
    if not isinstance(assessment.get("assessment_name"), str) or not assessment["assessment_name"]:
        raise InvalidInput("an assessment needs an assessment_name", details={"field": "assessment_name"})
    assessment["trace_id"] = trace_id
    assessment.setdefault("valid", True)
    await _command(rt, ctx, project, trace_id,
                   lambda s: domain.decide_assessment(s, trace_id, assessment, creating=body.create))
    state = domain.live(_state(rt, project, trace_id), trace_id)
    return {"assessment": state["assessments"][assessment["assessment_id"]]}


@router.delete("/projects/{project}/traces/{trace_id}/assessments/{assessment_id}", **requires(EDITOR))
async def delete_assessment(project: ProjectName, trace_id: TraceId, assessment_id: TraceId, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    await _command(rt, ctx, project, trace_id, lambda s: domain.decide_assessment_delete(s, trace_id, assessment_id))
    return {}


def _experiment_traces(rt: MetricsRuntime, project: str, experiment_ids: list[str]) -> list[dict[str, Any]]:
    marks = ",".join("?" * len(experiment_ids))
    rows = rt.runtime.store.query(
        f"SELECT t.created_seq, a.state FROM traces t JOIN aggregates a ON a.subject = t.subject "
        f"WHERE t.project=? AND t.experiment_id IN ({marks}) AND t.deleted=0 ORDER BY t.created_seq LIMIT ?",
        (project, *experiment_ids, MAX_SCAN))
    out = []
    for row in rows:
        state = json.loads(row["state"])
        state["_seq"] = row["created_seq"]
        out.append(state)
    return out


def _filtered(rt: MetricsRuntime, project: str, traces: list[dict[str, Any]], text: str | None) -> list[dict[str, Any]]:
    clauses = parse_filter(text)
    files = spans_of(rt)
    return [t for t in traces if matches(t, clauses, lambda t=t: files.read(project, t["trace_id"]))]


@router.post("/projects/{project}/traces/search", **requires(VIEWER))
async def search(project: ProjectName, body: SearchIn, rt: Runtime) -> dict[str, Any]:
    """MLflow's trace search: filter, order (ties: newest record first), offset page tokens."""
    order = parse_order(body.order_by)
    await rt.runtime.commands.settled()
    found = _filtered(rt, project, _experiment_traces(rt, project, body.experiment_ids), body.filter)
    found.sort(key=lambda t: t["_seq"], reverse=order[0][1])
    for field, descending in reversed(order):
        found.sort(key=functools.partial(_sort_key, field=field), reverse=descending)
    try:
        offset = int(body.page_token or 0)
    except ValueError:
        raise InvalidInput(f"invalid page_token {body.page_token!r}", details={"field": "page_token"}) from None
    page = found[offset:offset + body.max_results]
    more = offset + body.max_results < len(found)
    return {"traces": [_public(t) for t in page], "next_page_token": str(offset + body.max_results) if more else None}


def _sort_key(trace: dict[str, Any], field: str) -> tuple[int, Any]:
    value = trace["tags"].get("mlflow.traceName") if field == "name" else trace.get(field)
    return (0, "") if value is None else (1, value)


@router.post("/projects/{project}/traces/delete", **requires(ADMIN))
async def delete_traces(project: ProjectName, body: DeleteIn, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Delete the named traces of an experiment, or its traces older than ``max_timestamp_ms``
    (oldest first, at most ``max_traces``): one ``trace.deleted`` each."""
    if bool(body.trace_ids) == (body.max_timestamp_ms is not None):
        raise InvalidInput("Either `max_timestamp_millis` or `request_ids` must be specified, not both",
                           details={"field": "trace_ids"})
    traces = _experiment_traces(rt, project, [body.experiment_id])
    if body.trace_ids:
        wanted = set(body.trace_ids)
        chosen = [t for t in traces if t["trace_id"] in wanted]
    else:
        chosen = sorted((t for t in traces if t["request_time_ms"] <= (body.max_timestamp_ms or 0)),
                        key=lambda t: (t["request_time_ms"], t["_seq"]))
        chosen = chosen[:body.max_traces] if body.max_traces else chosen
    for t in chosen:
        await _command(rt, ctx, project, t["trace_id"], lambda s, tid=t["trace_id"]: domain.decide_delete(s, tid))
    return {"deleted": len(chosen)}


@router.post("/projects/{project}/traces/correlation", **requires(VIEWER))
async def correlation(project: ProjectName, body: CorrelationIn, rt: Runtime) -> dict[str, Any]:
    """How two filters co-occur among the traces (that pass ``base_filter``): counts and NPMI."""
    base = _filtered(rt, project, _experiment_traces(rt, project, body.experiment_ids), body.base_filter)
    one = {t["trace_id"] for t in _filtered(rt, project, base, body.filter1)}
    two = {t["trace_id"] for t in _filtered(rt, project, base, body.filter2)}
    total, joint = len(base), len(one & two)
    return {"total_count": total, "filter1_count": len(one), "filter2_count": len(two), "joint_count": joint,
            "npmi": npmi(total, len(one), len(two), joint), "npmi_smoothed": npmi(total, len(one), len(two), joint, 0.5)}


def npmi(total: int, n1: int, n2: int, joint: int, smoothing: float = 0.0) -> float:
    """Normalized pointwise mutual information; NaN when a filter matches nothing (undefined),
    -1 when they never co-occur, 1 when they always do. ``smoothing`` adds that many pseudo-counts
    to each cell of the 2x2 table (Jeffreys-style), so small samples are not extreme."""
    if not smoothing and (total == 0 or n1 == 0 or n2 == 0):
        return math.nan
    cells = [c + smoothing for c in (joint, n1 - joint, n2 - joint, total - n1 - n2 + joint)]
    n = sum(cells)
    if n <= 0:
        return math.nan
    p12, p1, p2 = cells[0] / n, (cells[0] + cells[1]) / n, (cells[0] + cells[2]) / n
    if p12 == 0:
        return -1.0
    if p12 == 1:
        return 1.0
    return math.log(p12 / (p1 * p2)) / -math.log(p12)

