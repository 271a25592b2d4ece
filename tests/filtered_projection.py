"""Shared scenario for tests that a service's projection reads only its aggregates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI

from cairn.kernel.envelope import Event, aggregate_subjects
from cairn.kernel.eventlog import EventLog
from cairn.kernel.parking import control_subject

T = TypeVar("T")


async def follow(nats_url: str, app: FastAPI, durable: str, aggregates: Sequence[str],
                 before: Sequence[Event], during: Sequence[Event], read: Callable[[Any], T]) -> tuple[T, int]:
    """Appends ``before`` (the service replays them at start), starts the app, appends ``during``
    (it follows them), waits until its projection is at the log's end and checks that its consumer
    filters on exactly ``aggregates`` (and its control subject). Returns (``read`` of the running service's store, the number
    of events its consumer was delivered)."""
    log = await EventLog.open(nats_url)
    try:
        for event in before:
            await log.append(event, expected_last_subject_seq=None)
        async with app.router.lifespan_context(app):
            runtime = app.state.runtime
            for event in during:
                await log.append(event, expected_last_subject_seq=None)
            await runtime.runner.wait_for(await log.last_sequence(), timeout=10)
            info = await log.js.consumer_info(log.stream, durable)
            # ... and its own control subject, where admins' retry/skip of parked events arrive
            control = control_subject(durable.removeprefix("projection-"))
            assert sorted(info.config.filter_subjects or []) == sorted([*aggregate_subjects(aggregates), control])
            return read(runtime.store), info.delivered.consumer_seq
    finally:
        await log.close()
