"""``CommandHandler.execute(wait=False)`` answers once the event is durable in the log, before the
projection shows it; ``settled()`` (reads) and the next command wait for the projection."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from cairn.kernel.commands import CommandContext, CommandHandler
from cairn.kernel.envelope import Event, subject_for
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.store import EventHandlers, SnapshotProjection, SqliteStore


def test_answer_before_projection_then_reads_and_next_command_wait(nats_url: str, tmp_path: Path) -> None:
    release = threading.Event()  # holds the projection's worker thread until the test lets it go
    handlers = EventHandlers()

    @handlers.handles("run.tag_set")
    def _tag(conn: sqlite3.Connection, e: Event) -> None:
        release.wait(30)
        conn.execute("INSERT INTO tags(run, key) VALUES(?, ?)", (e.aggregate_id, e.data["key"]))

    def evolve(state: dict[str, Any] | None, _type: str, data: dict[str, Any]) -> dict[str, Any]:
        return {**(state or {}), data["key"]: data["value"]}

    def tag(key: str, seen: list[Any]) -> Any:
        return lambda state: seen.append(state) or ("run.tag_set", {"key": key, "value": "v"})

    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        store = SqliteStore(tmp_path / "p.sqlite3", "CREATE TABLE IF NOT EXISTS tags (run TEXT, key TEXT);")
        runner = ProjectionRunner(log, store, SnapshotProjection({"run": evolve}, handlers), durable="no-wait",
                                  inline_batch=0)  # every batch in a worker thread, which the test holds
        await runner.start()
        commands = CommandHandler(log, store, runner)
        ctx, seen = CommandContext(actor="user:test"), []
        first = await commands.execute(ctx, project="p", aggregate="run", aggregate_id="r",
                                       decide=tag("a", seen), wait=False)
        # Answered while the projection is held: the event is in the log, not in the view yet.
        assert await log.last_subject_sequence(subject_for("p", "run", "r")) == first.sequence
        assert runner.applied < first.sequence
        second = asyncio.create_task(commands.execute(ctx, project="p", aggregate="run", aggregate_id="r",
                                                      decide=tag("b", seen)))
        await asyncio.sleep(0.2)
        assert seen == [None] and not second.done()  # the next command waits before it decides
        release.set()
        await second
        assert seen == [None, {"a": "v"}]  # decided on the state that includes the first event
        await commands.settled()
        assert [tuple(r) for r in store.query("SELECT run, key FROM tags ORDER BY key")] == [("r", "a"), ("r", "b")]
        await runner.stop()
        store.close()
        await log.close()

    asyncio.run(scenario())
