"""``CommandHandler.execute_guarded``: a decision that reads other aggregates (a name unique among
many aggregates) appends expecting the last sequence of all their subjects, so a writer that
decided on a stale view loses, catches up and decides again."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from cairn.kernel.commands import CommandContext, CommandHandler, Guard
from cairn.kernel.envelope import Event, subject_for, subject_matches
from cairn.kernel.errors import AlreadyExists
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.store import EventHandlers, SnapshotProjection, SqliteStore

SCHEMA = "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, name TEXT NOT NULL);"


def names(conn: sqlite3.Connection) -> set[str]:
    return {r["name"] for r in conn.execute("SELECT name FROM items")}


def create(item_id: str, name: str, seen: list[Any], on_decide: Any = None) -> Any:
    def decide(state: dict[str, Any] | None, taken: set[str]) -> tuple[str, dict[str, Any]]:
        seen.append(sorted(taken))
        if on_decide is not None:
            on_decide()
        if name in taken:
            raise AlreadyExists(f"item {name!r} already exists")
        return "model.created", {"model_id": item_id, "name": name, "description": ""}
    return decide


def test_subject_patterns_match_like_nats() -> None:
    assert subject_matches("cairn.evt.p.model.*", "cairn.evt.p.model.m1")
    assert not subject_matches("cairn.evt.p.model.*", "cairn.evt.p.model.m1.x")
    assert not subject_matches("cairn.evt.p.model.*", "cairn.evt.q.model.m1")
    assert subject_matches("cairn.evt.>", "cairn.evt.p.run.r")
    assert not subject_matches("cairn.evt.p.>", "cairn.evt.p")


def test_a_stale_guarded_writer_loses_catches_up_and_decides_again(nats_url: str, tmp_path: Path) -> None:
    """Two service instances (each its own read model) create the same name: the second decided
    on a view without the first's item, so its append conflicts on the wildcard; it catches up and
    refuses with AlreadyExists. A different name in another project is not held up."""
    release = threading.Event()  # holds instance B's projection until B has decided once
    handlers_a, handlers_b = EventHandlers(), EventHandlers()

    @handlers_a.handles("model.created")
    def _item_a(conn: sqlite3.Connection, e: Event) -> None:
        conn.execute("INSERT INTO items(id, name) VALUES(?, ?)", (e.aggregate_id, e.data["name"]))

    @handlers_b.handles("model.created")
    def _item_b(conn: sqlite3.Connection, e: Event) -> None:
        release.wait(30)
        _item_a(conn, e)

    def evolve(state: dict[str, Any] | None, _type: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"name": data["name"]}

    async def instance(name: str, handlers: EventHandlers) -> tuple[SqliteStore, ProjectionRunner, CommandHandler]:
        log = await EventLog.open(nats_url, name=name)
        store = SqliteStore(tmp_path / f"{name}.sqlite3", SCHEMA)
        runner = ProjectionRunner(log, store, SnapshotProjection({"model": evolve}, handlers), durable=name,
                                  inline_batch=0)
        await runner.start()
        return store, runner, CommandHandler(log, store, runner)

    async def scenario() -> None:
        store_a, runner_a, a = await instance("guard-a", handlers_a)
        store_b, runner_b, b = await instance("guard-b", handlers_b)
        ctx = CommandContext(actor="user:test")
        guard = Guard(subject_for("p", "model", "*"), names)
        first = await a.execute_guarded(ctx, project="p", aggregate="model", aggregate_id="m1", guard=guard,
                                        decide=create("m1", "churn", []))
        seen: list[Any] = []
        with pytest.raises(AlreadyExists):
            await b.execute_guarded(ctx, project="p", aggregate="model", aggregate_id="m2", guard=guard,
                                    decide=create("m2", "churn", seen, on_decide=release.set))
        assert seen == [[], ["churn"]]  # decided on the stale view, lost, decided again on the caught-up one
        assert runner_b.applied == first.sequence  # nothing else was appended
        # a guard covers only its own subjects: another project's writer is not held up by them
        other = await b.execute_guarded(ctx, project="q", aggregate="model", aggregate_id="m3",
                                        guard=Guard(subject_for("q", "model", "*"), names),
                                        decide=create("m3", "fraud", []))
        assert other.type == "model.created"
        with pytest.raises(ValueError):  # the guard must cover the aggregate's own subject
            await a.execute_guarded(ctx, project="p", aggregate="run", aggregate_id="r", guard=guard,
                                    decide=create("r", "x", []))
        for runner, store in ((runner_a, store_a), (runner_b, store_b)):
            await runner.stop()
            store.close()
        await a.log.close()
        await b.log.close()

    asyncio.run(scenario())
