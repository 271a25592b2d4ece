"""Request body limits enforced while the body arrives, chunked bodies included.

A limit that looks only at ``Content-Length`` lets a chunked body of any size through: FastAPI's
body parsing, a route's ``await request.body()`` and the gateway's forwarding all read first and
judge later. :class:`BodyLimit` is a pure ASGI middleware that sits under every route: a declared
``Content-Length`` over the limit is answered 413 before a byte of the body is read, and a body
that streams past the limit stops right there: ``receive`` raises :class:`BodyTooLarge` to
whoever is reading (a route, FastAPI, aiohttp forwarding to a service), and whatever the app
answers after that is replaced by our 413. Memory therefore stays bounded by the limit, not by
what the client sends.

Limits are chosen by path (:class:`BodyLimits`): a default (16 MiB) and rules for the routes that
need more (blob uploads) or less (metric batches).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cairn.kernel.asgi import send_json
from cairn.kernel.errors import PayloadTooLarge

DEFAULT_MAX_BODY = 16 << 20
LARGE_BODY = 1 << 40  # blob uploads: streamed to disk and hashed on the way, never held in memory
MANIFEST_BODY = 256 << 20  # a dataset manifest is JSON parsed in memory: a million or so files

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(PayloadTooLarge):
    """The request body passed its limit while it was being read."""


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


class BodyLimits:
    """The most bytes a request body may have, by path.

    A rule names a path prefix segment by segment, ``*`` standing for any one segment
    (``/projects/*/runs/*/files`` covers every run file upload); the matching rule with the most
    segments wins, and paths no rule matches get ``default``; a rule's limit None means the default
    (to carve a small route out of a large prefix).
    """

    def __init__(self, default: int = DEFAULT_MAX_BODY, rules: Mapping[str, int | None] | None = None) -> None:
        self.default = default
        self.rules = sorted(((_segments(prefix), default if limit is None else limit)
                             for prefix, limit in (rules or {}).items()), key=lambda rule: -len(rule[0]))

    @classmethod
    def from_settings(cls, settings: Any, rules: Mapping[str, int | None] | None = None) -> BodyLimits:
        """A service's own ``rules`` under its settings: ``max_body_bytes`` is the default and
        ``body_limits`` (prefix -> bytes) adds rules or replaces the service's."""
        return cls(settings.max_body_bytes, {**(rules or {}), **settings.body_limits})

    def limit_for(self, path: str) -> int:
        segments = _segments(path)
        for pattern, limit in self.rules:
            if len(pattern) <= len(segments) and all(p in ("*", s) for p, s in zip(pattern, segments)):
                return limit
        return self.default


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _answer_413(send: Send, error: PayloadTooLarge) -> None:
    await send_json(send, error.status, error.to_body())


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over the limit of its path, before or while it is read.

    ``service`` names who refuses in the message, so a client behind the gateway can tell the
    gateway's limit from a service's.
    """

    def __init__(self, app: ASGIApp, limits: BodyLimits, service: str) -> None:
        self.app = app
        self.limits = limits
        self.service = service

    def _too_large(self, scope: Scope, limit: int, size: int | None) -> BodyTooLarge:
        route = f"{scope.get('method', '')} {scope.get('path', '')}"
        said = f"is {size} bytes" if size is not None else f"is over {limit} bytes"
        return BodyTooLarge(f"the request body {said}; {self.service} accepts at most {limit} bytes for "
                            f"{route}: send a smaller body (split it into several requests)",
                            details={"limit": limit})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.limit_for(scope.get("path", ""))
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _answer_413(send, self._too_large(scope, limit, declared))
            return
        received = 0
        refusal: BodyTooLarge | None = None
        started = False  # the app began its answer before the body passed the limit
        answered = False  # our 413 went out in place of the app's answer

        async def counted_receive() -> Message:
            nonlocal received, refusal
            if refusal is not None:
                raise refusal
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refusal = self._too_large(scope, limit, None)
                    raise refusal
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, answered
            if answered:
                return  # the rest of the app's own answer
            if message["type"] == "http.response.start" and not started:
                if refusal is not None:
                    answered = True
                    await _answer_413(send, refusal)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if refusal is None or started:
                raise
            # whatever the reader made of BodyTooLarge (a connection error while forwarding, a
            # parse error), the client is told the body was too large
        if refusal is not None and not started and not answered:
            await _answer_413(send, refusal)
