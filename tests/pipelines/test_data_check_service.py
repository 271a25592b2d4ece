"""The data_check step on the real platform: dataset versions pushed with the SDK (Parquet and CSV
files), profiled by the pipelines engine with the monitor's library and compared with a reference
(a dataset version, a profile registered in the monitor); drift fails the step and names the
columns, data like the reference passes with its scores as the step's metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cairn.monitor.profile import profile_table
from cairn.sdk import Client

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack
_names = count()


@pytest.fixture(scope="module")
def http(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(platform: Platform) -> Iterator[Client]:
    client = Client(platform.gateway, token=platform.token)
    yield client
    client.close()


@pytest.fixture
def project(http: httpx.Client) -> str:
    name = f"dcheck-{next(_names)}-{time.time_ns() % 10**6}"
    assert http.post("/registry/projects", json={"name": name}).status_code == 201
    return name


def table(seed: int, shift: float = 0.0, rows: int = 2000) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"amount": rng.normal(100 + shift, 10, rows), "age": rng.integers(18, 80, rows),
                     "country": rng.choice(["fr", "de", "es"], rows)})


def push(sdk: Client, project: str, name: str, tmp: Path, data: pa.Table, *, csv: bool = False) -> int:
    folder = tmp / f"{name}-{time.time_ns()}"
    folder.mkdir()
    half = data.num_rows // 2
    pq.write_table(data.slice(0, half), folder / "part-0.parquet")
    if csv:
        data.slice(half).to_pandas().to_csv(folder / "part-1.csv", index=False)
    else:
        pq.write_table(data.slice(half), folder / "part-1.parquet")
    (folder / "README.md").write_text("not data: the check skips it\n")
    return int(sdk.artifacts.push_dataset(project, name, folder).record["version"])


def check_pipeline(dataset: str, reference: str, **extra: Any) -> str:
    return json.dumps({"name": "check", "steps": [{"id": "drift", "data_check": {
        "dataset": dataset, "reference": reference, **extra}}]})


def run_to_end(http: httpx.Client, project: str, text: str) -> dict[str, Any]:
    resp = http.post(f"/pipelines/projects/{project}/runs", json={"pipeline": text})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = http.get(f"/pipelines/projects/{project}/runs/{run_id}").json()
        if view["status"] != "running":
            return view
        time.sleep(0.1)
    raise TimeoutError(f"pipeline run {run_id} did not finish")


def test_data_like_the_reference_passes_with_its_scores_as_metrics(http: httpx.Client, sdk: Client, project: str,
                                                                    tmp_path: Path) -> None:
    push(sdk, project, "tx", tmp_path, table(1))
    push(sdk, project, "tx", tmp_path, table(2), csv=True)  # same distribution, half of it as CSV
    view = run_to_end(http, project, check_pipeline("dataset:tx", "dataset:tx@v1"))
    step = view["steps"][0]
    assert view["status"] == "succeeded", step
    assert step["state"] == "succeeded"
    metrics = step["metrics"]
    assert metrics["columns"] == 3 and metrics["drifted_columns"] == 0 and metrics["rows"] == 2000
    assert set(metrics) >= {"drift_share", "drift.amount", "drift.age", "drift.country"}


def test_drifted_data_fails_the_step_naming_the_columns(http: httpx.Client, sdk: Client, project: str,
                                                        tmp_path: Path) -> None:
    push(sdk, project, "tx", tmp_path, table(1))
    push(sdk, project, "tx", tmp_path, table(3, shift=25.0))
    view = run_to_end(http, project, check_pipeline("dataset:tx@v2", "dataset:tx@v1",
                                                    methods={"amount": "wasserstein"}, drift_share=0.3))
    step = view["steps"][0]
    assert view["status"] == "failed" and step["state"] == "failed"
    assert "dataset:tx@v2 drifted from dataset:tx@v1" in step["message"]
    assert "amount (wasserstein" in step["message"] and "age (" not in step["message"]


def test_a_profile_registered_in_the_monitor_is_a_reference(http: httpx.Client, sdk: Client, project: str,
                                                            tmp_path: Path) -> None:
    reference = profile_table(table(1))
    resp = http.post(f"/monitor/projects/{project}/profiles",
                     json={"profile": json.loads(reference.to_json()), "source": {}})
    assert resp.status_code == 201, resp.text
    digest = resp.json()["digest"]
    push(sdk, project, "shifted", tmp_path, table(4, shift=40.0))
    view = run_to_end(http, project, check_pipeline("dataset:shifted", f"profile:{digest}", drift_share=0.3))
    assert view["status"] == "failed"
    assert f"drifted from profile:{digest}" in view["steps"][0]["message"]


def test_what_cannot_be_checked_fails_the_step_saying_why(http: httpx.Client, sdk: Client, project: str,
                                                          tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("no table here\n")
    sdk.artifacts.push_dataset(project, "docs", folder)
    push(sdk, project, "tx", tmp_path, table(1))
    view = run_to_end(http, project, check_pipeline("dataset:docs", "dataset:tx@v1"))
    assert "dataset:docs@v1 holds no table" in view["steps"][0]["message"]
    view = run_to_end(http, project, check_pipeline("dataset:tx", "deployment:nowhere"))
    assert view["status"] == "failed" and "nowhere" in view["steps"][0]["message"]
    resp = http.post(f"/pipelines/projects/{project}/runs", json={"pipeline": check_pipeline("dataset:tx", "tx-2024")})
    assert resp.status_code == 422
    assert "profile:<digest>, deployment:NAME or dataset:NAME@vN" in resp.text
