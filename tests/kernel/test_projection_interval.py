"""A projection with a minimum interval between applies takes a trickle of events in fewer,
larger batches, and still applies every event once (a real nats-server)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.store import SqliteStore

SCHEMA = "CREATE TABLE IF NOT EXISTS tags (run TEXT, key TEXT, seq INTEGER);"


def _tag(run: str, key: str) -> Event:
    return Event(type="run.tag_set", project="cmd", aggregate="run", aggregate_id=run,
                 data={"key": key, "value": "v"})


def test_a_runner_with_an_interval_applies_a_trickle_in_fewer_batches(nats_url: str, tmp_path: Path) -> None:
    batches: list[int] = []

    class Counting:
        def __call__(self, conn: sqlite3.Connection, event: Event) -> None:
            conn.execute("INSERT INTO tags(run, key, seq) VALUES(?, ?, ?)", (event.aggregate_id, "k", event.sequence))

        def begin_batch(self) -> None:
            batches.append(0)

    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        store = SqliteStore(tmp_path / "trickle.sqlite3", SCHEMA)
        runner = ProjectionRunner(log, store, Counting(), durable="trickle-test", min_interval_s=0.3)
        await runner.start()
        await runner.wait_for(await log.last_sequence())
        batches.clear()
        last = 0
        for n in range(20):
            last = (await log.append(_tag("trickle", f"k{n}"), expected_last_subject_seq=None)).sequence
            await asyncio.sleep(0.02)
        await runner.wait_for(last)
        assert len(store.query("SELECT * FROM tags WHERE run='trickle'")) == 20  # every event, once
        assert len(batches) < 10
        await runner.stop()
        store.close()
        await log.close()

    asyncio.run(scenario())
