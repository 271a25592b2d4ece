"""Read-your-writes across the replicas of a service.

Each replica of a service keeps a read model of its own, fed by its own durable consumer, so a
replica may not yet show what another replica just wrote. A write's answer therefore names the
event-log sequence of the last event it appended (``Cairn-Seq``), and a request that names a
sequence (``Cairn-Min-Seq``) is held until this replica's projection has applied it: bounded, then a
503 with ``Retry-After`` (the write is in the log; the replica is behind, not wrong).

The sequence is collected where events are appended (:func:`note_appended`, called by the event
log), in a per-request holder that the middleware puts in a context variable: no route has to
remember to set the header, and a request that appended nothing answers without one.
"""

from __future__ import annotations

import contextvars
import json
import logging
from dataclasses import dataclass
from typing import Any

from cairn.kernel.errors import InvalidInput, Unavailable
from cairn.protocol import H_CAIRN_MIN_SEQ, H_CAIRN_SEQ

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1
_MIN_SEQ_HEADER = H_CAIRN_MIN_SEQ.lower().encode("latin-1")
_SEQ_HEADER = H_CAIRN_SEQ.lower().encode("latin-1")
_MAX_DIGITS = 20


@dataclass
class _Written:
    """The highest event-log sequence the current request appended (or found already appended)."""

    sequence: int = 0


_written: contextvars.ContextVar[_Written | None] = contextvars.ContextVar("cairn_written", default=None)


def note_appended(sequence: int) -> None:
    """Record that the current request's write is at ``sequence`` of the events-of-record stream
    (a no-op outside a request: NATS command handlers, background loops)."""
    written = _written.get()
    if written is not None and sequence > written.sequence:
        written.sequence = sequence


def min_sequence(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The ``Cairn-Min-Seq`` a request names (None: none); ValueError for one that is no sequence."""
    for name, value in headers:
        if name.lower() == _MIN_SEQ_HEADER:
            text = value.decode("latin-1").strip()
            if not text.isdigit() or len(text) > _MAX_DIGITS:
                raise ValueError(f"{H_CAIRN_MIN_SEQ} must be an event-log sequence (digits), not {text[:40]!r}")
            return int(text)
    return None


class ReadYourWrites:
    """ASGI middleware of every service: waits for ``Cairn-Min-Seq`` (when ``wait``), and adds
    ``Cairn-Seq`` to the answer of a request that appended events. The gateway sets ``wait`` off:
    it passes the header on to the service that answers, whose read model is the one that counts.
    The wait is bounded by the service's ``min_seq_wait_s`` (CAIRN_MIN_SEQ_WAIT_S, 5 s)."""

    def __init__(self, app: Any, *, wait: bool = True) -> None:
        self.app = app
        self.wait = wait

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.wait:
            try:
                wanted = min_sequence(scope.get("headers", []))
            except ValueError as err:
                await _answer(send, 400, InvalidInput(str(err)).to_body())
                return
            if wanted:
                try:
                    await self._caught_up(scope, wanted)
                except Unavailable as err:
                    await _answer(send, 503, err.to_body(), [(b"retry-after", str(RETRY_AFTER_S).encode())])
                    return
        written = _Written()
        token = _written.set(written)

        async def send_with_sequence(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and written.sequence:
                headers = [h for h in message.get("headers", []) if h[0].lower() != _SEQ_HEADER]
                message = {**message, "headers": [*headers, (_SEQ_HEADER, str(written.sequence).encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_sequence)
        finally:
            _written.reset(token)

    async def _caught_up(self, scope: dict[str, Any], wanted: int) -> None:
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is None:  # not started yet: nothing to read from either
            raise Unavailable("the service is starting; retry shortly")
        timeout_s = runtime.settings.min_seq_wait_s
        try:
            await runtime.runner.wait_for(wanted, timeout=timeout_s, check_first=True)
        except Unavailable:
            raise Unavailable(
                f"this {runtime.name} replica has applied the event log up to {runtime.runner.applied}, "
                f"not yet up to {wanted} ({H_CAIRN_MIN_SEQ}) after {timeout_s:g}s; the write is "
                "in the log and this replica will show it shortly: retry",
                details={"applied_seq": runtime.runner.applied, "min_seq": wanted,
                         "retry_after": RETRY_AFTER_S}) from None


async def _answer(send: Any, status: int, body: dict[str, Any],
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})
