"""Commands whose decision is several events: appended together (all or none, one idempotency
key), the projection waited for up to the last one, a repeat answered with the first."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.kernel.commands import CommandContext, CommandHandler
from cairn.kernel.envelope import Event, subject_for
from cairn.kernel.errors import ConcurrencyConflict
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.store import EventHandlers, SnapshotProjection, SqliteStore
from cairn.natsserver import start_nats_server

SCHEMA = "CREATE TABLE IF NOT EXISTS tags (run TEXT, key TEXT, seq INTEGER);"


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_nats_server(Path(tmp_path_factory.mktemp("nats")))
    yield url
    proc.terminate()
    proc.wait()


def _tag(run: str, key: str) -> Event:
    return Event(type="run.tag_set", project="cmd", aggregate="run", aggregate_id=run,
                 data={"key": key, "value": "v"})


def _evolve(state: dict[str, Any] | None, _type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [*(state or {"keys": []})["keys"], data["key"]]}


def _handlers() -> EventHandlers:
    handlers = EventHandlers()

    @handlers.handles("run.tag_set")
    def _tag_set(conn: sqlite3.Connection, e: Event) -> None:
        conn.execute("INSERT INTO tags(run, key, seq) VALUES(?, ?, ?)", (e.aggregate_id, e.data["key"], e.sequence))

    return handlers


def test_events_appended_together_land_in_order_or_not_at_all(nats_url: str) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        appended = await log.append_together([_tag("both", "a"), _tag("both", "b")], expected_last_subject_seq=0,
                                             msg_id="together-1")
        assert appended.count == 2 and appended.first_sequence == appended.sequence - 1
        assert await log.last_subject_sequence("cairn.evt.cmd.run.both") == appended.sequence
        before = await log.last_sequence()
        with pytest.raises(ConcurrencyConflict):  # the subject moved on: neither event is stored
            await log.append_together([_tag("both", "c"), _tag("both", "d")], expected_last_subject_seq=0)
        again = await log.append_together([_tag("both", "a"), _tag("both", "b")], expected_last_subject_seq=0,
                                          msg_id="together-1")
        assert again.duplicate
        assert await log.last_sequence() == before
        await log.close()

    asyncio.run(scenario())


def test_a_decision_of_several_events_is_one_command(nats_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        store = SqliteStore(tmp_path / "cmd.sqlite3", SCHEMA)
        runner = ProjectionRunner(log, store, SnapshotProjection({"run": _evolve}, _handlers()), durable="cmd-test")
        await runner.start()
        commands = CommandHandler(log, store, runner)
        ctx = CommandContext(actor="tester", idempotency_key="make-two")

        def decide(state: dict[str, Any] | None) -> Any:
            assert state is None
            return [("run.tag_set", {"key": "first", "value": "v"}), ("run.tag_set", {"key": "second", "value": "v"})]

        outcome = await commands.execute(ctx, project="cmd", aggregate="run", aggregate_id="pair", decide=decide)
        rows = store.query("SELECT key, seq FROM tags WHERE run='pair' ORDER BY seq")
        assert [r["key"] for r in rows] == ["first", "second"]  # both visible when it answers
        assert outcome.type == "run.tag_set" and outcome.sequence == rows[0]["seq"]
        repeated = await commands.execute(ctx, project="cmd", aggregate="run", aggregate_id="pair", decide=decide)
        assert repeated.duplicate and repeated.sequence == outcome.sequence
        assert len(store.query("SELECT * FROM tags WHERE run='pair'")) == 2
        single = await commands.execute(CommandContext(actor="tester"), project="cmd", aggregate="run",
                                        aggregate_id="pair", decide=lambda s: ("run.tag_set", {"key": "third",
                                                                                               "value": "v"}))
        assert single.sequence > rows[1]["seq"]
        state = store.query_one("SELECT state FROM aggregates WHERE subject=?", (subject_for("cmd", "run", "pair"),))
        assert state is not None and json.loads(state["state"])["keys"] == ["first", "second", "third"]
        await runner.stop()
        store.close()
        await log.close()

    asyncio.run(scenario())


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
