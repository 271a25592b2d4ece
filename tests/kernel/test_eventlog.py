"""The event log against a real nats-server: optimistic concurrency, idempotency, atomic batches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.kernel.envelope import Event
from cairn.kernel.errors import ConcurrencyConflict
from cairn.kernel.eventlog import EventLog
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
