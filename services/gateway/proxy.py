"""Forwarding requests to services over loopback, streaming both ways.

aiohttp's client is used here because httpx's connection pool costs several milliseconds of CPU
per request once dozens of connections are open, which made the gateway the bottleneck.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import aiohttp
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from yarl import URL

from cairn.kernel.errors import NotFound, Unavailable
from cairn.kernel.identity import IDENTITY_HEADER, Caller, Signer
from cairn.kernel.telemetry import inject
from cairn.protocol import H_CAIRN_MIN_METRICS_SEQ, H_CAIRN_MIN_SEQ
from cairn.services.gateway.paths import encode_path
from cairn.services.gateway.replicas import Replicas, service_urls

SMALL_BODY = 1 << 20
SMALL_ANSWER = 1 << 16
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "host"}
# A request sent on a pooled connection that the service closed unanswered (its idle timeout or a
# restart racing the reuse) is sent once more. aiohttp does that itself for these methods
# (RFC 9112 9.3.1.1; never for a body already streamed); forward adds requests of other methods
# that carry an Idempotency-Key, which the services apply once (DESIGN.md "Idempotency").
RETRIED_BY_AIOHTTP = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# never passed on from a client: the services believe only the identity the gateway signs
NOT_FORWARDED = HOP_BY_HOP | {IDENTITY_HEADER.lower(), "authorization", "cookie", "traceparent"}


class ServiceProxy:
    """Routes ``/api/v1/<service>/<path>`` to ``<service url>/<path>``; a service with several
    replicas (a list of URLs) gets its requests round robin (services/gateway/replicas.py)."""

    def __init__(self, services: Mapping[str, str | Sequence[str]], signer: Signer, timeout: float = 60.0) -> None:
        self.services = services
        self.replicas = {name: Replicas(urls) for name, urls in service_urls(services).items()}
        self.signer = signer
        self.timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.retried = 0  # requests sent once more here, keyed or to another replica (aiohttp's own retries are not counted)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=512, limit_per_host=256, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout,
                                                  auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def replicas_of(self, service: str) -> Replicas:
        replicas = self.replicas.get(service)
        if replicas is None:
            known = ", ".join(sorted(self.replicas)) or "none"
            raise NotFound(f"no service named {service!r}; services: {known}")
        return replicas

    def url_of(self, service: str) -> str:
        """The base URL of the replica that the next call to ``service`` goes to."""
        return self.replicas_of(service).first()

    @staticmethod
    def _unreachable(service: str, err: Exception) -> Unavailable:
        return Unavailable(f"service {service!r} is not reachable ({type(err).__name__}); "
                           "it may be restarting, retry shortly")

    def identity(self, caller: Caller) -> dict[str, str]:
        """The header that tells a service who calls, signed by the gateway."""
        return {IDENTITY_HEADER: self.signer.sign(caller)}

    async def forward(self, service: str, path: str, request: Request, *, caller: Caller,
                      request_id: str, min_seq: int = 0, min_metrics_seq: int = 0) -> Response:
        """``min_seq``, ``min_metrics_seq``: the ``Cairn-Min-Seq`` and ``Cairn-Min-Metrics-Seq`` to
        send (0: the client's own, if any)."""
        replicas = self.replicas_of(service)
        bases = replicas.order()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED]
        for name, floor in ((H_CAIRN_MIN_SEQ, min_seq), (H_CAIRN_MIN_METRICS_SEQ, min_metrics_seq)):
            if floor:
                headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
                headers.append((name, str(floor)))
        headers += [*self.identity(caller).items(), ("X-Request-Id", request_id), *inject().items()]
        data: bytes | AsyncIterator[bytes] | None = None
        if request.method not in ("GET", "HEAD"):
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) <= SMALL_BODY:
                data = await request.body()  # small bodies go whole: no chunked encoding
            else:
                data = request.stream()
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        params = list(request.query_params.multi_items())
        keyed = "idempotency-key" in request.headers and isinstance(data, bytes)  # a streamed body is gone once sent
        replay = request.method not in RETRIED_BY_AIOHTTP and keyed
        # with replicas, a GET that aiohttp already sent twice to one replica goes once to another
        replay_elsewhere = len(bases) > 1 and (request.method in ("GET", "HEAD") or keyed)
        path_part = encode_path(path)  # exactly the checked path
        replayed = False
        while True:
            base = bases[0]
            try:
                response = await self.session.request(
                    request.method, URL(f"{base}/{path_part}", encoded=True), params=params, headers=headers,
                    data=data, allow_redirects=False)
                break
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
                # no connection (refused, or a machine that does not answer within the connect
                # timeout), so nothing was sent: any request may go to the next replica
                replicas.refused(base)
                if len(bases) > 1 and not isinstance(data, AsyncIterator):
                    bases = bases[1:]
                    continue
                raise self._unreachable(service, err) from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as err:
                # the service closed the connection as we sent on it: unanswered, so an
                # idempotent request goes once more, on another connection (another replica if any)
                if not replayed and (replay or replay_elsewhere):
                    replayed = True
                    self.retried += 1
                    bases = bases[1:] or bases
                    continue
                raise self._unreachable(service, err) from None
            except (aiohttp.ClientConnectionError, TimeoutError) as err:
                raise self._unreachable(service, err) from None
        out_headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        if response.content_length is not None and response.content_length <= SMALL_ANSWER:
            try:  # most answers: read whole, without streaming's per-chunk machinery
                body = await response.read()
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as err:
                raise Unavailable(f"service {service!r} stopped while answering ({type(err).__name__}); "
                                  "it may be restarting, retry shortly") from None
            finally:
                response.release()
            return Response(body, status_code=response.status, headers=out_headers)

        async def chunks() -> AsyncIterator[bytes]:
            # whatever has arrived, in one piece: fixed 64 KiB chunks cost an await, a Starlette
            # send and a socket write each (~16 per MiB of a blob download)
            async for chunk in response.content.iter_any():
                yield chunk

        async def release() -> None:  # async: a plain function would cost a thread-pool hop
            response.release()

        return StreamingResponse(chunks(), status_code=response.status, headers=out_headers,
                                 background=BackgroundTask(release))
