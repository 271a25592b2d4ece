"""Summaries as events, without service processes: the announcer against a real nats-server and a
real SQLite store. Each changed summary goes out once, in one event per project, with NaN and the
infinities worded as the summary API words them; a store made before summaries were events is
announced in full, once; a write too large for one event is split."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog
from cairn.kernel.schemas import validate_event
from cairn.services.metrics.announce import SummaryAnnouncer, split_rows
from cairn.services.metrics.store import MetricsStore
from cairn.services.metrics.writer import summarize


def _commit(store: MetricsStore, project: str, run_id: str, seq: int, values: list[float], key: str = "loss") -> None:
    table = pa.table({"key": [key] * len(values), "value": values, "step": list(range(len(values))),
                      "timestamp": [100.0 + i for i in range(len(values))]})
    store.commit_part(project, run_id, f"part-{seq}", seq, seq, len(values), [(f"m{seq}", seq)],
                      summarize(table, np.full(len(values), seq)))


async def _announce_and_read(nats_url: str, store: MetricsStore, **kwargs: Any) -> tuple[int, list[Event]]:
    """Announce, then every metric.summarized in the log (the announcer's own appends, in order)."""
    log = await EventLog.open(nats_url, name="announce-test")
    try:
        appended = await SummaryAnnouncer(store, log, **kwargs).announce()
        events: list[Event] = []
        last = await log.last_sequence()
        if last:
            sub = await log.js.subscribe("cairn.evt.*.metrics.*", ordered_consumer=True, stream=log.stream)
            while not events or events[-1].sequence < last:
                msg = await sub.next_msg(timeout=10)
                events.append(Event.from_message(msg.data, msg.metadata.sequence.stream, msg.headers))
            await sub.unsubscribe()
        return appended, events
    finally:
        await log.close()


def test_each_changed_summary_is_announced_once_per_project(nats_url: str, tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    _commit(store, "pa", "r1", 1, [3.0, math.nan, math.inf])
    _commit(store, "pa", "r2", 2, [1.0, 0.5])
    _commit(store, "pb", "r3", 3, [-math.inf])
    appended, events = asyncio.run(_announce_and_read(nats_url, store))
    assert appended == 2 and [(e.project, e.aggregate, e.aggregate_id, e.type) for e in events] == [
        ("pa", "metrics", "pa", "metric.summarized"), ("pb", "metrics", "pb", "metric.summarized")]
    for event in events:
        validate_event(event)
    first = {s["run_id"]: s for s in events[0].data["summaries"]}
    assert first["r1"] == {"run_id": "r1", "key": "loss", "count": 3, "min": 3.0, "max": "Infinity",
                           "last": "Infinity", "last_step": 2, "last_time": 102.0}
    assert first["r2"]["last"] == 0.5 and first["r2"]["count"] == 2
    assert events[1].data["summaries"][0]["last"] == "-Infinity"
    assert store.unannounced(10) == []
    again, events_after = asyncio.run(_announce_and_read(nats_url, store))
    assert again == 0 and len(events_after) == 2  # nothing new was appended

    _commit(store, "pa", "r1", 4, [7.0])  # a later write: only what it changed goes out
    appended, events = asyncio.run(_announce_and_read(nats_url, store))
    assert appended == 1
    assert events[-1].data["summaries"] == [{"run_id": "r1", "key": "loss", "count": 4, "min": 3.0,
                                             "max": "Infinity", "last": "Infinity", "last_step": 2,
                                             "last_time": 102.0}]
    store.close()


def test_a_store_made_before_summaries_were_events_is_announced_once(nats_url: str, tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the summaries table as it was (no announced flag)
        db.execute("CREATE TABLE summaries (project TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, "
                   "count INTEGER NOT NULL, min REAL, max REAL, last REAL, last_step INTEGER NOT NULL, "
                   "last_seq INTEGER NOT NULL, last_time REAL, PRIMARY KEY (project, run_id, key))")
        db.execute("INSERT INTO summaries VALUES ('old', 'r', 'acc', 4, 0.1, 0.9, 0.9, 3, 17, 5.0)")
        db.execute("INSERT INTO summaries VALUES ('old', 'r', 'nan', 1, NULL, NULL, 'NaN', 0, 18, 5.0)")
    store = MetricsStore(path)
    appended, events = asyncio.run(_announce_and_read(nats_url, store))
    assert appended == 1
    assert events[0].data["summaries"] == [
        {"run_id": "r", "key": "acc", "count": 4, "min": 0.1, "max": 0.9, "last": 0.9, "last_step": 3, "last_time": 5.0},
        {"run_id": "r", "key": "nan", "count": 1, "min": None, "max": None, "last": "NaN", "last_step": 0,
         "last_time": 5.0}]
    store.close()
    reopened = MetricsStore(path)  # a second start announces nothing
    assert asyncio.run(_announce_and_read(nats_url, reopened))[0] == 0
    reopened.close()


def test_a_write_too_large_for_one_event_is_split(nats_url: str, tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    for n in range(30):
        _commit(store, "big", f"run-{n:02d}", n + 1, [float(n)], key="k" * 200)
    rows = [row for _, row in store.unannounced(100)]
    assert len(split_rows(rows, 2000)) > 1 and sum(map(len, split_rows(rows, 2000))) == 30

    class Small(SummaryAnnouncer):
        def budget(self, project: str) -> int:
            return 2000

    async def announce_small() -> int:
        log = await EventLog.open(nats_url, name="split-test")
        try:
            return await Small(store, log, rows_per_pass=7).announce()
        finally:
            await log.close()

    appended = asyncio.run(announce_small())
    _, events = asyncio.run(_announce_and_read(nats_url, store))
    assert appended == len(events) > 1
    assert sorted(s["run_id"] for e in events for s in e.data["summaries"]) == [f"run-{n:02d}" for n in range(30)]
    store.close()
