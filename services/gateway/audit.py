"""Audit: who did what and when, read from the event log itself."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from nats.js import api as js_api

from cairn.kernel.envelope import H_ACTOR, H_TYPE, SUBJECT_PREFIX, Event
from cairn.kernel.errors import InvalidInput
from cairn.kernel.eventlog import EventLog
from cairn.services.gateway.events import matches, public_dict, type_matcher

MAX_SCAN = 200_000


async def audit_page(log: EventLog, *, project: str | None, actor: str | None, types: str | None,
                     since: str | None, after: int, limit: int) -> dict[str, Any]:
    """Events matching the filters, oldest first, after stream sequence ``after``."""
    patterns = type_matcher(types)
    last = await log.last_sequence()
    if after >= last:
        return {"events": [], "next_cursor": None}
    config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=timezone.utc)
        except ValueError:
            raise InvalidInput("since must be an ISO 8601 time such as 2026-11-26T08:00:00Z",
                               details={"field": "since"}) from None
        if after == 0:
            config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.BY_START_TIME,
                                           opt_start_time=start.isoformat())  # type: ignore[arg-type]  # the server takes RFC 3339 text
    subject = f"{SUBJECT_PREFIX}.{project}.>" if project else f"{SUBJECT_PREFIX}.>"
    sub = await log.js.subscribe(subject, ordered_consumer=True, config=config, stream=log.stream)
    events: list[dict[str, Any]] = []
    cursor = after
    try:
        for _ in range(MAX_SCAN):
            try:
                msg = await sub.next_msg(timeout=2.0)
            except (asyncio.TimeoutError, Exception) as err:  # nats' own TimeoutError
                if "Timeout" not in type(err).__name__:
                    raise
                return {"events": events, "next_cursor": None}
            meta = msg.metadata
            cursor = meta.sequence.stream
            headers = msg.headers or {}
            if _matches(headers, actor, patterns):
                event = Event.from_message(msg.data, cursor, headers)
                if start is None or datetime.fromisoformat(event.time.replace("Z", "+00:00")) >= start:
                    events.append(public_dict(event))
            if meta.num_pending == 0:
                return {"events": events, "next_cursor": None}
            if len(events) >= limit:
                return {"events": events, "next_cursor": cursor}
        return {"events": events, "next_cursor": cursor}
    finally:
        await sub.unsubscribe()


def _matches(headers: dict[str, str], actor: str | None, patterns: list[str]) -> bool:
    if actor:
        who = headers.get(H_ACTOR, "")
        if who != actor and not who.startswith(f"{actor}:"):
            return False
    return matches(headers.get(H_TYPE, ""), patterns)
