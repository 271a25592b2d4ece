"""Metric history (one run, one key), and the UI's bulk reads: ``get-history-bulk`` (every point
of a key for up to 100 runs) and ``get-history-bulk-interval`` (the points at steps sampled the
way MLflow samples them), read from the metrics service.

Timestamps: the metrics service keeps seconds as float64; MLflow sends and expects epoch
milliseconds. ``round`` (not ``int``) turns them back, so 1001 ms reads back as 1001, not 1000.
"""

from __future__ import annotations

import bisect
from typing import Any

from cairn.services.gateway.mlflow.calls import Call, endpoint
from cairn.services.gateway.mlflow.errors import invalid
from cairn.services.gateway.mlflow.identifiers import RUN_ID, escape
from cairn.services.gateway.mlflow.paging import page, page_token_offset
from cairn.services.gateway.mlflow.validation import array, as_int, missing, string

MAX_BULK_RUNS = 100
MAX_HISTORY_BULK_RESULTS = 25000  # MLflow's cap on get-history-bulk
MAX_RESULTS_PER_RUN = 2500  # MLflow's bound on get-history-bulk-interval's max_results


def millis_of(seconds: float) -> int:
    return int(round(float(seconds) * 1000))


async def _history(call: Call, run_id: str, key: str) -> list[dict[str, Any]]:
    series = await call.metrics("GET", f"/runs/{RUN_ID.segment(run_id, 'run_id')}/metrics", params={"key": key})
    return [{"key": key, "value": v, "timestamp": millis_of(t), "step": s}
            for s, v, t in zip(series["steps"], series["values"], series["timestamps"])]


@endpoint("GET", "metrics/get-history")
async def get_history(call: Call) -> dict[str, Any]:
    run_id = RUN_ID.check(call.arg("run_id") or call.arg("run_uuid") or call.arg("run_id", required=True), "run_id")
    await call.registry("GET", f"/runs/{escape(run_id)}")  # an unknown run is RESOURCE_DOES_NOT_EXIST
    points = await _history(call, run_id, str(call.arg("metric_key", required=True)))
    size = call.int_arg("max_results")
    if size is None:
        if call.arg("page_token"):
            page_token_offset(call.arg("page_token"))  # a token this server did not issue is a 400
        return {"metrics": points}
    chosen, token = page(points, max(size, 1), page_token_offset(call.arg("page_token")))
    return {"metrics": chosen, **({"next_page_token": token} if token else {})}


@endpoint("GET", "metrics/get-history-bulk")
async def get_history_bulk(call: Call) -> dict[str, Any]:
    """Every point of ``metric_key`` for each ``run_id`` (runs by id, points by time, step, value)."""
    run_ids = [str(r) for r in call.multi.get("run_id", []) if r != ""] or \
        [str(r) for r in call.list_arg("run_id") if r != ""]
    if not run_ids:
        raise invalid("GetMetricHistoryBulk request must specify at least one run_id.")
    if len(run_ids) > MAX_BULK_RUNS:
        raise invalid(f"GetMetricHistoryBulk request cannot specify more than {MAX_BULK_RUNS} run_ids. "
                      f"Received {len(run_ids)} run_ids.")
    key = call.args.get("metric_key")
    if key is None:
        raise invalid("GetMetricHistoryBulk request must specify a metric_key.")
    size = min(as_int(call.args.get("max_results", MAX_HISTORY_BULK_RESULTS), "max_results"),
               MAX_HISTORY_BULK_RESULTS)
    out: list[dict[str, Any]] = []
    for run_id in sorted(RUN_ID.check(r, "run_id") for r in run_ids):
        points = sorted(await _history(call, run_id, str(key)),
                        key=lambda p: (p["timestamp"], p["step"], p["value"]))
        out.extend({**p, "run_id": run_id} for p in points[:size])
    return {"metrics": out[:size]}


def sampled_steps(all_runs: list[list[int]], max_results: int, start: int | None, end: int | None) -> list[int]:
    """MLflow's sampling: at most ``max_results`` evenly spaced steps of those the runs logged in
    [start, end] (the last one always kept), plus each run's first and last step in range."""
    ends = {step for run in all_runs if run for step in (min(run), max(run))}
    steps = sorted({step for run in all_runs for step in run})
    if start is None or end is None:
        start, end = 0, (steps[-1] if steps else 0)
    ends = {s for s in ends if start <= s <= end}
    lo, hi = bisect.bisect_left(steps, start), bisect.bisect_right(steps, end)
    if hi - lo <= max_results:
        chosen = set(steps[lo:hi])
    else:
        interval = (hi - lo) / max_results
        chosen = {steps[lo + int(i * interval)] for i in range(max_results) if lo + int(i * interval) < hi}
        chosen.add(steps[hi - 1])
    return sorted(chosen | ends)


@endpoint("GET", "metrics/get-history-bulk-interval")
async def get_history_bulk_interval(call: Call) -> dict[str, Any]:
    """The points of ``metric_key`` at sampled steps, for up to 100 runs (in the order given)."""
    run_ids = [r for r in array(call, "run_ids") if r != ""]
    if not run_ids:
        raise missing("run_ids")
    if len(run_ids) > MAX_BULK_RUNS:
        raise invalid(f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} run_ids. "
                      f"Received {len(run_ids)} run_ids.")
    key = string(call, "metric_key", required=True)
    assert key is not None
    size = as_int(call.args.get("max_results", MAX_RESULTS_PER_RUN), "max_results")
    if not 1 <= size <= MAX_RESULTS_PER_RUN:
        raise invalid(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}.")
    raw_start, raw_end = call.args.get("start_step"), call.args.get("end_step")
    start = None if raw_start in (None, "") else as_int(raw_start, "start_step")
    end = None if raw_end in (None, "") else as_int(raw_end, "end_step")
    if (start is None) != (end is None):
        raise invalid("If either start step or end step are specified, both must be specified.")
    if start is not None and end is not None and start > end:
        raise invalid(f"end_step must be greater than start_step. Found start_step={start} and end_step={end}.")
    histories = {r: await _history(call, RUN_ID.check(r, "run_ids"), key) for r in dict.fromkeys(run_ids)}
    steps = set(sampled_steps([[p["step"] for p in h] for h in histories.values()], size, start, end))
    out: list[dict[str, Any]] = []
    for run_id, points in histories.items():
        kept = sorted((p for p in points if p["step"] in steps), key=lambda p: (p["step"], p["timestamp"], p["value"]))
        out.extend({**p, "run_id": run_id} for p in kept[:MAX_HISTORY_BULK_RESULTS])
    return {"metrics": out}
