"""Audit: who did what and when, read from the event log itself.

Two ways through the log: forward (``audit_page``, oldest first after a cursor: the CLI's and the
first callers' paging) and backward (``audit_page_desc``, newest first before a cursor: what a person
reading an audit log wants first). The log can only be read forward, so the backward walk reads
windows of stream sequences ending at the cursor, each twice as long as the one before, newest
window first, until a page is full.
"""

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
FIRST_WINDOW = 512
MAX_WINDOW = 65_536


async def audit_page(log: EventLog, *, project: str | None, actor: str | None, types: str | None,
                     since: str | None, after: int, limit: int) -> dict[str, Any]:
    """Events matching the filters, oldest first, after stream sequence ``after``."""
    patterns = type_matcher(types)
    last = await log.last_sequence()
    if after >= last:
        return {"events": [], "next_cursor": None}
    config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    start = _since(since)
    if start is not None:
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


async def audit_page_desc(log: EventLog, *, project: str | None, actor: str | None, types: str | None,
                          since: str | None, before: int | None, limit: int,
                          first_window: int = FIRST_WINDOW) -> dict[str, Any]:
    """Events matching the filters, newest first, below stream sequence ``before`` (the newest when
    None). ``next_cursor`` is the ``before`` of the next (older) page, None at the start of the log
    or of ``since``."""
    patterns = type_matcher(types)
    start = _since(since)
    subject = f"{SUBJECT_PREFIX}.{project}.>" if project else f"{SUBJECT_PREFIX}.>"
    top = await log.last_subject_sequence(subject) + 1  # nothing of these subjects above it
    hi = min(before, top) if before is not None else top
    events: list[dict[str, Any]] = []
    window, scanned = first_window, 0
    while hi > 1:
        lo = max(1, hi - window)
        found, reached_since, seen = await _window(log, subject, lo, hi, actor, patterns, start)
        scanned += seen
        events.extend(reversed(found))
        if len(events) >= limit:
            events = events[:limit]
            return {"events": events, "next_cursor": events[-1]["sequence"]}
        if reached_since or lo == 1:
            break
        hi, window = lo, min(window * 2, MAX_WINDOW)
        if scanned >= MAX_SCAN:
            return {"events": events, "next_cursor": hi}
    return {"events": events, "next_cursor": None}


async def _window(log: EventLog, subject: str, lo: int, hi: int, actor: str | None, patterns: list[str],
                  start: datetime | None) -> tuple[list[dict[str, Any]], bool, int]:
    """The matching events of stream sequences [lo, hi) in log order, whether one older than
    ``start`` was seen, and how many messages were read."""
    config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=lo)
    sub = await log.js.subscribe(subject, ordered_consumer=True, config=config, stream=log.stream)
    found: list[dict[str, Any]] = []
    reached_since, seen = False, 0
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=2.0)
            except (asyncio.TimeoutError, Exception) as err:  # nats' own TimeoutError
                if "Timeout" not in type(err).__name__:
                    raise
                break
            meta = msg.metadata
            sequence = meta.sequence.stream
            if sequence >= hi:
                break
            seen += 1
            headers = msg.headers or {}
            if _matches(headers, actor, patterns):
                event = Event.from_message(msg.data, sequence, headers)
                if start is not None and datetime.fromisoformat(event.time.replace("Z", "+00:00")) < start:
                    reached_since = True
                else:
                    found.append(public_dict(event))
            if meta.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return found, reached_since, seen


def _since(since: str | None) -> datetime | None:
    if not since:
        return None
    try:
        start = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("since must be an ISO 8601 time such as 2026-11-26T08:00:00Z",
                           details={"field": "since"}) from None
    return start if start.tzinfo is not None else start.replace(tzinfo=timezone.utc)


def _matches(headers: dict[str, str], actor: str | None, patterns: list[str]) -> bool:
    if actor:
        who = headers.get(H_ACTOR, "")
        if who != actor and not who.startswith(f"{actor}:"):
            return False
    return matches(headers.get(H_TYPE, ""), patterns)
