"""The inference sink and reader against a real nats-server: sampling at the asked rate (seeded),
a bounded buffer that drops and counts when NATS is gone while ``offer`` returns at once, each
sample stored exactly once across a server kill (the batch's message id), and reading back."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pandas as pd
import pytest

from cairn.natsserver import start_nats_server
from cairn.protocol import INFERENCE_STREAM, inference_subject
from cairn.serving.inference_log import NatsInferenceSink, ensure_inference_stream, read_samples
from cairn.serving.inference_records import decode_batch, encode_samples, stream_messages
from cairn.serving.sink import InferenceSample

DEADLINE_S = 30.0


class Server:
    """A nats-server that a test may kill (SIGKILL) and start again on the same port and store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc, self.url = start_nats_server(root)
        self.port = int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        self.proc, _ = start_nats_server(self.root, self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "nats")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
async def nc(server: Server) -> AsyncIterator[nats.NATS]:
    conn = await nats.connect(server.url, reconnect_time_wait=0.05, max_reconnect_attempts=-1)
    await ensure_inference_stream(conn)
    try:
        yield conn
    finally:
        await conn.close()


def sample(i: int, *, rows: int = 1, deployment: str | None = "fraud") -> InferenceSample:
    features = pd.DataFrame({"amount": [float(i + r) for r in range(rows)], "country": ["de"] * rows})
    return InferenceSample(request_id=f"r{i}", project="shop", model="fraud-model", version=3, features=features,
                           prediction=[i % 2] * rows, latency_ms=1.5, status=200, time=1_700_000_000.0 + i,
                           deployment=deployment, replica="rep-1")


async def stored_request_ids(conn: nats.NATS, deployment: str | None = "fraud") -> Counter[str]:
    """How many times each request id is in the stream (one per row 0)."""
    ids: Counter[str] = Counter()
    async for msg in stream_messages(conn, inference_subject("shop", deployment), 3600):
        table = decode_batch(msg.data)
        ids.update(rid for rid, row in zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(),
                                           strict=True) if row == 0)
    return ids


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_the_sampling_rate_is_honoured_with_a_seeded_rng(nc: nats.NATS) -> None:
    sink = NatsInferenceSink(nc, "shop", "fraud", sample_rate=0.3, rng=random.Random(7), flush_samples=50)
    await sink.start()
    for i in range(1000):
        sink.offer(sample(i))
    await sink.close(timeout_s=DEADLINE_S)

    draws = random.Random(7)
    expected = {f"r{i}" for i in range(1000) if draws.random() < 0.3}
    stored = await stored_request_ids(nc)
    assert set(stored) == expected and all(n == 1 for n in stored.values())
    assert 250 < len(expected) < 350  # the seed's draw is near the rate, so the test means something
    assert sink.stats()["sampled"] == sink.stats()["published"] == len(expected)
    assert sink.stats()["offered"] == 1000 and sink.stats()["dropped"] == 0


@pytest.mark.parametrize("rate, expected", [(0.0, 0), (1.0, 40)])
async def test_a_rate_of_zero_logs_nothing_and_one_logs_everything(nc: nats.NATS, rate: float, expected: int) -> None:
    sink = NatsInferenceSink(nc, "shop", "fraud", sample_rate=rate, rng=random.Random(1))
    await sink.start()
    for i in range(40):
        sink.offer(sample(i))
    await sink.close(timeout_s=DEADLINE_S)
    assert sum((await stored_request_ids(nc)).values()) == expected == sink.stats()["published"]


async def test_a_full_buffer_drops_and_counts_and_offer_never_waits_on_a_stopped_nats(
        server: Server, nc: nats.NATS) -> None:
    sink = NatsInferenceSink(nc, "shop", "fraud", max_buffer=10, flush_samples=5, flush_interval_ms=10)
    await sink.start()
    server.kill()
    sink.offer(sample(0))  # taken by the flusher, whose publish now fails and retries
    await until(lambda: sink.stats()["publish_errors"] > 0, "a failing publish")
    assert not inspect.iscoroutinefunction(sink.offer)
    for i in range(1, 26):  # the flusher is stuck on NATS; offer must return without awaiting
        assert sink.offer(sample(i)) is None
    stats = sink.stats()
    assert stats["offered"] == stats["sampled"] == 26
    # r0 is in the flusher's hands, the buffer holds 10, the other 15 are dropped and counted
    assert (stats["buffered"], stats["dropped"], stats["published"]) == (10, 15, 0)

    server.restart()  # what was kept is published once NATS is back
    await until(lambda: sink.stats()["published"] + sink.stats()["dropped"] == 26, "the kept samples published")
    await sink.close(timeout_s=DEADLINE_S)
    stored = await stored_request_ids(nc)
    assert stored == Counter({f"r{i}": 1 for i in range(11)}) and sink.stats()["published"] == 11


async def test_each_sample_is_stored_exactly_once_across_a_server_kill(server: Server, nc: nats.NATS) -> None:
    sink = NatsInferenceSink(nc, "shop", "fraud", flush_samples=7, flush_interval_ms=5)
    await sink.start()
    for i in range(300):
        sink.offer(sample(i, rows=2))
        if i == 150:
            server.kill()
            server.restart()
        if i % 10 == 0:
            await asyncio.sleep(0)
    await sink.close(timeout_s=DEADLINE_S)
    stored = await stored_request_ids(nc)
    assert sink.stats()["dropped"] == 0
    assert stored == Counter({f"r{i}": 1 for i in range(300)})


async def test_a_retried_publish_of_one_batch_is_stored_once(nc: nats.NATS) -> None:
    """What the sink does after a lost acknowledgement: the same batch, the same message id."""
    sink = NatsInferenceSink(nc, "shop", "fraud")
    ((data, group),) = encode_samples([sample(1), sample(2)])
    await sink._publish(data, len(group), "inf.test.1")
    await sink._publish(data, len(group), "inf.test.1")
    info = await nc.jetstream().stream_info(INFERENCE_STREAM)
    assert info.state.messages == 1
    assert await stored_request_ids(nc) == Counter({"r1": 1, "r2": 1})


async def test_samples_read_back_newest_first_with_features_and_predictions(nc: nats.NATS) -> None:
    sink = NatsInferenceSink(nc, "shop", None, flush_samples=3)  # a plain `cairn serve`: subject _serve
    await sink.start()
    for i in range(5):
        sink.offer(sample(i, rows=2, deployment=None))
    odd = InferenceSample(request_id="odd", project="shop", model="m", version=4,
                          features=[[1, 2, 3]], prediction=[[0.2, 0.8]], latency_ms=2.0, status=200,
                          time=1_700_000_100.0, role="shadow")  # other columns than the rest
    sink.offer(odd)
    await sink.close(timeout_s=DEADLINE_S)
    # the samples' times are in 2023: the reader filters by when the stream stored them
    got = await read_samples(nc, "shop", None, since=3600, limit=4)
    assert [r["request_id"] for r in got] == ["odd", "r4", "r3", "r2"]
    # one struct per message: a column a request did not send is null in its rows
    assert got[0]["features"] == [{"amount": None, "country": None, "0": 1, "1": 2, "2": 3}]
    assert got[0]["prediction"] == [[0.2, 0.8]]
    assert got[0]["role"] == "shadow" and got[0]["label"] is None
    assert [{k: v for k, v in row.items() if k in ("amount", "country")} for row in got[1]["features"]] == [
        {"amount": 4.0, "country": "de"}, {"amount": 5.0, "country": "de"}]
    assert got[1]["prediction"] == [0, 0] and got[1]["version"] == 3 and got[1]["replica"] == "rep-1"
    assert await read_samples(nc, "shop", "fraud", since=3600, limit=10) == []


async def test_features_arrow_cannot_hold_lose_only_their_own_sample(nc: nats.NATS) -> None:
    sink = NatsInferenceSink(nc, "shop", "fraud", flush_samples=10)
    await sink.start()
    for i in range(3):
        sink.offer(sample(i))
    # a column of another type cannot share the struct: a message of its own
    sink.offer(InferenceSample(request_id="text", project="shop", model="fraud-model", version=3,
                               features=pd.DataFrame({"amount": ["12 EUR"], "country": ["de"]}), prediction=[1],
                               latency_ms=1.0, status=200, time=1.7e9))
    sink.offer(InferenceSample(request_id="bad", project="shop", model="fraud-model", version=3,
                               features=pd.DataFrame({"amount": [object()]}), prediction=[0],
                               latency_ms=1.0, status=200, time=1.7e9))
    await sink.close(timeout_s=DEADLINE_S)
    assert (sink.stats()["published"], sink.stats()["unencodable"], sink.stats()["dropped"]) == (4, 1, 0)
    assert await stored_request_ids(nc) == Counter({"r0": 1, "r1": 1, "r2": 1, "text": 1})
    got = {r["request_id"]: r for r in await read_samples(nc, "shop", "fraud", since=3600, limit=10)}
    assert got["text"]["features"] == [{"amount": "12 EUR", "country": "de"}]
    assert got["r2"]["features"] == [{"amount": 2.0, "country": "de"}]
