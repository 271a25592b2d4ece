"""Forwarding requests to services over loopback, streaming both ways."""

from __future__ import annotations

import httpx
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from cairn.kernel.errors import NotFound, Unavailable
from cairn.kernel.http import ACTOR_HEADER

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "host"}


class ServiceProxy:
    """Routes ``/api/v1/<service>/<path>`` to ``<service url>/<path>``."""

    def __init__(self, services: dict[str, str], timeout: float = 60.0) -> None:
        self.services = services
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        )

    async def close(self) -> None:
        await self.client.aclose()

    def url_of(self, service: str) -> str:
        base = self.services.get(service)
        if base is None:
            known = ", ".join(sorted(self.services)) or "none"
            raise NotFound(f"no service named {service!r}; services: {known}")
        return base

    async def forward(self, service: str, path: str, request: Request, *, actor: str,
                      request_id: str) -> StreamingResponse:
        url = f"{self.url_of(service)}/{path}"
        headers = [(k, v) for k, v in request.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() != ACTOR_HEADER.lower()]
        headers += [(ACTOR_HEADER, actor), ("X-Request-Id", request_id)]
        upstream = self.client.build_request(
            request.method, url, params=request.query_params, headers=headers,
            content=request.stream() if request.method not in ("GET", "HEAD", "DELETE") else None,
        )
        try:
            response = await self.client.send(upstream, stream=True)
        except httpx.TransportError as err:
            raise Unavailable(f"service {service!r} is not reachable ({type(err).__name__}); "
                              "it may be restarting, retry shortly") from None
        out_headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                                 headers=out_headers, background=BackgroundTask(response.aclose))
