"""What the monitor service tests share: a project with a deployed model, sampled requests sent
the way a serving replica sends them (the deployments service's ``/samples`` relay, Arrow IPC as
``NatsInferenceSink`` encodes it), and waits on the monitor's own health figures."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import loopback
import numpy as np
import pandas as pd

from cairn.protocol import ARROW_STREAM
from cairn.serving.inference_records import encode_samples
from cairn.serving.sink import InferenceSample

from model_helpers import model_digest, push_model
from platform_harness import Platform

DIGEST = model_digest()
_batches = itertools.count()


def deployed_project(admin: httpx.Client, project: str, deployments: tuple[str, ...] = ("fraud",),
                     versions: int = 1) -> str:
    """``project`` with model ``fraud-model`` (``versions`` versions) deployed as each name, pinned to
    the last version."""
    admin.post("/registry/projects", json={"name": project}).raise_for_status()
    run_id = admin.post(f"/registry/projects/{project}/runs", json={}).json()["id"]
    admin.post(f"/registry/projects/{project}/models", json={"name": "fraud-model"}).raise_for_status()
    push_model(admin, project)
    for _ in range(versions):
        admin.post(f"/registry/projects/{project}/models/fraud-model/versions",
                   json={"run_id": run_id, "artifact_digest": DIGEST}).raise_for_status()
    for name in deployments:
        admin.post(f"/deployments/projects/{project}/deployments",
                   json={"name": name, "environment": "dev", "model": "fraud-model", "version": 1, "replicas": 0,
                         "sample_rate": 1.0}).raise_for_status()
        if versions > 1:
            admin.post(f"/deployments/projects/{project}/deployments/{name}/version",
                       json={"version": versions}).raise_for_status()
    return project


def samples(project: str, deployment: str, when: float, count: int, *, status: int = 200,
            latency_ms: float = 5.0, start: int = 0) -> list[InferenceSample]:
    return [InferenceSample(request_id=f"{deployment}-{when:.3f}-{start + i}", project=project, model="fraud-model",
                            version=1, features=pd.DataFrame({"amount": [float(i)], "country": ["de"]}),
                            prediction=np.array([i % 2]), latency_ms=latency_ms, status=status, time=when,
                            deployment=deployment, replica="test-replica")
            for i in range(count)]


def send(client: httpx.Client, project: str, deployment: str, batch: list[InferenceSample]) -> None:
    """Post a batch to the relay as a replica's ``HttpRelay`` does (one message per batch)."""
    for data, _ in encode_samples(batch):
        resp = client.post(f"/deployments/projects/{project}/deployments/{deployment}/samples", content=data,
                           headers={"Content-Type": ARROW_STREAM, "X-Cairn-Batch-Id": f"test.{next(_batches)}"})
        assert resp.status_code == 202, resp.text


def monitor_health(platform: Platform) -> dict[str, Any]:
    return loopback.get(f"{platform.service_url('monitor')}/healthz", timeout=10).json()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def closed_windows(client: httpx.Client, project: str, deployment: str, size: str = "2s") -> list[dict[str, Any]]:
    resp = client.get(f"/monitor/projects/{project}/deployments/{deployment}/windows",
                      params={"size": size, "since": "1h"})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["windows"])


def next_window_start(size_s: float = 2.0, margin_s: float = 0.3) -> float:
    """The start of a window far enough from now that samples stamped inside it arrive before it
    closes (the clock closes it at end + grace)."""
    now = time.time()
    start = (now // size_s) * size_s
    return start if now - start < margin_s else start + size_s
