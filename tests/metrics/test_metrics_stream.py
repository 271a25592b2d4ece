"""The metrics stream keeps a batch until it is written to Parquet, then drops it; a restart
reloads only unwritten batches into the tail; small Parquet parts of a run are compacted into one
without losing or doubling a point."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import loopback
import nats
import pyarrow as pa
import pytest
from nats.js import api as js_api

from cairn.natsserver import start_nats_server
from cairn.services.metrics.domain import to_ipc
from cairn.services.metrics.store import MetricsStore
from cairn.services.metrics.writer import (
    DURABLE,
    METRICS_STREAM,
    MetricsWriter,
    Tail,
    ensure_stream,
)

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


def stream_messages(nats_url: str) -> int:
    """How many batches the metrics stream holds now."""

    async def count() -> int:
        nc = await nats.connect(nats_url)
        try:
            return int((await nc.jetstream().stream_info(METRICS_STREAM)).state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def wait_stream_empty(nats_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while stream_messages(nats_url):
        assert time.monotonic() < deadline, "written batches stayed in the metrics stream"
        time.sleep(0.05)


def test_new_stream_is_a_work_queue_that_keeps_batches_until_acked(tmp_path: Path) -> None:
    server, url = start_nats_server(tmp_path / "nats")

    async def scenario() -> tuple[str, int, int]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_stream(nc)
        await js.publish("cairn.metrics.p.r", b"batch", headers={"Nats-Msg-Id": "p/r/b1"})
        kept = (await js.stream_info(METRICS_STREAM)).state.messages  # no consumer yet: still kept
        sub = await js.pull_subscribe("cairn.metrics.>", durable="metrics-writer", stream=METRICS_STREAM)
        (msg,) = await sub.fetch(1)
        await msg.ack_sync()
        info = await js.stream_info(METRICS_STREAM)
        await nc.close()
        return str(getattr(info.config.retention, "value", info.config.retention)), kept, info.state.messages

    try:
        retention, kept, after_ack = asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait()
    assert retention == "workqueue" and kept == 1 and after_ack == 0


def test_a_limits_stream_from_an_older_build_switches_to_interest(tmp_path: Path) -> None:
    server, url = start_nats_server(tmp_path / "nats")

    async def scenario() -> str:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name=METRICS_STREAM, subjects=["cairn.metrics.>"],
                            retention=js_api.RetentionPolicy.LIMITS, storage=js_api.StorageType.FILE)
        await ensure_stream(nc)
        await ensure_stream(nc)  # idempotent
        retention = (await js.stream_info(METRICS_STREAM)).config.retention
        retention = str(getattr(retention, "value", retention))
        await nc.close()
        return retention

    try:
        assert asyncio.run(scenario()) == "interest"
    finally:
        server.terminate()
        server.wait()


def _post(mx: httpx.Client, project: str, run: str, start: int, count: int) -> None:
    points = [{"key": "loss", "value": float(s), "step": s} for s in range(start, start + count)]
    resp = mx.post(f"/projects/{project}/runs/{run}/metrics", json={"batch_id": uuid.uuid4().hex, "points": points})
    assert resp.status_code == 202, resp.text


def _wait_written(platform: Platform) -> None:
    deadline = time.monotonic() + 30
    while loopback.get(f"{platform.service_url('metrics')}/healthz").json()["tail_points"]:
        assert time.monotonic() < deadline, "the metrics writer did not catch up"
        time.sleep(0.02)


def test_written_batches_leave_the_stream(platform: Platform, api: httpx.Client, project: str) -> None:
    run = api.post(f"/projects/{project}/runs", json={"experiment": "default"}).json()["id"]
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/metrics", headers=platform.headers, timeout=30) as mx:
        for b in range(5):
            _post(mx, project, run, b * 100, 100)
        _wait_written(platform)
        wait_stream_empty(platform.nats_url)
        body = mx.get(f"/projects/{project}/runs/{run}/metrics", params={"key": "loss"}).json()
    assert body["total"] == 500 and body["steps"] == list(range(500))


def test_small_parts_are_compacted_and_history_stays_whole(platform: Platform, api: httpx.Client,
                                                          project: str) -> None:
    run = api.post(f"/projects/{project}/runs", json={"experiment": "default"}).json()["id"]
    folder = platform.root / "data" / "metrics" / project / run
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/metrics", headers=platform.headers, timeout=30) as mx:
        for b in range(9):  # written one at a time: nine small parts; the eighth triggers a merge
            _post(mx, project, run, b * 50, 50)
            _wait_written(platform)
        deadline = time.monotonic() + 30
        while True:  # the merge runs after the eighth part's ack; old parts go once it is listed
            files = sorted(p.name for p in folder.iterdir())
            if len(files) <= 2 and sum(f.endswith("-c.parquet") for f in files) == 1:
                break
            assert time.monotonic() < deadline, f"the small parts were never compacted: {files}"
            time.sleep(0.05)
        body = mx.get(f"/projects/{project}/runs/{run}/metrics", params={"key": "loss"}).json()
        summary = mx.get(f"/projects/{project}/runs/{run}/metrics/summary").json()["summaries"][0]
    assert body["total"] == 450 and body["steps"] == list(range(450))
    assert summary["count"] == 450 and summary["last"] == 449.0


def test_restart_reloads_only_unwritten_batches_into_the_tail(tmp_path: Path) -> None:
    server, url = start_nats_server(tmp_path / "nats")
    store = MetricsStore(tmp_path / "metrics" / "metrics.sqlite3")

    async def scenario() -> Tail:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_stream(nc)
        for b in range(5):
            table = pa.table({"key": ["x"], "value": [float(b)], "step": [b], "timestamp": [0.0]})
            await js.publish("cairn.metrics.p.r", to_ipc(table), headers={"Nats-Msg-Id": f"p/r/b{b}"})
        sub = await js.pull_subscribe("cairn.metrics.>", durable=DURABLE, stream=METRICS_STREAM)
        for msg in await sub.fetch(2):  # written and acked: deleted from the stream
            await msg.ack_sync()
        # b2 was written (SQLite committed) but the process died before its ack
        store.commit_part("p", "r", "part-b2.parquet", 3, 3, 1, [("p/r/b2", 3)], [])
        tail = Tail()
        writer = MetricsWriter(nc, store, tmp_path / "metrics", tail)
        await writer.reload_tail()
        await nc.close()
        return tail

    try:
        tail = asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait()
        store.close()
    assert sorted(tail.batches) == [4, 5] and tail.rows == 2
    assert [t.column("step").to_pylist() for t in tail.of_run("p", "r")] == [[3], [4]]
