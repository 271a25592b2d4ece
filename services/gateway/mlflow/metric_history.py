"""Metric history (one run, one key) and the bulk-interval variant, read from the metrics service."""

from __future__ import annotations

from typing import Any

from cairn.services.gateway.mlflow.calls import Call, endpoint
from cairn.services.gateway.mlflow.errors import invalid
from cairn.services.gateway.mlflow.identifiers import RUN_ID, escape
from cairn.services.gateway.mlflow.paging import page, page_token_offset

MAX_BULK_RUNS = 100


async def _history(call: Call, run_id: str, key: str, points: int | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"key": key}
    if points is not None:
        params["points"] = max(points, 3)
    series = await call.metrics("GET", f"/runs/{RUN_ID.segment(run_id, 'run_id')}/metrics", params=params)
    return [{"key": key, "value": v, "timestamp": int(float(t) * 1000), "step": s}
            for s, v, t in zip(series["steps"], series["values"], series["timestamps"])]


@endpoint("GET", "metrics/get-history")
async def get_history(call: Call) -> dict[str, Any]:
    run_id = RUN_ID.check(call.arg("run_id") or call.arg("run_uuid") or call.arg("run_id", required=True), "run_id")
    await call.registry("GET", f"/runs/{escape(run_id)}")  # an unknown run is RESOURCE_DOES_NOT_EXIST
    points = await _history(call, run_id, str(call.arg("metric_key", required=True)))
    size = call.int_arg("max_results")
    if size is None:
        return {"metrics": points}
    chosen, token = page(points, max(size, 1), page_token_offset(call.arg("page_token")))
    return {"metrics": chosen, **({"next_page_token": token} if token else {})}


@endpoint("GET", "metrics/get-history-bulk-interval")
async def get_history_bulk_interval(call: Call) -> dict[str, Any]:
    """Up to ``max_results`` points per run (evenly downsampled), within [start_step, end_step]."""
    run_ids = [RUN_ID.check(r, "run_ids") for r in call.list_arg("run_ids")]
    if not run_ids or len(run_ids) > MAX_BULK_RUNS:
        raise invalid(f"run_ids must name 1 to {MAX_BULK_RUNS} runs")
    key = str(call.arg("metric_key", required=True))
    size = call.int_arg("max_results", 320) or 320
    start, end = call.int_arg("start_step"), call.int_arg("end_step")
    out: list[dict[str, Any]] = []
    for run_id in run_ids:
        points = await _history(call, run_id, key)
        points = [p for p in points if (start is None or p["step"] >= start) and (end is None or p["step"] <= end)]
        if len(points) > size:
            stride = (len(points) - 1) / (size - 1) if size > 1 else len(points)
            points = [points[round(i * stride)] for i in range(size)]
        out.extend({**p, "run_id": run_id} for p in points)
    return {"metrics": out}
