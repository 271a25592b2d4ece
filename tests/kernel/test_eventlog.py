"""The event log against a real nats-server: optimistic concurrency, idempotency, atomic batches."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.kernel.envelope import H_MSG_ID, Event
from cairn.kernel.errors import ConcurrencyConflict, PayloadTooLarge, Unavailable
from cairn.kernel.eventlog import EventLog, message_header_bytes
from cairn.natsserver import start_nats_server


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_nats_server(Path(tmp_path_factory.mktemp("nats")))
    yield url
    proc.terminate()
    proc.wait()


def _tag(run: str, key: str) -> Event:
    return Event(type="run.tag_set", project="log", aggregate="run", aggregate_id=run,
                 data={"key": key, "value": "v"})


def test_append_checks_the_expected_subject_sequence(nats_url: str) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        first = await log.append(_tag("occ", "a"), expected_last_subject_seq=0)
        with pytest.raises(ConcurrencyConflict):
            await log.append(_tag("occ", "b"), expected_last_subject_seq=0)
        second = await log.append(_tag("occ", "b"), expected_last_subject_seq=first.sequence)
        assert second.sequence > first.sequence
        assert await log.last_subject_sequence("cairn.evt.log.run.occ") == second.sequence
        assert await log.last_subject_sequence("cairn.evt.log.run.none") == 0
        await log.close()

    asyncio.run(scenario())


def test_same_msg_id_is_stored_once(nats_url: str) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        before = await log.last_sequence()
        results = [await log.append(_tag("idem", "a"), expected_last_subject_seq=None, msg_id="same")
                   for _ in range(3)]
        assert [r.duplicate for r in results] == [False, True, True]
        assert {r.sequence for r in results} == {before + 1}
        await log.close()

    asyncio.run(scenario())


def test_atomic_batches_append_in_order(nats_url: str) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        before = await log.last_sequence()
        sequences = await log.append_batch([_tag(f"b{i % 7}", f"k{i}") for i in range(2500)])
        assert sequences == list(range(before + 1, before + 2501))
        assert await log.last_sequence() == before + 2500
        await log.close()

    asyncio.run(scenario())


def _sized(run: str, total: int, msg_id: str) -> Event:
    """A tag event whose message (payload and the headers ``append`` sends) is ``total`` bytes."""
    event = _tag(run, "big")
    headers = {**event.headers(), H_MSG_ID: msg_id}
    overhead = len(event.to_json()) - 1 + message_header_bytes(headers)
    return dataclasses.replace(event, data={"key": "big", "value": "v" * (total - overhead)})


def test_an_event_over_max_payload_is_413_naming_the_limit_and_nothing_is_sent(nats_url: str) -> None:
    """The server's max_payload counts headers too: a message of exactly the limit is stored, one
    byte more is refused here (a 413 naming the limit and the largest part) instead of a
    MaxPayloadError or a server that drops the connection."""
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        limit = log.nc.max_payload
        assert limit == 8 << 20  # max_payload: 8MB in the servers we start
        before = await log.last_sequence()
        with pytest.raises(PayloadTooLarge) as refused:
            await log.append(_sized("max", limit + 1, "over"), expected_last_subject_seq=None, msg_id="over")
        assert refused.value.details["limit"] == limit and str(limit) in refused.value.message
        assert "value" in refused.value.details["largest"]
        with pytest.raises(PayloadTooLarge):
            await log.append_batch([_tag("max", "small"), _sized("max", limit + 1, "x")])
        assert await log.last_sequence() == before
        stored = await log.append(_sized("max", limit, "exact"), expected_last_subject_seq=None, msg_id="exact")
        assert stored.sequence == before + 1 and log.nc.is_connected
        await log.close()

    asyncio.run(scenario())


def test_an_append_nobody_answers_is_503_with_retry_after(tmp_path: Path) -> None:
    """No stream leader answers (here: the stream is gone; on a cluster, while a dead node's
    streams elect a new leader): the append is Unavailable, which services answer as a 503
    with Retry-After, not an internal error."""
    proc, url = start_nats_server(tmp_path / "nats")

    async def scenario() -> None:
        log = await EventLog.open(url)
        await log.append(_tag("gone", "a"), expected_last_subject_seq=None)
        await log.js.delete_stream(log.stream)
        with pytest.raises(Unavailable) as err:
            await log.append(_tag("gone", "b"), expected_last_subject_seq=None)
        assert err.value.status == 503 and err.value.details == {"retry_after": 1}
        assert "Idempotency-Key" in str(err.value)
        await log.close()

    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait()
