"""SIGKILL the metrics service in the middle of a 1M-point ingest: after a restart every
acknowledged point is stored exactly once (retried batches keep their ids), and the stream lets go
of every batch once it is written."""

from __future__ import annotations

import threading
import time

import httpx
import loopback
import numpy as np
import pyarrow as pa
from test_metrics_stream import wait_stream_empty

from cairn.protocol import ARROW_STREAM
from cairn.services.metrics.domain import to_ipc

from platform_harness import Platform

BATCHES = 100
PER_BATCH = 10_000  # the service's largest batch: 1M points in all


def _send_until_accepted(client: httpx.Client, url: str, batch_id: str, body: bytes) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            resp = client.post(url, params={"batch_id": batch_id}, content=body,
                               headers={"Content-Type": ARROW_STREAM})
            if resp.status_code == 202:
                return
            assert resp.status_code in (502, 503), resp.text
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the batch was never accepted"
        time.sleep(0.1)


def _batch(b: int) -> bytes:
    steps = np.arange(b * PER_BATCH, (b + 1) * PER_BATCH, dtype=np.int64)
    return to_ipc(pa.table({"key": pa.array(["loss"] * PER_BATCH), "value": steps.astype(np.float64),
                            "step": steps, "timestamp": np.zeros(PER_BATCH)}))


def test_sigkill_during_1m_point_ingest_stores_every_acked_point_once(platform: Platform, api: httpx.Client,
                                                                     project: str) -> None:
    run = api.post(f"/projects/{project}/runs", json={"experiment": "default"}).json()["id"]
    url = f"{platform.gateway}/api/v1/metrics/projects/{project}/runs/{run}/metrics"
    killer = threading.Timer(0.5, platform.restart, args=("metrics",))
    total = BATCHES * PER_BATCH
    with httpx.Client(headers=platform.headers, timeout=30) as client:
        killer.start()
        for b in range(BATCHES):
            _send_until_accepted(client, url, f"b{b}", _batch(b))
            if b == BATCHES // 2:
                killer.join()  # the kill lands while batches are still in flight
        killer.join()
        deadline = time.monotonic() + 60
        while loopback.get(f"{platform.service_url('metrics')}/healthz").json()["tail_points"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        wait_stream_empty(platform.nats_url)  # written batches leave the stream after a restart too
        resp = client.get(url, params={"key": "loss"}, headers={"Accept": ARROW_STREAM})
        assert resp.status_code == 200, resp.text
        table = pa.ipc.open_stream(resp.content).read_all()
        assert table.schema.metadata[b"total"] == str(total).encode()
        steps = table.column("step").to_numpy()
        assert steps.size == total and np.array_equal(steps, np.arange(total))  # each point once
        assert np.array_equal(table.column("value").to_numpy(), np.arange(total, dtype=np.float64))
        summary = client.get(f"{url}/summary").json()["summaries"][0]
        assert summary["count"] == total and summary["last"] == total - 1
