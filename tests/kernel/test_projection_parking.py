"""A projection parks an event it cannot apply and goes on: the good events of the batch around
it are applied, the position moves past it once, a notice is appended, and admins' retry and
skip decisions (events of record) act on it, also when a rebuild replays them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from nats.js.errors import NotFoundError

from cairn.kernel.envelope import Event
from cairn.kernel.errors import EventOutOfOrder
from cairn.kernel.eventlog import EventLog
from cairn.kernel.parking import PARKED, RETRIED, SKIPPED, control_subject, decision, list_parked
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.store import EventHandlers, SnapshotProjection, SqliteStore

SCHEMA = "CREATE TABLE IF NOT EXISTS tags (run TEXT, key TEXT, value TEXT, PRIMARY KEY (run, key));"


def evolve_run(state: dict[str, Any] | None, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "run.created":
        return {"tags": {}}
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a run that does not exist")
    state["tags"][data["key"]] = data["value"]
    return state


def projection() -> SnapshotProjection:
    views = EventHandlers()

    @views.handles("run.created")
    def created(conn: sqlite3.Connection, event: Event) -> None:
        pass

    @views.handles("run.tag_set")
    def tag_set(conn: sqlite3.Connection, event: Event) -> None:
        conn.execute("INSERT OR REPLACE INTO tags VALUES(?, ?, ?)",
                     (event.aggregate_id, event.data["key"], event.data["value"]))

    return SnapshotProjection({"run": evolve_run}, views)


def run_event(event_type: str, run: str, **data: Any) -> Event:
    return Event(type=event_type, project="p", aggregate="run", aggregate_id=run, data=data)


def tags(store: SqliteStore) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in store.query("SELECT run, key, value FROM tags ORDER BY run, key")]


async def last_event(log: EventLog, subject: str, timeout: float = 10.0) -> Event:
    """The last event on ``subject``, waiting for one to be appended (the notice follows the
    commit of the parking, asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            msg = await log.js.get_last_msg(log.stream, subject)
            return Event.from_message(msg.data, msg.seq, msg.headers)
        except NotFoundError:
            assert asyncio.get_running_loop().time() < deadline, f"nothing on {subject} before the deadline"
            await asyncio.sleep(0.05)


def test_a_poison_event_inside_a_batch_is_parked_and_the_rest_applied(nats_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        await log.ensure_stream()
        store = SqliteStore(tmp_path / "p.sqlite3", SCHEMA)
        # the whole batch is published before the runner starts, so it arrives as one batch
        sequences = await log.append_batch([
            run_event("run.created", "a"), run_event("run.tag_set", "a", key="k", value="1"),
            run_event("run.tag_set", "ghost", key="k", value="x"), run_event("run.tag_set", "a", key="j", value="2")])
        poison = sequences[2]
        runner = ProjectionRunner(log, store, projection(), durable="projection-parktest", parking=True)
        await runner.start()
        last = await log.last_sequence()
        await runner.wait_for(last)
        assert tags(store) == [("a", "j", "2"), ("a", "k", "1")]  # before and after the poison
        [parked] = list_parked(store.reader())
        assert (parked.sequence, parked.type) == (poison, "run.tag_set")
        assert "EventOutOfOrder" in parked.error and "does not exist" in parked.error
        assert runner.last_error is None and runner.parked_count() == 1

        # the notice is in the log, on the service's control subject
        notice = await last_event(log, control_subject("parktest"))
        assert notice.type == PARKED and notice.data["sequence"] == poison

        # retry before the run exists: still parked, with its error
        await log.append(decision(RETRIED, "parktest", poison, "admin:x"), expected_last_subject_seq=None)
        await runner.wait_for(await log.last_sequence())
        assert [p.sequence for p in list_parked(store.reader())] == [poison]

        # the missing run arrives; retry applies the event, and the run's snapshot keeps its
        # latest sequence (the command side's concurrency check reads it)
        created = await log.append(run_event("run.created", "ghost"), expected_last_subject_seq=None)
        await log.append(decision(RETRIED, "parktest", poison, "admin:x"), expected_last_subject_seq=None)
        await runner.wait_for(await log.last_sequence())
        assert list_parked(store.reader()) == []
        assert ("ghost", "k", "x") in tags(store)
        row = store.query_one("SELECT last_seq FROM aggregates WHERE subject=?", (run_event("x", "ghost").subject,))
        assert row is not None and row[0] == created.sequence

        # a second poison, skipped
        # (its own sequence: the first poison's parking notice may be appended after it)
        second = (await log.append(run_event("run.tag_set", "nobody", key="k", value="y"),
                                   expected_last_subject_seq=None)).sequence
        await runner.wait_for(second)
        assert [p.sequence for p in list_parked(store.reader())] == [second]
        await log.append(decision(SKIPPED, "parktest", second, "admin:x"), expected_last_subject_seq=None)
        await runner.wait_for(await log.last_sequence())
        assert list_parked(store.reader()) == []

        # a third stays parked; a rebuild replays the decisions: same content, same parked set
        third = await log.append(run_event("run.tag_set", "never", key="k", value="z"), expected_last_subject_seq=None)
        await runner.wait_for(third.sequence)
        deadline = asyncio.get_running_loop().time() + 10
        while (await last_event(log, control_subject("parktest"))).data["sequence"] != third.sequence:
            assert asyncio.get_running_loop().time() < deadline, "no notice for the third poison"
            await asyncio.sleep(0.05)  # its notice comes right after the parking's commit
        await runner.wait_for(await log.last_sequence())  # ... and is applied (ignored) too
        before = (store.content_hash(), [p.sequence for p in list_parked(store.reader())])
        await runner.rebuild()
        after = (store.content_hash(), [p.sequence for p in list_parked(store.reader())])
        assert after == before and len(after[1]) == 1
        await runner.stop()
        store.close()
        await log.close()

    asyncio.run(scenario())


def test_an_infrastructure_error_is_retried_not_parked(nats_url: str, tmp_path: Path) -> None:
    """A locked or broken database is the machine's fault: the batch is retried from the
    position (not ready meanwhile), and once the fault is gone the event is applied."""
    failures = [sqlite3.OperationalError("database is locked")]

    def handler(conn: sqlite3.Connection, event: Event) -> None:
        if failures:
            raise failures.pop()
        conn.execute("INSERT OR REPLACE INTO tags VALUES(?, ?, ?)", (event.aggregate_id, "k", "v"))

    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        await log.ensure_stream()
        store = SqliteStore(tmp_path / "p.sqlite3", SCHEMA)
        runner = ProjectionRunner(log, store, handler, durable="projection-transient", parking=True)
        await runner.start()
        appended = await log.append(run_event("run.tag_set", "t", key="k", value="v"), expected_last_subject_seq=None)
        await runner.wait_for(appended.sequence)
        assert ("t", "k", "v") in tags(store)
        assert list_parked(store.reader()) == []
        await runner.stop()
        store.close()
        await log.close()

    asyncio.run(scenario())
