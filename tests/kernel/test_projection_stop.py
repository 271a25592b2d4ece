"""Stopping a projection waits for the batch its worker thread is applying, so the store is never
reset (rebuild) or closed (shutdown) under a running transaction; that crashed SQLite before."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.store import SqliteStore


def test_stop_waits_for_the_batch_being_applied(nats_url: str, tmp_path: Path) -> None:
    started, finished = threading.Event(), threading.Event()

    def slow_handler(conn: sqlite3.Connection, event: Event) -> None:
        started.set()
        time.sleep(0.5)
        conn.execute("INSERT INTO seen(seq) VALUES(?)", (event.sequence,))
        finished.set()

    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        store = SqliteStore(tmp_path / "p.sqlite3", "CREATE TABLE IF NOT EXISTS seen (seq INTEGER);")
        runner = ProjectionRunner(log, store, slow_handler, durable="stop-test")
        await runner.start()
        await log.append(Event(type="run.tag_set", project="p", aggregate="run", aggregate_id="r",
                               data={"key": "k", "value": "v"}), expected_last_subject_seq=None)
        assert await asyncio.to_thread(started.wait, 10)
        await runner.stop()
        assert finished.is_set()  # stop returned only after the thread's transaction ended
        store.close()
        await log.close()

    asyncio.run(scenario())
