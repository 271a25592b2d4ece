"""Server-sent events: the event log, filtered by project and type, resumable by sequence."""

from __future__ import annotations

import asyncio
import fnmatch
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.js import api as js_api

from cairn.kernel.envelope import H_TYPE, SUBJECT_PREFIX, Event
from cairn.kernel.eventlog import EventLog

HEARTBEAT_S = 15.0

# Fields that stay in the log (the gateway's projection is rebuilt from it) but never leave the
# gateway: what an event stream, an audit page or a webhook delivery shows has them removed.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook.created": ("secret",),  # the webhook's signing secret, shown once to its creator
    "token.created": ("secret_hash",),  # the hash the gateway checks tokens against
    "event_subscriber.issued": ("password_hash",),  # the bcrypt hash NATS checks a subscriber against
}


def public_dict(event: Event) -> dict[str, Any]:
    """The event as it is shown outside the gateway (see :data:`SECRET_FIELDS`)."""
    body = event.to_dict()
    hidden = SECRET_FIELDS.get(event.type)
    if hidden:
        body["data"] = {k: v for k, v in body["data"].items() if k not in hidden}
    return body


def type_matcher(types: str | None) -> list[str]:
    return [t.strip() for t in (types or "").split(",") if t.strip()]


def matches(event_type: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


async def event_stream(event_log: EventLog, *, project: str | None, types: str | None,
                       after: int | None,
                       visible: Callable[[str], bool] | None = None) -> AsyncIterator[bytes]:
    """Yield SSE frames (``id: <sequence>``) for events after ``after`` (new ones only if None)."""
    patterns = type_matcher(types)
    subject = f"{SUBJECT_PREFIX}.{project}.>" if project else f"{SUBJECT_PREFIX}.>"
    if after is None:
        config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.NEW)
    else:
        config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
                                       opt_start_seq=after + 1)
    sub = await event_log.js.subscribe(subject, ordered_consumer=True, config=config,
                                       stream=event_log.stream)
    try:
        yield b": connected\n\n"
        while True:
            try:
                msg = await sub.next_msg(timeout=HEARTBEAT_S)
            except (asyncio.TimeoutError, Exception) as err:  # nats raises its own TimeoutError
                if "Timeout" not in type(err).__name__:
                    raise
                yield b": keep-alive\n\n"
                continue
            if not matches((msg.headers or {}).get(H_TYPE, ""), patterns):
                continue
            event = Event.from_message(msg.data, msg.metadata.sequence.stream, msg.headers)
            if visible is not None and not visible(event.project):
                continue
            body = json.dumps(public_dict(event), separators=(",", ":"))
            yield f"id: {event.sequence}\nevent: {event.type}\ndata: {body}\n\n".encode()
    finally:
        await sub.unsubscribe()
