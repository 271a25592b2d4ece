"""Commands one service asks of another over NATS request/reply (``cairn.cmd.<service>.<name>``).

For hot internal paths only: the scheduler creates, starts and finishes a registry run for every
job, and an HTTP request costs both sides its parsing, routing, dependency resolution and
middleware. The handler behind a subject is the same function the service's HTTP route calls, so
validation, decisions and answers are the same. The caller's actor, idempotency key, correlation
id and ``traceparent`` travel as headers; the answer is ``{"result": ...}`` or ``{"error": {...}}``
with the HTTP status the route would have given. Like the agents' subjects, these trust whoever can
publish on the NATS account (a private network; see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import ValidationError

from cairn.kernel.commands import CommandContext
from cairn.kernel.envelope import H_ACTOR, H_CORRELATION, H_TRACEPARENT
from cairn.kernel.errors import CairnError, InvalidInput, Unavailable, nats_unavailable
from cairn.kernel.http import validation_error_body
from cairn.kernel.ids import new_id
from cairn.kernel.telemetry import inject, span_from
from cairn.protocol import COMMAND_SUBJECT_PREFIX

log = logging.getLogger(__name__)

SUBJECT_PREFIX = COMMAND_SUBJECT_PREFIX
H_KEY = "Idempotency-Key"  # as on HTTP requests (events carry the key as Nats-Msg-Id)

ServiceCommand = Callable[[dict[str, Any], CommandContext], Awaitable[Any]]


def command_subject(service: str, name: str) -> str:
    return f"{SUBJECT_PREFIX}.{service}.{name}"


class CommandServer:
    """Answers ``cairn.cmd.<service>.<name>`` requests (queue group: one replica answers each)."""

    def __init__(self, nc: NATS, service: str, commands: dict[str, ServiceCommand], *,
                 caught_up: Callable[[], Awaitable[None]] | None = None) -> None:
        self.nc = nc
        self.service = service
        self.commands = commands
        # awaited before each command: a replica's read model has everything appended before the
        # request arrived (see caught_up_with_log)
        self.caught_up = caught_up
        self._subs: list[Any] = []
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for name in self.commands:
            self._subs.append(await self.nc.subscribe(command_subject(self.service, name), queue=self.service,
                                                      cb=self._on_request))

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may already be closed
                pass
        self._subs.clear()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _on_request(self, msg: Msg) -> None:
        # NATS runs one subscription's callbacks in order: each request gets its own task.
        task = asyncio.create_task(self._answer(msg))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _answer(self, msg: Msg) -> None:
        name = msg.subject.rsplit(".", 1)[1]
        headers = msg.headers or {}
        ctx = CommandContext(actor=headers.get(H_ACTOR, "anonymous"), idempotency_key=headers.get(H_KEY),
                             correlation_id=headers.get(H_CORRELATION) or new_id(),
                             traceparent=headers.get(H_TRACEPARENT))
        with span_from(headers, f"{self.service} command {name}", attributes={"cairn.service": self.service}):
            try:
                payload = orjson.loads(msg.data)
                if not isinstance(payload, dict):
                    raise InvalidInput("a command's body must be a JSON object")
                if self.caught_up is not None:
                    await self.caught_up()
                answer: dict[str, Any] = {"result": await self.commands[name](payload, ctx)}
            except CairnError as err:
                answer = {**err.to_body(), "status": err.status}
            except nats_unavailable() as err:  # the event log for a moment: the caller may retry
                unavailable = Unavailable(f"the event log did not answer ({type(err).__name__}); retry",
                                          details={"retry_after": 1})
                answer = {**unavailable.to_body(), "status": unavailable.status}
            except ValidationError as err:
                answer = {**validation_error_body(err.errors()), "status": 422}
            except orjson.JSONDecodeError:
                answer = {"error": {"code": "invalid_input", "message": "the command's body is not JSON",
                                    "details": {}}, "status": 400}
            except Exception as err:  # noqa: BLE001 - answered, so the caller need not wait for its timeout
                log.exception("command %s.%s failed", self.service, name)
                answer = {"error": {"code": "internal", "message": repr(err), "details": {}}, "status": 500}
        if msg.reply:
            await self.nc.publish(msg.reply, orjson.dumps(answer, default=str))


def caught_up_with_log(runtime: Any) -> Callable[[], Awaitable[None]]:
    """For a service with replicas (a ``ServiceRuntime``): wait until this replica's projection
    has applied the event log up to its end as of now, at most ``min_seq_wait_s`` (then a 503).
    One replica of a queue group answers each command, and the caller may have written through
    another a moment ago (the scheduler creates a job's run, then starts and finishes it): a
    replica behind would answer "run does not exist" (tests/cluster/test_failures.py saw an
    agent's report refused so, after a registry replica restarted)."""

    async def wait() -> None:
        try:
            last = await runtime.log.last_sequence()
        except (NatsError, asyncio.TimeoutError) as err:
            raise Unavailable(f"the event log did not answer ({type(err).__name__}); retry",
                              details={"retry_after": 1}) from None
        await runtime.runner.wait_for(last, timeout=runtime.settings.min_seq_wait_s, check_first=True)

    return wait


def _error_classes() -> dict[str, type[CairnError]]:
    found: dict[str, type[CairnError]] = {}
    pending: list[type[CairnError]] = [CairnError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


class CommandError(CairnError):
    """A service's answer with an error this process has no class for; keeps status and code."""

    def __init__(self, message: str, *, status: int, code: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.status, self.code = status, code


# How long each try waits for an answer, then the last for the rest (capped by ``timeout_s``).
# NATS hands a queue group's requests to a frozen member (SIGSTOP, a paused VM) until it sees the
# connection dead, minutes later: a short first wait asks again, mostly of another replica, instead
# of losing 30 s to it. Asking again is safe: the commands served are reads, carry an idempotency
# key (creating a job's run) or answer a repeat with 409, which their callers take as done
# (starting and finishing a run); a repeat while the first try still runs waits on its key's lock.
TRY_WAITS_S = (2.0, 5.0, 10.0, 30.0)


class CommandClient:
    """Asks another service's ``CommandServer``; its errors come back as the same error classes.

    A service that is not up (no responder) or slow is asked again with backoff, then
    ``Unavailable``: the same retries the HTTP clients make for a restarting service. A try
    waits ``TRY_WAITS_S`` in turn (at most ``timeout_s``).
    """

    def __init__(self, nc: NATS, service: str, *, timeout_s: float = 30.0, attempts: int = 8,
                 waits: tuple[float, ...] = TRY_WAITS_S) -> None:
        self.nc = nc
        self.service = service
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.waits = waits
        self._classes = _error_classes()

    async def call(self, name: str, payload: dict[str, Any], ctx: CommandContext) -> Any:
        headers = {H_ACTOR: ctx.actor, **inject()}
        if ctx.idempotency_key:
            headers[H_KEY] = ctx.idempotency_key
        if ctx.correlation_id:
            headers[H_CORRELATION] = ctx.correlation_id
        data = orjson.dumps(payload)
        delay = 0.1
        for attempt in range(self.attempts):
            try:
                wait = min(self.timeout_s, self.waits[min(attempt, len(self.waits) - 1)])
                reply = await self.nc.request(command_subject(self.service, name), data, timeout=wait,
                                              headers=headers)
            except (NoRespondersError, NatsTimeout):
                if attempt == self.attempts - 1:
                    raise Unavailable(f"the {self.service} service is not answering; retry shortly") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            answer = orjson.loads(reply.data)
            if "error" not in answer:
                return answer["result"]
            raise self._error(answer)
        raise AssertionError("unreachable")

    def _error(self, answer: dict[str, Any]) -> CairnError:
        err, status = answer["error"], int(answer.get("status", 500))
        cls = self._classes.get(err.get("code", ""))
        if cls is not None and cls.status == status:
            return cls(err.get("message", ""), details=err.get("details") or {})
        return CommandError(err.get("message", ""), status=status, code=err.get("code", "error"),
                            details=err.get("details") or {})
