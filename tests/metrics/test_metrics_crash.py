"""SIGKILL the metrics service in the middle of a 100k-point ingest: after a restart every
acknowledged point is stored exactly once (retried batches keep their ids)."""

from __future__ import annotations

import threading
import time

import httpx

from platform_harness import Platform

BATCHES = 50
PER_BATCH = 2000


def _send_until_accepted(client: httpx.Client, url: str, body: dict) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            resp = client.post(url, json=body)
            if resp.status_code == 202:
                return
            assert resp.status_code in (502, 503), resp.text
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the batch was never accepted"
        time.sleep(0.1)


def test_sigkill_during_ingest_stores_every_acked_point_once(platform: Platform, api: httpx.Client,
                                                             project: str) -> None:
    run = api.post(f"/projects/{project}/runs", json={"experiment": "default"}).json()["id"]
    url = f"{platform.gateway}/api/v1/metrics/projects/{project}/runs/{run}/metrics"
    killer = threading.Timer(0.5, platform.restart, args=("metrics",))
    with httpx.Client(headers=platform.headers, timeout=30) as client:
        killer.start()
        for b in range(BATCHES):
            points = [{"key": "loss", "value": float(s), "step": s}
                      for s in range(b * PER_BATCH, (b + 1) * PER_BATCH)]
            _send_until_accepted(client, url, {"batch_id": f"b{b}", "points": points})
            if b == BATCHES // 2:
                killer.join()  # the kill lands while batches are still in flight
        killer.join()
        deadline = time.monotonic() + 30
        while httpx.get(f"{platform.service_url('metrics')}/healthz").json()["tail_points"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        body = client.get(url, params={"key": "loss"}).json()
        assert body["total"] == BATCHES * PER_BATCH
        assert body["steps"] == list(range(BATCHES * PER_BATCH))
        summary = client.get(f"{url}/summary").json()["summaries"][0]
        assert summary["count"] == BATCHES * PER_BATCH and summary["last"] == BATCHES * PER_BATCH - 1
