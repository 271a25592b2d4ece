"""Summaries of many runs in one call (``POST /projects/P/metrics/summaries/runs``), as run
listings (MLflow's search_runs) need them: the same per-run summary as the single-run route."""

from __future__ import annotations

import uuid

import httpx
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture(scope="module")
def mx(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=f"{platform.gateway}/api/v1/metrics", timeout=30, headers=platform.headers)


def test_many_runs_summaries_equal_each_runs_summary(api: httpx.Client, mx: httpx.Client, project: str) -> None:
    runs = [api.post(f"/projects/{project}/runs", json={}).json()["id"] for _ in range(3)]
    for n, run in enumerate(runs[:2]):
        points = [{"key": "loss", "value": float(n + s), "step": s} for s in range(4)]
        assert mx.post(f"/projects/{project}/runs/{run}/metrics",
                       json={"batch_id": uuid.uuid4().hex, "points": points}).status_code == 202
    body = mx.post(f"/projects/{project}/metrics/summaries/runs", json={"run_ids": runs}).json()["runs"]
    for run in runs:
        assert body[run] == mx.get(f"/projects/{project}/runs/{run}/metrics/summary").json()["summaries"]
    assert body[runs[1]][0]["last"] == 4.0 and body[runs[2]] == []


def test_many_runs_summaries_bounds_the_list(mx: httpx.Client, project: str) -> None:
    assert mx.post(f"/projects/{project}/metrics/summaries/runs", json={"run_ids": []}).status_code == 422
    assert mx.post(f"/projects/{project}/metrics/summaries/runs",
                   json={"run_ids": [f"r{i}" for i in range(1001)]}).status_code == 422
