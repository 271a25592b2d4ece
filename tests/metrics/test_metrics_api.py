"""Metrics through the gateway: ingest (JSON and Arrow), read back full and downsampled, many runs
with a cross-run aggregate, summaries, NaN/inf, errors, roles and duplicate batches."""

from __future__ import annotations

import math
import time
import uuid

import httpx
import loopback
import pyarrow as pa
import pytest

from platform_harness import Platform, wait_metric_summaries

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


def _run(api: httpx.Client, project: str) -> str:
    resp = api.post(f"/projects/{project}/runs", json={"experiment": "default"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


@pytest.fixture(scope="module")
def mx(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=f"{platform.gateway}/api/v1/metrics", timeout=30, headers=platform.headers)


def _post(mx: httpx.Client, project: str, run: str, points: list[dict], batch_id: str | None = None) -> httpx.Response:
    return mx.post(f"/projects/{project}/runs/{run}/metrics",
                   json={"batch_id": batch_id or uuid.uuid4().hex, "points": points})


def _history(mx: httpx.Client, project: str, run: str, key: str, **params: object) -> dict:
    resp = mx.get(f"/projects/{project}/runs/{run}/metrics", params={"key": key, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_json_batch_is_read_back_in_full_at_once(api: httpx.Client, mx: httpx.Client, project: str) -> None:
    run = _run(api, project)
    points = [{"key": "loss", "value": 1.0 / (i + 1), "step": i, "timestamp": 1000.0 + i} for i in range(500)]
    resp = _post(mx, project, run, points)
    assert resp.status_code == 202, resp.text
    body = _history(mx, project, run, "loss")  # read-your-writes: no waiting
    assert body["total"] == 500 and body["steps"] == list(range(500))
    assert body["values"][10] == pytest.approx(1 / 11)


def test_arrow_batch_and_minmax_keeps_spikes_lttb_gives_n(api: httpx.Client, mx: httpx.Client, project: str) -> None:
    run = _run(api, project)
    n = 9000
    values = [math.sin(i / 100) for i in range(n)]
    values[4321] = 50.0
    values[777] = -40.0
    table = pa.table({"key": ["acc"] * n, "value": values, "step": list(range(n)), "timestamp": [0.0] * n})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    resp = mx.post(f"/projects/{project}/runs/{run}/metrics", params={"batch_id": "arrow-1"},
                   content=sink.getvalue().to_pybytes(), headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert resp.status_code == 202, resp.text
    full = _history(mx, project, run, "acc")
    assert full["total"] == n and len(full["values"]) == n
    small = _history(mx, project, run, "acc", points=300, method="minmax")
    assert len(small["steps"]) <= 300 and 4321 in small["steps"] and 777 in small["steps"]
    assert max(small["values"]) == 50.0 and min(small["values"]) == -40.0
    lt = _history(mx, project, run, "acc", points=300, method="lttb")
    assert len(lt["steps"]) == 300 and lt["steps"] == sorted(lt["steps"])


def test_nan_and_infinities_round_trip_and_summaries(platform: Platform, api: httpx.Client, mx: httpx.Client, project: str) -> None:
    run = _run(api, project)
    pts = [{"key": "x", "value": v, "step": i, "timestamp": 1_700_000_000 + i}
           for i, v in enumerate([3.0, "NaN", "Infinity", "-Infinity", 2.0])]
    pts.append({"key": "y", "value": 7, "step": 0})
    assert _post(mx, project, run, pts).status_code == 202
    assert _history(mx, project, run, "x")["values"] == [3.0, "NaN", "Infinity", "-Infinity", 2.0]
    expected_x = {"key": "x", "count": 5, "last": 2.0, "last_step": 4, "last_time": 1_700_000_004.0,
                  "min": "-Infinity", "max": "Infinity"}
    url = f"/projects/{project}/runs/{run}/metrics/summary"
    for _ in range(2):  # the same answer from the tail and after the writer put it in Parquet and SQLite
        summary = {s["key"]: s for s in mx.get(url).json()["summaries"]}
        assert summary["x"] == expected_x
        assert summary["y"]["last"] == 7.0 and summary["y"]["count"] == 1
        _wait_written(platform)
    assert _history(mx, project, run, "x")["values"] == [3.0, "NaN", "Infinity", "-Infinity", 2.0]
    per_key = mx.get(f"/projects/{project}/metrics/summaries", params={"key": "x"}).json()
    assert per_key["summaries"] == [{"run_id": run, **{k: v for k, v in expected_x.items() if k != "key"}}]


def _wait_written(platform: Platform) -> None:
    deadline = time.monotonic() + 10
    while loopback.get(f"{platform.service_url('metrics')}/healthz").json()["tail_points"]:
        assert time.monotonic() < deadline, "the metrics writer did not catch up"
        time.sleep(0.05)


def test_many_runs_and_cross_run_aggregate(api: httpx.Client, mx: httpx.Client, project: str) -> None:
    runs = [_run(api, project) for _ in range(3)]
    for r, run in enumerate(runs):
        pts = [{"key": "val", "value": float(r + step), "step": step} for step in range(100)]
        assert _post(mx, project, run, pts).status_code == 202
    resp = mx.post(f"/projects/{project}/metrics/search",
                   json={"key": "val", "run_ids": runs, "points": 30, "method": "lttb"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["total"] for r in body["runs"]] == [100, 100, 100]
    assert all(len(r["steps"]) == 30 for r in body["runs"])
    agg = body["aggregate"]
    assert len(agg["steps"]) <= 30 and agg["steps"][0] == 0 and agg["steps"][-1] == 99
    assert agg["mean"][0] == 1.0 and agg["min"][0] == 0.0 and agg["max"][0] == 2.0 and agg["median"][0] == 1.0
    assert agg["std"][0] == pytest.approx(math.sqrt(2 / 3)) and agg["count"][0] == 3


def test_bad_values_422_oversized_413_unknown_run_404(api: httpx.Client, mx: httpx.Client, project: str) -> None:
    run = _run(api, project)
    bad = _post(mx, project, run, [{"key": "a", "value": 1, "step": 0}, {"key": "a", "value": "high", "step": 1}])
    assert bad.status_code == 422 and "point 1" in bad.json()["error"]["message"]
    big = _post(mx, project, run, [{"key": "a", "value": 1.0, "step": i} for i in range(10_001)])
    assert big.status_code == 413
    missing = _post(mx, project, "nosuchrun123", [{"key": "a", "value": 1.0, "step": 0}])
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]


def test_duplicate_batch_id_counts_once(platform: Platform, api: httpx.Client, mx: httpx.Client, project: str) -> None:
    run = _run(api, project)
    pts = [{"key": "d", "value": float(i), "step": i} for i in range(10)]
    first = _post(mx, project, run, pts, batch_id="same")
    again = _post(mx, project, run, pts, batch_id="same")
    assert first.status_code == again.status_code == 202 and again.json()["duplicate"] is True
    assert _history(mx, project, run, "d")["total"] == 10
    _wait_written(platform)
    assert _history(mx, project, run, "d")["total"] == 10


def test_viewer_can_read_but_not_log(platform: Platform, api: httpx.Client, mx: httpx.Client, project: str) -> None:
    run = _run(api, project)
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    resp = loopback.post(f"{platform.gateway}/api/v1/tokens", headers=platform.headers, json={"user": user})
    assert resp.status_code in (200, 201), resp.text
    token = resp.json()["token"]
    resp = loopback.post(f"{platform.gateway}/api/v1/projects/{project}/members", headers=platform.headers,
                      json={"user": user, "role": "viewer"})
    assert resp.status_code in (200, 201), resp.text
    viewer = {"Authorization": f"Bearer {token}"}
    url = f"{platform.gateway}/api/v1/metrics/projects/{project}"
    denied = loopback.post(f"{url}/runs/{run}/metrics", headers=viewer,
                        json={"batch_id": "v1", "points": [{"key": "a", "value": 1.0, "step": 0}]})
    assert denied.status_code == 403
    assert loopback.get(f"{url}/runs/{run}/metrics", params={"key": "a"}, headers=viewer).status_code == 200
    assert loopback.post(f"{url}/metrics/search", headers=viewer, json={"key": "a", "run_ids": [run]}).status_code == 200


def test_registry_run_search_filters_and_sorts_by_metric_summaries(platform: Platform, api: httpx.Client,
                                                                   mx: httpx.Client, project: str) -> None:
    runs = [_run(api, project) for _ in range(4)]
    for run, last in zip(runs[:3], [0.1, 0.5, 0.2]):
        pts = [{"key": "val_loss", "value": 9.0, "step": 0}, {"key": "val_loss", "value": last, "step": 5}]
        assert _post(mx, project, run, pts).status_code == 202
    # the registry answers from its own read model: once metric.summarized has reached it
    wait_metric_summaries(platform, project, {run: {"val_loss": 2} for run in runs[:3]})
    hits = api.get(f"/projects/{project}/runs", params={"filter": "metrics.val_loss < 0.3"}).json()["runs"]
    assert sorted(r["id"] for r in hits) == sorted([runs[0], runs[2]])
    ordered = api.post(f"/projects/{project}/runs/search", json={"order_by": ["metrics.val_loss DESC"]}).json()
    assert [r["id"] for r in ordered["runs"]] == [runs[1], runs[2], runs[0], runs[3]]  # no value: last


def test_zoomed_history_cuts_the_step_range_then_downsamples_within_it(api: httpx.Client, mx: httpx.Client,
                                                                       project: str) -> None:
    """A chart's zoom: step_min/step_max keep the range (inclusive), ``points`` applies inside it,
    so a one-point spike invisible in the whole run's downsample is in the zoomed one."""
    run = _run(api, project)
    n = 20_000
    values = [0.0] * n
    values[12_345] = 9.0  # in the zoomed range
    values[500] = -9.0  # outside it
    points = [{"key": "z", "value": v, "step": i, "timestamp": float(i)} for i, v in enumerate(values)]
    for start in range(0, n, 5000):
        assert _post(mx, project, run, points[start:start + 5000]).status_code == 202
    zoom = _history(mx, project, run, "z", points=100, step_min=12_000, step_max=12_999)
    assert zoom["total"] == 1000 and zoom["method"] == "minmax" and len(zoom["steps"]) <= 100
    assert min(zoom["steps"]) >= 12_000 and max(zoom["steps"]) <= 12_999
    assert 9.0 in zoom["values"] and -9.0 not in zoom["values"]
    full = _history(mx, project, run, "z", step_min=12_340, step_max=12_349)
    assert full["method"] == "full" and full["steps"] == list(range(12_340, 12_350))
    assert _history(mx, project, run, "z", step_min=19_990)["steps"] == list(range(19_990, 20_000))
    assert _history(mx, project, run, "z", step_max=2)["total"] == 3
    assert _history(mx, project, run, "z", step_min=30_000)["total"] == 0
    bad = mx.get(f"/projects/{project}/runs/{run}/metrics", params={"key": "z", "step_min": 5, "step_max": 4})
    assert bad.status_code == 422 and "step_min" in bad.json()["error"]["message"]
