"""The gateway's forward when a service closes a pooled connection just as a request is sent on it.

Why: that race (a service's idle timeout or restart meeting a reused connection) turned into a
503 for a request the service never saw. The upstream here is a real HTTP/1.1 server on loopback
that answers the first request on each connection with keep-alive and closes the connection
unanswered when a second request arrives on it: the gateway's pool then reuses a connection the
service has just closed, every time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from starlette.requests import Request

from cairn.kernel.errors import Unavailable
from cairn.kernel.identity import Caller, Signer
from cairn.services.gateway.proxy import ServiceProxy

CALLER = Caller(user="ada", token_id="t1", kind="user", site_admin=True)


class ClosingService:
    """Answers one request per connection, then closes the connection when the next one arrives."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()  # "METHOD path" -> requests received (answered or not)
        self.dropped: Counter[str] = Counter()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.connection, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                               if line.lower().startswith("content-length:")), 0)
                body = await reader.readexactly(length)
                self.seen[f"{method} {path}"] += 1
                if answered:  # the idle timeout fired as this request came in: close, unanswered
                    self.dropped[f"{method} {path}"] += 1
                    return
                answer = b'{"ok": true, "got": %d}' % len(body)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(answer), answer))
                await writer.drain()
                answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def make_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Request:
    """A request as the gateway's app receives it (its body arriving through ASGI ``receive``)."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if method not in ("GET", "HEAD"):
        raw.append((b"content-length", str(len(body)).encode()))
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": raw, "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8080),
             "client": ("127.0.0.1", 5000), "root_path": ""}
    return Request(scope, receive)


@pytest.fixture
async def service_and_proxy() -> AsyncIterator[tuple[ClosingService, ServiceProxy]]:
    service = ClosingService()
    url = await service.start()
    proxy = ServiceProxy({"svc": url}, Signer(b"k" * 32, "gateway"))
    yield service, proxy
    await proxy.close()
    await service.stop()


async def forward(proxy: ServiceProxy, method: str, path: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    response = await proxy.forward("svc", path, make_request(method, f"/api/v1/svc/{path}", body, headers),
                                   caller=CALLER, request_id="r1")
    return response.status_code, bytes(response.body)


async def test_get_on_a_connection_the_service_closed_is_retried_and_succeeds(service_and_proxy) -> None:
    service, proxy = service_and_proxy
    assert await forward(proxy, "GET", "runs/a") == (200, b'{"ok": true, "got": 0}')  # pools the connection
    for _ in range(3):  # each reuses the connection answered last, which the service then drops
        assert await forward(proxy, "GET", "runs/a") == (200, b'{"ok": true, "got": 0}')
    assert service.dropped["GET /runs/a"] == 3
    assert service.seen["GET /runs/a"] == 7  # 4 answered + 3 dropped: each retried exactly once


async def test_put_without_a_key_is_retried_with_its_whole_body(service_and_proxy) -> None:
    service, proxy = service_and_proxy
    assert (await forward(proxy, "GET", "warm"))[0] == 200
    status, body = await forward(proxy, "PUT", "runs/a/tags/k", b'{"value": "v"}',
                                 {"content-type": "application/json"})
    assert (status, body) == (200, b'{"ok": true, "got": 14}')
    assert service.seen["PUT /runs/a/tags/k"] == 2 and service.dropped["PUT /runs/a/tags/k"] == 1


async def test_post_without_idempotency_key_is_not_retried(service_and_proxy) -> None:
    service, proxy = service_and_proxy
    assert (await forward(proxy, "GET", "warm"))[0] == 200
    with pytest.raises(Unavailable, match="'svc' is not reachable"):
        await forward(proxy, "POST", "runs", b'{"name": "x"}', {"content-type": "application/json"})
    assert service.seen["POST /runs"] == 1  # sent once, never again: it could have been applied
    assert proxy.retried == 0


async def test_streamed_post_with_a_key_is_not_retried(service_and_proxy) -> None:
    service, proxy = service_and_proxy
    assert (await forward(proxy, "GET", "warm"))[0] == 200
    big = b"x" * ((1 << 20) + 1)  # over SMALL_BODY: streamed through, so it cannot be sent again
    with pytest.raises(Unavailable):
        await forward(proxy, "POST", "blobs", big, {"Idempotency-Key": "k2"})
    assert service.seen["POST /blobs"] == 1 and proxy.retried == 0


async def test_post_with_idempotency_key_is_retried_once(service_and_proxy) -> None:
    service, proxy = service_and_proxy
    assert (await forward(proxy, "GET", "warm"))[0] == 200
    status, body = await forward(proxy, "POST", "runs", b'{"name": "x"}',
                                 {"content-type": "application/json", "Idempotency-Key": "k1"})
    assert (status, body) == (200, b'{"ok": true, "got": 13}')  # the body went whole the second time
    assert service.seen["POST /runs"] == 2 and service.dropped["POST /runs"] == 1
    assert proxy.retried == 1


async def test_a_service_that_drops_the_retry_too_is_a_503_after_one_retry(service_and_proxy) -> None:
    service, proxy = service_and_proxy

    async def drop_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        service.seen["dropped at once"] += 1
        writer.close()

    assert service.server is not None
    service.server.close()
    await service.server.wait_closed()
    port = int(proxy.services["svc"].rsplit(":", 1)[1])
    service.server = await asyncio.start_server(drop_all, "127.0.0.1", port)
    with pytest.raises(Unavailable, match="ServerDisconnectedError"):
        await forward(proxy, "GET", "runs/a")
    assert service.seen["dropped at once"] == 2  # the request and its one retry, no more
