"""Service commands over NATS request/reply: answers, the caller's context, and errors that come
back as the error classes the HTTP routes would have mapped to statuses (a real nats-server)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest
from pydantic import BaseModel, ConfigDict

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import CairnError, Conflict, InvalidInput, NotFound, Unavailable
from cairn.kernel.service_commands import CommandClient, CommandError, CommandServer


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


async def _with_server(nats_url: str, check: Any) -> None:
    nc = await nats.connect(nats_url, max_reconnect_attempts=1)
    seen: list[CommandContext] = []

    async def echo(payload: dict[str, Any], ctx: CommandContext) -> Any:
        seen.append(ctx)
        return {"name": Body.model_validate(payload["body"]).name, "actor": ctx.actor}

    async def missing(payload: dict[str, Any], ctx: CommandContext) -> Any:
        raise NotFound(f"run {payload['run_id']!r} does not exist")

    async def ended(payload: dict[str, Any], ctx: CommandContext) -> Any:
        raise Conflict("the run already ended")

    async def teapot(payload: dict[str, Any], ctx: CommandContext) -> Any:
        raise CommandError("short and stout", status=418, code="teapot")

    async def broken(payload: dict[str, Any], ctx: CommandContext) -> Any:
        raise RuntimeError("boom")

    server = CommandServer(nc, "demo", {"echo": echo, "missing": missing, "ended": ended, "broken": broken,
                                        "teapot": teapot})
    await server.start()
    try:
        await check(CommandClient(nc, "demo", attempts=2), seen)
    finally:
        await server.stop()
        await nc.close()


def test_a_command_answers_with_the_handlers_result_and_sees_the_callers_context(nats_url: str) -> None:
    async def check(client: CommandClient, seen: list[CommandContext]) -> None:
        ctx = CommandContext(actor="user:ada", idempotency_key="k-1", correlation_id="req-7")
        assert await client.call("echo", {"body": {"name": "lr-sweep"}}, ctx) == {"name": "lr-sweep",
                                                                                "actor": "user:ada"}
        assert (seen[0].actor, seen[0].idempotency_key, seen[0].correlation_id) == ("user:ada", "k-1", "req-7")

    asyncio.run(_with_server(nats_url, check))


def test_errors_come_back_as_the_same_error_classes(nats_url: str) -> None:
    async def check(client: CommandClient, _: list[CommandContext]) -> None:
        ctx = CommandContext(actor="a")
        with pytest.raises(NotFound, match="run 'r1' does not exist"):
            await client.call("missing", {"run_id": "r1"}, ctx)
        with pytest.raises(Conflict) as conflict:
            await client.call("ended", {}, ctx)
        assert conflict.value.status == 409
        with pytest.raises(InvalidInput, match="name") as invalid:  # pydantic's complaint, as a 422
            await client.call("echo", {"body": {"nme": "x"}}, ctx)
        assert invalid.value.status == 422
        with pytest.raises(CairnError, match="boom") as internal:  # answered, not left to time out
            await client.call("broken", {}, ctx)
        assert (internal.value.status, internal.value.code) == (500, "internal")
        with pytest.raises(CommandError) as unknown:  # a code this process has no class for
            await client.call("teapot", {}, ctx)
        assert (unknown.value.status, unknown.value.code) == (418, "teapot")

    asyncio.run(_with_server(nats_url, check))


def test_a_service_that_is_not_up_is_unavailable_after_the_retries(nats_url: str) -> None:
    async def check() -> None:
        nc = await nats.connect(nats_url, max_reconnect_attempts=1)
        try:
            with pytest.raises(Unavailable, match="the nobody service is not answering"):
                await CommandClient(nc, "nobody", attempts=2).call("echo", {}, CommandContext(actor="a"))
        finally:
            await nc.close()

    asyncio.run(check())


def test_a_frozen_replica_costs_a_caller_one_short_wait_not_the_whole_timeout(nats_url: str) -> None:
    """A member of the queue group that takes requests and never answers (a paused process) and a
    healthy one: every call is answered, by asking again after the first try's short wait; the
    frozen member did get some of the requests (NATS picks a member at random)."""
    async def check() -> None:
        nc = await nats.connect(nats_url, max_reconnect_attempts=1)
        frozen: list[str] = []

        async def swallow(msg: Any) -> None:
            frozen.append(msg.subject)  # taken, never answered

        async def echo(payload: dict[str, Any], ctx: CommandContext) -> Any:
            return payload["n"]

        sub = await nc.subscribe("cairn.cmd.paused.echo", queue="paused", cb=swallow)
        server = CommandServer(nc, "paused", {"echo": echo})
        await server.start()
        try:
            client = CommandClient(nc, "paused", timeout_s=600, attempts=30, waits=(0.2, 0.5, 1.0))
            answers = await asyncio.wait_for(
                asyncio.gather(*(client.call("echo", {"n": n}, CommandContext(actor="a")) for n in range(20))),
                timeout=120)  # with a single wait of timeout_s, a call asked of the frozen member waits 600 s
            assert answers == list(range(20))
            assert frozen, "the frozen member was never asked (1 in a million)"
        finally:
            await server.stop()
            await sub.unsubscribe()
            await nc.close()

    asyncio.run(check())
