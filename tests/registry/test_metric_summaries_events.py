"""Run search on metrics is answered from the registry's own read model, fed by the metrics
service's ``metric.summarized`` events: search after the event (waited for, with a deadline), the
same answers after a registry rebuild and with the metrics service stopped, and a metrics store made
before summaries were events is announced on start exactly once (restarted twice)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from typing import Any

import httpx
import loopback
import nats
import pytest

from platform_harness import Platform, wait_metric_summaries

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def mx(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=f"{platform.gateway}/api/v1/metrics", timeout=30, headers=platform.headers)


def _run(api: httpx.Client, project: str) -> str:
    resp = api.post(f"/projects/{project}/runs", json={"experiment": "default"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _log(mx: httpx.Client, project: str, run: str, points: list[dict[str, Any]]) -> None:
    resp = mx.post(f"/projects/{project}/runs/{run}/metrics", json={"batch_id": uuid.uuid4().hex, "points": points})
    assert resp.status_code == 202, resp.text


def _answers(api: httpx.Client, project: str) -> tuple[list[str], list[str]]:
    hits = api.get(f"/projects/{project}/runs", params={"filter": "metrics.val_loss < 0.3"})
    ordered = api.post(f"/projects/{project}/runs/search", json={"order_by": ["metrics.val_loss DESC"]})
    assert hits.status_code == 200 and ordered.status_code == 200, (hits.text, ordered.text)
    return sorted(r["id"] for r in hits.json()["runs"]), [r["id"] for r in ordered.json()["runs"]]


def _summarized(platform: Platform, project: str) -> list[dict[str, Any]]:
    """Every metric.summarized of the project in the log, in order."""
    subject = f"cairn.evt.{project}.metrics.{project}"

    async def collect() -> list[dict[str, Any]]:
        nc = await nats.connect(platform.nats_url)
        try:
            js = nc.jetstream()
            try:
                last = int((await js.get_last_msg("CAIRN_EVENTS", subject, direct=True)).seq or 0)
            except nats.js.errors.NotFoundError:
                return []
            sub = await js.subscribe(subject, ordered_consumer=True)
            out: list[dict[str, Any]] = []
            while not out or out[-1]["sequence"] < last:
                msg = await sub.next_msg(timeout=DEADLINE_S)
                out.append({**json.loads(msg.data), "sequence": msg.metadata.sequence.stream})
            return out
        finally:
            await nc.close()

    return asyncio.run(collect())


def _metrics_health(platform: Platform) -> dict[str, Any]:
    return loopback.get(f"{platform.service_url('metrics')}/healthz", timeout=10).json()


def _restart_metrics_and_wait_announced(platform: Platform) -> None:
    platform.restart("metrics")
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            health = _metrics_health(platform)
            if health["ready"] and health["announcing"] is False:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the metrics service did not finish its start-up announcement"
        time.sleep(0.05)


def test_search_reads_projected_summaries_after_the_event(platform: Platform, api: httpx.Client,
                                                          mx: httpx.Client, project: str) -> None:
    runs = [_run(api, project) for _ in range(4)]
    for run, last in zip(runs[:3], [0.1, 0.5, 0.2]):
        _log(mx, project, run, [{"key": "val_loss", "value": 9.0, "step": 0},
                                {"key": "val_loss", "value": last, "step": 5}])
    wait_metric_summaries(platform, project, {run: {"val_loss": 2} for run in runs[:3]})
    assert _answers(api, project) == (sorted([runs[0], runs[2]]), [runs[1], runs[2], runs[0], runs[3]])
    events = _summarized(platform, project)
    assert events and all(e["type"] == "metric.summarized" and e["aggregate"] == "metrics" for e in events)

    # a rebuild of the registry from the log answers the same
    live = api.get("/admin/content-hash").json()
    rebuilt = api.post("/admin/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text
    assert rebuilt.json()["content_hash"] == live["content_hash"]
    assert _answers(api, project) == (sorted([runs[0], runs[2]]), [runs[1], runs[2], runs[0], runs[3]])

    # and with the metrics service stopped: search reads the registry alone
    platform.kill("metrics")
    try:
        assert _answers(api, project) == (sorted([runs[0], runs[2]]), [runs[1], runs[2], runs[0], runs[3]])
    finally:
        platform.start_service("metrics")


def test_a_store_made_before_summaries_were_events_is_announced_once(platform: Platform, api: httpx.Client,
                                                                     mx: httpx.Client, project: str) -> None:
    runs = [_run(api, project) for _ in range(2)]
    for run, last in zip(runs, [0.25, 0.75]):
        _log(mx, project, run, [{"key": "val_loss", "value": last, "step": 1}, {"key": "acc", "value": 1.0, "step": 1}])
    wait_metric_summaries(platform, project, {run: {"val_loss": 1, "acc": 1} for run in runs})
    live = _summarized(platform, project)

    platform.kill("metrics")  # make its store as an older build left it: no announced flag
    with sqlite3.connect(platform.data_dir / "metrics" / "metrics.sqlite3") as db:
        db.execute("DROP INDEX summaries_unannounced")
        db.execute("ALTER TABLE summaries DROP COLUMN announced")
    with sqlite3.connect(platform.data_dir / "metrics" / "runs.sqlite3") as db:  # and its read model:
        db.execute("DROP TABLE announced")  # no counts seen announced (its position is past them)
    _restart_metrics_and_wait_announced(platform)
    backfilled = _summarized(platform, project)[len(live):]
    assert len(backfilled) == 1  # one event for the project, with every summary it has
    assert sorted((s["run_id"], s["key"], s["last"]) for s in backfilled[0]["data"]["summaries"]) == sorted(
        [(runs[0], "acc", 1.0), (runs[0], "val_loss", 0.25), (runs[1], "acc", 1.0), (runs[1], "val_loss", 0.75)])

    _restart_metrics_and_wait_announced(platform)  # a second start announces nothing more
    assert len(_summarized(platform, project)) == len(live) + 1
    assert _answers(api, project)[0] == [runs[0]]
