"""A projection that reads some aggregates: the log delivers only their events, and waiting for
any sequence of the stream (another aggregate's event, or the stream's end) still returns."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from cairn.kernel.envelope import Event, aggregate_subjects
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.store import SqliteStore

SCHEMA = "CREATE TABLE IF NOT EXISTS seen (aggregate TEXT, seq INTEGER);"


def _event(aggregate: str, n: int) -> Event:
    return Event(type="run.tag_set", project="p", aggregate=aggregate, aggregate_id=f"{aggregate}-{n}",
                 data={"key": "k", "value": "v"})


def _seen(conn: sqlite3.Connection, event: Event) -> None:
    conn.execute("INSERT INTO seen(aggregate, seq) VALUES(?, ?)", (event.aggregate, event.sequence))


def test_a_filtered_projection_sees_only_its_aggregates_and_waits_past_the_rest(nats_url: str,
                                                                                tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        store = SqliteStore(tmp_path / "f.sqlite3", SCHEMA)
        runner = ProjectionRunner(log, store, _seen, durable="filtered", filter_subjects=aggregate_subjects(["mine"]))
        await runner.start()
        mine = [(await log.append(_event("mine", n), expected_last_subject_seq=None)).sequence for n in range(3)]
        other = (await log.append(_event("other", 0), expected_last_subject_seq=None)).sequence
        await runner.wait_for(mine[-1])
        await runner.wait_for(other, timeout=5)  # never delivered here, yet the wait ends
        await runner.wait_for(await log.last_sequence(), timeout=5)
        assert runner.applied >= other
        rows = store.query("SELECT aggregate, seq FROM seen ORDER BY seq")
        assert [(r["aggregate"], r["seq"]) for r in rows] == [("mine", s) for s in mine]
        await runner.stop()
        # restarted, it resumes after what it applied and still reads only its aggregates
        late = (await log.append(_event("mine", 9), expected_last_subject_seq=None)).sequence
        await log.append(_event("other", 9), expected_last_subject_seq=None)
        runner = ProjectionRunner(log, store, _seen, durable="filtered", filter_subjects=aggregate_subjects(["mine"]))
        await runner.start()
        await runner.wait_for(await log.last_sequence(), timeout=5)
        rows = store.query("SELECT aggregate, seq FROM seen ORDER BY seq")
        assert [(r["aggregate"], r["seq"]) for r in rows] == [("mine", s) for s in [*mine, late]]
        await runner.stop()
        store.close()
        await log.close()

    asyncio.run(scenario())


def test_refilter_mid_batch_reads_on_from_the_cut_with_the_new_subjects(nats_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        store = SqliteStore(tmp_path / "r.sqlite3", SCHEMA)
        handled: list[int] = []

        async def before_apply(events: list[Event]) -> None:
            for event in events:
                if event.sequence <= store.last_sequence():
                    continue
                handled.append(event.sequence)
                if event.aggregate_id == "mine-1" and "other" not in str(runner.filter_subjects):
                    runner.refilter(aggregate_subjects(["mine", "other"]), upto=event.sequence)
                    return  # the rest of the batch is read again under the new filter

        appended = {}
        for aggregate, n in (("mine", 0), ("other", 0), ("mine", 1), ("other", 1), ("mine", 2)):
            appended[f"{aggregate}-{n}"] = (await log.append(_event(aggregate, n), expected_last_subject_seq=None)).sequence
        runner = ProjectionRunner(log, store, _seen, durable="refiltered", filter_subjects=aggregate_subjects(["mine"]),
                                  before_apply=before_apply)
        await runner.start()
        await runner.wait_for(appended["mine-2"], timeout=5)
        expected = [appended[k] for k in ("mine-0", "mine-1", "other-1", "mine-2")]  # other-0 precedes the cut
        assert handled == expected
        assert [r["seq"] for r in store.query("SELECT seq FROM seen ORDER BY seq")] == expected
        await runner.stop()
        store.close()
        await log.close()

    asyncio.run(scenario())
