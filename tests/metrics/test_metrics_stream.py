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
from nats.js.errors import NotFoundError

from cairn.kernel.errors import ConfigurationError
from cairn.natsserver import start_nats_server
from cairn.services.metrics.domain import to_ipc
from cairn.services.metrics.store import MetricsStore
from cairn.services.metrics.stream import (
    DURABLE,
    durable_for,
    ensure_durables,
    ensure_stream,
    migrate_work_queue,
)
from cairn.services.metrics.writer import METRICS_STREAM, MetricsWriter, Tail

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


def test_a_batch_stays_in_the_stream_until_every_writer_durable_acked_it(tmp_path: Path) -> None:
    server, url = start_nats_server(tmp_path / "nats")

    async def scenario() -> tuple[str, list[int]]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_stream(nc)
        await ensure_durables(js, ["", "b"], "", 0, "here")  # both made up front by one replica
        await js.publish("cairn.metrics.p.r", b"batch", headers={"Nats-Msg-Id": "p/r/b1"})
        held = [(await js.stream_info(METRICS_STREAM)).state.messages]
        for durable in (durable_for(""), durable_for("b")):
            sub = await js.pull_subscribe_bind(durable=durable, stream=METRICS_STREAM)
            (msg,) = await sub.fetch(1)
            await msg.ack_sync()
            held.append((await js.stream_info(METRICS_STREAM)).state.messages)
        info = await js.stream_info(METRICS_STREAM)
        await nc.close()
        return str(getattr(info.config.retention, "value", info.config.retention)), held

    try:
        retention, held = asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait()
    assert retention == "interest" and held == [1, 1, 0]  # kept for the replica that had not written it


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
        await ensure_durables(js, [""], "", 0, "here")
        for b in range(5):
            table = pa.table({"key": ["x"], "value": [float(b)], "step": [b], "timestamp": [0.0]})
            await js.publish("cairn.metrics.p.r", to_ipc(table), headers={"Nats-Msg-Id": f"p/r/b{b}"})
        sub = await js.pull_subscribe_bind(durable=DURABLE, stream=METRICS_STREAM)
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


def test_a_work_queue_from_an_older_build_is_drained_and_made_again(tmp_path: Path) -> None:
    """The unnamed replica writes what the old work queue still holds, then the stream is made
    again with interest retention, its sequences going on from the old last one."""
    server, url = start_nats_server(tmp_path / "nats")
    root = tmp_path / "metrics"
    store = MetricsStore(root / "metrics.sqlite3")

    async def scenario() -> tuple[str, int, int, list[int]]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name=METRICS_STREAM, subjects=["cairn.metrics.>"], storage=js_api.StorageType.FILE,
                            retention=js_api.RetentionPolicy.WORK_QUEUE)
        old = await js.pull_subscribe("cairn.metrics.>", durable=DURABLE, stream=METRICS_STREAM)
        for b in range(4):
            table = pa.table({"key": ["x"], "value": [float(b)], "step": [b], "timestamp": [0.0]})
            await js.publish("cairn.metrics.p.r", to_ipc(table), headers={"Nats-Msg-Id": f"p/r/b{b}"})
        (first,) = await old.fetch(1)  # the old build wrote one batch before it stopped
        store.commit_part("p", "r", "part-000000000001-000000000001.parquet", 1, 1, 1, [("p/r/b0", 1)], [])
        await first.ack_sync()
        await old.unsubscribe()
        writer = MetricsWriter(nc, store, root, Tail())
        first_seq = await migrate_work_queue(nc, 1, writer.write)
        await ensure_durables(js, [""], "", store.last_sequence(), str(root))
        ack = await js.publish("cairn.metrics.p.r", to_ipc(pa.table(
            {"key": ["x"], "value": [9.0], "step": [9], "timestamp": [0.0]})), headers={"Nats-Msg-Id": "p/r/b9"})
        info = await js.stream_info(METRICS_STREAM)
        await nc.close()
        retention = str(getattr(info.config.retention, "value", info.config.retention))
        return retention, first_seq, ack.seq, sorted(s for (s,) in store.db.execute("SELECT seq FROM applied"))

    try:
        retention, first_seq, next_seq, applied = asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait()
        store.close()
    assert retention == "interest" and first_seq == 5 and next_seq == 5
    assert applied == [1, 2, 3, 4]  # nothing the old stream held was lost


def test_a_replica_whose_durable_starts_after_deleted_batches_is_refused(tmp_path: Path) -> None:
    server, url = start_nats_server(tmp_path / "nats")

    async def scenario() -> str:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_stream(nc)
        await ensure_durables(js, [""], "", 0, "main-folder")
        sub = await js.pull_subscribe_bind(durable=DURABLE, stream=METRICS_STREAM)
        for b in range(3):
            await js.publish("cairn.metrics.p.r", b"batch", headers={"Nats-Msg-Id": f"p/r/b{b}"})
        for msg in await sub.fetch(3):
            await msg.ack_sync()  # the only writer wrote them: deleted
        await ensure_durables(js, [""], "", 3, "main-folder")  # the writer itself goes on
        try:
            await ensure_durables(js, ["", "late"], "late", 0, "late-folder")
        except ConfigurationError as err:
            refused = str(err)
        else:
            refused = ""
        try:
            await js.consumer_info(METRICS_STREAM, durable_for("late"))
            made = "made"
        except NotFoundError:
            made = "not made"
        await ensure_durables(js, ["", "late"], "late", 3, "late-folder")  # a copy holding 1..3: let in
        # a stream restored from a backup into an empty folder: no replica holds 1..3, so it starts
        # (saying what is missing) rather than not at all
        for durable in (DURABLE, durable_for("late")):
            await js.delete_consumer(METRICS_STREAM, durable)
        await ensure_durables(js, [""], "", 0, "restored-folder")
        await nc.close()
        return f"{refused}|{made}"

    try:
        refused, made = asyncio.run(scenario()).split("|")
    finally:
        server.terminate()
        server.wait()
    assert "sequence 4" in refused and "late-folder" in refused and "CAIRN_WRITER_REPLICAS" in refused
    assert made == "not made"
