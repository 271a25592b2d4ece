"""Metrics HTTP API: ingest batches (JSON or Arrow IPC), read one key of one run (full or
downsampled), many runs with a cross-run aggregate, and summaries per run and key."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.errors import InvalidInput, PayloadTooLarge, Unavailable
from cairn.kernel.identity import EDITOR, VIEWER, requires
from cairn.kernel.ids import ID_PATTERN, KEY_PATTERN, PROJECT_NAME_PATTERN
from cairn.protocol import ARROW_STREAM, H_CAIRN_METRICS_SEQ, H_CAIRN_MIN_METRICS_SEQ
from cairn.services.metrics.domain import parse_arrow, parse_json, to_ipc
from cairn.services.metrics.queries import (
    cross_run_aggregate,
    downsample,
    json_float,
    load_series,
    step_range,
)
from cairn.services.metrics.runtime import MetricsRuntime
from cairn.services.metrics.writer import SUBJECT_PREFIX, summarize

router = APIRouter()
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
RunId = Annotated[str, Path(pattern=ID_PATTERN, description="run id")]
Method = Literal["minmax", "lttb"]


async def _runtime(request: Request) -> MetricsRuntime:
    """The metrics runtime, once this replica shows every batch up to the request's
    ``Cairn-Min-Metrics-Seq`` (read-your-writes across replicas: a 503 after the wait)."""
    rt: MetricsRuntime = request.app.state.metrics
    named = request.headers.get(H_CAIRN_MIN_METRICS_SEQ)
    if named is not None:
        text = named.strip()
        if not text.isdigit() or len(text) > 20:
            raise InvalidInput(f"{H_CAIRN_MIN_METRICS_SEQ} must be a metrics-stream sequence (digits), "
                               f"not {text[:40]!r}")
        await rt.wait_shown(int(text))
    return rt


Runtime = Annotated[MetricsRuntime, Depends(_runtime)]


class MetricsSearch(BaseModel):
    """Query for one key across many runs."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=KEY_PATTERN)
    run_ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(min_length=1, max_length=1000)
    points: int | None = Field(default=1000, ge=3, le=100_000, description="downsample each run to this")
    method: Method = "minmax"
    aggregate: bool = True


@router.post("/projects/{project}/runs/{run_id}/metrics", status_code=202, tags=["metrics"], **requires(EDITOR))
async def log_batch(project: ProjectName, run_id: RunId, request: Request, rt: Runtime,
                    batch_id: Annotated[str | None, Query(description="batch id for Arrow bodies")] = None
                    ) -> JSONResponse:
    """Accept a batch; 202 once it is durable in the metrics stream. A repeated batch id counts once."""
    body = await request.body()
    if len(body) > rt.settings.max_batch_bytes:
        raise PayloadTooLarge(f"the batch is {len(body)} bytes; send at most {rt.settings.max_batch_bytes}",
                              details={"limit": rt.settings.max_batch_bytes})
    if request.headers.get("content-type", "").split(";")[0].strip() == ARROW_STREAM:
        batch_id, table = parse_arrow(body, batch_id or request.headers.get("x-cairn-batch-id"),
                                      rt.settings.max_batch_points)
    else:
        try:
            document = json.loads(body, parse_constant=lambda name: name)  # bare NaN/Infinity too
        except ValueError as err:
            raise InvalidInput(f"the body is not JSON ({err}); send JSON or {ARROW_STREAM}") from None
        batch_id, table = parse_json(document, rt.settings.max_batch_points)
    await rt.check_run(project, run_id)
    if rt.tail.rows > rt.settings.max_tail_points:
        raise Unavailable("the metrics writer is behind; retry this batch shortly", details={"retry_after": 1})
    payload = to_ipc(table)
    if len(payload) > rt.nc.max_payload:
        raise PayloadTooLarge(f"the batch encodes to {len(payload)} bytes; the stream takes at most "
                              f"{rt.nc.max_payload}: send fewer points per batch", details={"limit": rt.nc.max_payload})
    headers = {"Nats-Msg-Id": f"{project}/{run_id}/{batch_id}"}
    try:
        ack = await rt.js.publish(f"{SUBJECT_PREFIX}.{project}.{run_id}", payload, headers=headers, timeout=10)
    except Exception as err:  # noqa: BLE001 - any failure means "not durable": the client retries
        raise Unavailable(f"the metrics stream did not take the batch ({type(err).__name__}); retry it "
                          "with the same batch_id", details={"retry_after": 1}) from None
    if not ack.duplicate:
        rt.tail.add(ack.seq, project, run_id, table)
    return JSONResponse({"batch_id": batch_id, "points": table.num_rows, "sequence": ack.seq,
                         "duplicate": bool(ack.duplicate)}, status_code=202,
                        headers={H_CAIRN_METRICS_SEQ: str(ack.seq)})


@router.get("/projects/{project}/runs/{run_id}/metrics", tags=["metrics"], response_model=None, **requires(VIEWER))
async def metric_history(project: ProjectName, run_id: RunId, rt: Runtime, request: Request,
                         key: Annotated[str, Query(pattern=KEY_PATTERN)],
                         points: Annotated[int | None, Query(ge=3, le=1_000_000, description="downsample to N")] = None,
                         method: Method = "minmax",
                         step_min: Annotated[int | None, Query(description="only steps >= this")] = None,
                         step_max: Annotated[int | None, Query(description="only steps <= this")] = None,
                         ) -> dict[str, Any] | Response:
    """One key's history: every point, or ``points`` of them chosen by ``method``. JSON, or an Arrow
    IPC stream (columns step, value, timestamp; total and method in the schema metadata) when the
    request accepts ``application/vnd.apache.arrow.stream``. ``step_min``/``step_max`` (inclusive,
    either optional) cut the range first and ``points`` applies within it, so a chart's zoom gets
    every spike of the zoomed range; ``total`` counts the points in the range."""
    if step_min is not None and step_max is not None and step_min > step_max:
        raise InvalidInput(f"step_min ({step_min}) is above step_max ({step_max}); swap them",
                           details={"field": "step_min"})
    series = step_range(load_series(rt.store, rt.root, rt.tail, project, run_id, key), step_min, step_max)
    shown = downsample(series, points, method)
    used = method if points is not None and series.steps.size > points else "full"
    if ARROW_STREAM in request.headers.get("accept", ""):
        meta = {"run_id": run_id, "key": key, "total": str(series.steps.size), "method": used}
        return Response(to_ipc(shown.to_arrow(meta)), media_type=ARROW_STREAM)
    return JSONResponse({"run_id": run_id, "key": key, "total": int(series.steps.size), "method": used,
                         **shown.to_json()})


@router.get("/projects/{project}/runs/{run_id}/metrics/summary", tags=["metrics"], **requires(VIEWER))
async def run_summary(project: ProjectName, run_id: RunId, rt: Runtime) -> dict[str, Any]:
    """Per key: count, last (at the highest step), min and max (NaN skipped), including unwritten points."""
    return {"run_id": run_id, "summaries": _merged(rt.store.summaries(project, run_id), rt.tail.of_run(project, run_id))}


class RunsSummaryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(min_length=1, max_length=1000)


@router.post("/projects/{project}/metrics/summaries/runs", tags=["metrics"], response_model=None, **requires(VIEWER))
async def runs_summaries(project: ProjectName, query: RunsSummaryQuery, rt: Runtime) -> Response:
    """The per-run summary of up to 1,000 runs in one call (for run listings such as MLflow's search):
    one query for the written points and one pass over the tail, not one of each per run."""
    run_ids = list(dict.fromkeys(query.run_ids))
    stored = rt.store.runs_summaries(project, run_ids)
    tails = rt.tail.of_runs(project, set(run_ids))
    return _json({"runs": {run_id: _merged(stored.get(run_id, []), tails.get(run_id, [])) for run_id in run_ids}})


def _merged(stored: list[dict[str, Any]], tail: list[Any]) -> list[dict[str, Any]]:
    """A run's stored summaries with the points still in the tail folded in, as JSON rows."""
    merged = {s["key"]: s for s in stored}
    for table in tail:
        for s in summarize(table, np.zeros(table.num_rows, dtype=np.int64)):
            old = merged.get(s["key"])
            if old is None:
                merged[s["key"]] = s
                continue
            old["count"] += s["count"]
            for name, pick in (("min", min), ("max", max)):
                values = [v for v in (old[name], s[name]) if v is not None]
                old[name] = pick(values) if values else None
            if s["last_step"] >= old["last_step"]:
                old["last"], old["last_step"], old["last_time"] = s["last"], s["last_step"], s["last_time"]
    return [{"key": k, "count": s["count"], "last": _j(s["last"]), "last_step": s["last_step"],
             "last_time": s.get("last_time"), "min": _j(s["min"]), "max": _j(s["max"])}
            for k, s in sorted(merged.items())]


def _json(body: dict[str, Any]) -> Response:
    """Plain rows already (NaN and infinities as strings): no pass of FastAPI's encoder."""
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.get("/projects/{project}/metrics/summaries", tags=["metrics"], response_model=None, **requires(VIEWER))
async def key_summaries(project: ProjectName, rt: Runtime, key: Annotated[str, Query(pattern=KEY_PATTERN)],
                        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                        after: Annotated[str, Query(max_length=128, description="last run id of the previous page")] = ""
                        ) -> Response:
    """One key's summary (count, last, min, max) for every run that logged it, as written to Parquet
    (points still in the tail are left out here), paged by run id: the feed for run search."""
    rows = rt.store.key_summaries(project, key, limit, after)
    summaries = [{**r, "last": _j(r["last"]), "min": _j(r["min"]), "max": _j(r["max"])} for r in rows]
    return _json({"key": key, "summaries": summaries, "next_after": rows[-1]["run_id"] if len(rows) == limit else None})


def _j(value: float | None) -> float | str | None:
    return None if value is None else json_float(value)


@router.post("/projects/{project}/metrics/search", tags=["metrics"], response_model=None, **requires(VIEWER))
async def search_metrics(project: ProjectName, query: MetricsSearch, rt: Runtime) -> JSONResponse:
    """The same key for up to 1,000 runs, each downsampled, plus a cross-run aggregate by step."""
    series = [load_series(rt.store, rt.root, rt.tail, project, run_id, query.key) for run_id in query.run_ids]
    runs = []
    for run_id, s in zip(query.run_ids, series):
        runs.append({"run_id": run_id, "total": int(s.steps.size), **downsample(s, query.points, query.method).to_json()})
    out: dict[str, Any] = {"key": query.key, "runs": runs}
    if query.aggregate:
        out["aggregate"] = cross_run_aggregate(series, query.points)
    return JSONResponse(out)  # plain lists already: no per-value pass of FastAPI's encoder

