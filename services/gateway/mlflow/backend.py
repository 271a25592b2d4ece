"""Calls from the MLflow layer to Cairn's services over their internal HTTP APIs, as the caller
(actor, request id and trace context forwarded the way the gateway's proxy does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from yarl import URL

from cairn.kernel.errors import Unavailable
from cairn.kernel.telemetry import inject
from cairn.services.gateway.auth import Principal
from cairn.services.gateway.mlflow.errors import ServiceError
from cairn.services.gateway.proxy import ServiceProxy


class Services:
    """One caller's view of the registry, metrics and artifacts services."""

    def __init__(self, proxy: ServiceProxy, principal: Principal, request_id: str) -> None:
        self.proxy = proxy
        self.principal = principal
        self.request_id = request_id

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**self.proxy.identity(self.principal), "X-Request-Id": self.request_id,
                **inject(), **(extra or {})}

    async def call(self, service: str, method: str, path: str, *, body: Any = None,
                   params: Any = None, data: Any = None, headers: dict[str, str] | None = None) -> Any:
        """JSON in, JSON out; a Cairn error body becomes a :class:`ServiceError`. ``path`` is sent
        as it is (``encoded=True``: no re-quoting, no collapsing of ``..``); its identifiers were
        checked and escaped by the caller (:mod:`identifiers`)."""
        url = URL(f"{self.proxy.url_of(service)}{path}", encoded=True)
        try:
            async with self.proxy.session.request(
                    method, url, json=body, params=params, data=data,
                    headers=self.headers(headers)) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientConnectionError, TimeoutError) as err:
            raise Unavailable(f"service {service!r} is not reachable ({type(err).__name__}); retry shortly") from None
        if status >= 400:
            raise _service_error(status, raw)
        if status == 204 or not raw:
            return None
        return orjson.loads(raw)

    async def stream(self, service: str, path: str) -> tuple[aiohttp.ClientResponse, AsyncIterator[bytes]]:
        """GET a body as a stream (the caller releases the response)."""
        url = URL(f"{self.proxy.url_of(service)}{path}", encoded=True)
        try:
            resp = await self.proxy.session.get(url, headers=self.headers())
        except (aiohttp.ClientConnectionError, TimeoutError) as err:
            raise Unavailable(f"service {service!r} is not reachable ({type(err).__name__}); retry shortly") from None
        if resp.status >= 400:
            raw = await resp.read()
            resp.release()
            raise _service_error(resp.status, raw)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.content.iter_chunked(1 << 16):
                    yield chunk
            finally:
                resp.release()

        return resp, chunks()


def _service_error(status: int, raw: bytes) -> ServiceError:
    try:
        err = orjson.loads(raw)["error"]
        return ServiceError(status, str(err.get("code", "internal")), str(err.get("message", "")))
    except (ValueError, KeyError, TypeError):
        if status == 422:
            return ServiceError(status, "invalid_input", raw.decode("utf-8", "replace")[:500])
        return ServiceError(status, "internal", raw.decode("utf-8", "replace")[:500])
