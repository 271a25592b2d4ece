"""The gateway's proxy over a service's replicas (services/gateway/replicas.py): round robin, a
refused replica skipped, and a request that got no answer sent once to another replica only when
sending it twice cannot apply it twice (GET/HEAD, or an Idempotency-Key).

Why: a replica that dies must not turn into failed requests while another one is up, and a POST
that a dying replica may already have applied must not be applied a second time. The upstreams
are real HTTP/1.1 servers on loopback ports (one answers, one closes every connection unanswered,
and a port with nothing listening).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_gateway_forward_retry import CALLER, make_request  # noqa: E402

from cairn.kernel.errors import Unavailable  # noqa: E402
from cairn.kernel.identity import Signer  # noqa: E402
from cairn.services.gateway.proxy import ServiceProxy  # noqa: E402
from cairn.services.gateway.sequences import CallerSequences  # noqa: E402


class Upstream:
    """Answers every request with its name (``answer``), or closes the connection unanswered."""

    def __init__(self, name: str, *, answer: bool = True) -> None:
        self.name = name
        self.answer = answer
        self.seen: Counter[str] = Counter()
        self.server: asyncio.base_events.Server | None = None
        self.url = ""

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.connection, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self.url

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                               if line.lower().startswith("content-length:")), 0)
                await reader.readexactly(length)
                self.seen[" ".join(lines[0].split(" ")[:2])] += 1
                if not self.answer:
                    return
                body = self.name.encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def refused_url() -> str:
    """A loopback port with nothing listening (bound then closed: refused until someone takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, Upstream]]:
    started = {"a": Upstream("a"), "b": Upstream("b"), "dropper": Upstream("dropper", answer=False)}
    for upstream in started.values():
        await upstream.start()
    yield started
    for upstream in started.values():
        await upstream.stop()


async def send(proxy: ServiceProxy, method: str, headers: dict[str, str] | None = None) -> bytes:
    body = b"{}" if method != "GET" else b""
    response = await proxy.forward("svc", "runs", make_request(method, "/api/v1/svc/runs", body, headers),
                                   caller=CALLER, request_id="r1")
    assert response.status_code == 200
    return bytes(response.body)


def proxy_over(*urls: str) -> ServiceProxy:
    return ServiceProxy({"svc": list(urls)}, Signer(b"k" * 32, "gateway"))


async def test_requests_go_round_robin_over_the_replicas(upstreams: dict[str, Upstream]) -> None:
    proxy = proxy_over(upstreams["a"].url, upstreams["b"].url)
    try:
        assert [await send(proxy, "GET") for _ in range(4)] == [b"a", b"b", b"a", b"b"]
    finally:
        await proxy.close()


async def test_a_refused_replica_is_skipped_for_any_request(upstreams: dict[str, Upstream]) -> None:
    proxy = proxy_over(refused_url(), upstreams["a"].url)
    try:
        # a POST without a key too: a refused connection carried nothing, so nothing was applied
        assert await send(proxy, "POST") == b"a"
        assert [await send(proxy, "GET") for _ in range(3)] == [b"a"] * 3  # the refused one is tried last
        assert upstreams["a"].seen["POST /runs"] == 1
    finally:
        await proxy.close()


async def test_an_unanswered_idempotent_request_goes_once_to_another_replica(upstreams: dict[str, Upstream]) -> None:
    dropper = upstreams["dropper"]
    proxy = proxy_over(dropper.url, upstreams["b"].url)
    try:
        assert await send(proxy, "GET") == b"b"
        assert await send(proxy, "GET") == b"b"  # b's turn: no retry needed
        assert await send(proxy, "POST", {"Idempotency-Key": "k1"}) == b"b"
        assert upstreams["b"].seen["POST /runs"] == 1 and dropper.seen["POST /runs"] == 1
    finally:
        await proxy.close()


async def test_an_unanswered_post_without_a_key_is_not_sent_again(upstreams: dict[str, Upstream]) -> None:
    dropper = upstreams["dropper"]
    proxy = proxy_over(dropper.url, upstreams["b"].url)
    try:
        with pytest.raises(Unavailable, match="not reachable"):
            await send(proxy, "POST")  # the dropper may have applied it: only the client may decide
        assert dropper.seen["POST /runs"] == 1 and upstreams["b"].seen["POST /runs"] == 0
        assert proxy.retried == 0
    finally:
        await proxy.close()


def test_the_gateway_remembers_each_tokens_last_write_within_a_bound() -> None:
    sequences = CallerSequences(limit=2)
    ada, bob, cy = (CALLER.__class__(name, f"t-{name}", "user", False) for name in ("ada", "bob", "cy"))
    sequences.saw(ada, "7")
    sequences.saw(ada, "5")  # an older answer arriving late lowers nothing
    assert sequences.floor(ada, None) == 7
    assert sequences.floor(ada, "9") == 9  # the client's own, when it is further
    assert sequences.floor(bob, "x") == 0  # no sequence: the service answers that header with a 400
    sequences.saw(bob, 3)
    sequences.saw(cy, 4)  # over the bound: the least recently seen token (ada) is forgotten
    assert (sequences.floor(ada, None), sequences.floor(bob, None), sequences.floor(cy, None)) == (0, 3, 4)
