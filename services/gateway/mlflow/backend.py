"""Calls from the MLflow layer to Cairn's services over their internal HTTP APIs, as the caller
(actor, request id and trace context forwarded the way the gateway's proxy does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from fastapi import Request
from yarl import URL

from cairn.kernel.consistency import note_appended
from cairn.kernel.errors import Unavailable
from cairn.kernel.telemetry import inject
from cairn.protocol import (
    H_CAIRN_METRICS_SEQ,
    H_CAIRN_MIN_METRICS_SEQ,
    H_CAIRN_MIN_SEQ,
    H_CAIRN_SEQ,
)
from cairn.services.gateway.auth import Principal
from cairn.services.gateway.mlflow.errors import ServiceError
from cairn.services.gateway.proxy import ServiceProxy
from cairn.services.gateway.sequences import CallerSequences, named_sequence


class Services:
    """One caller's view of the registry, metrics and artifacts services.

    Read-your-writes across service replicas: every call names the highest event-log sequence this
    request has seen (``Cairn-Min-Seq``: the client's own, then each answer's ``Cairn-Seq``), so a
    read after a write in one MLflow call sees the write whichever replica answers; the sequences
    are noted for the gateway's answer too (cairn.kernel.consistency). The same for metric points
    with the metrics stream's sequences (``Cairn-Min-Metrics-Seq``, on calls to metrics)."""

    def __init__(self, proxy: ServiceProxy, principal: Principal, request_id: str, *, min_seq: int = 0,
                 sequences: CallerSequences | None = None, min_metrics_seq: int = 0,
                 metrics_sequences: CallerSequences | None = None) -> None:
        self.proxy = proxy
        self.principal = principal
        self.request_id = request_id
        self.min_seq = min_seq
        self.sequences = sequences
        self.min_metrics_seq = min_metrics_seq
        self.metrics_sequences = metrics_sequences

    @classmethod
    def for_request(cls, request: Request, principal: Principal) -> "Services":
        """The services as ``request``'s caller, from the sequence the client named or the last
        one the gateway answered this token with (services/gateway/sequences.py)."""
        sequences: CallerSequences | None = getattr(request.app.state, "sequences", None)
        named = request.headers.get(H_CAIRN_MIN_SEQ)
        min_seq = sequences.floor(principal, named) if sequences else named_sequence(named)
        points: CallerSequences | None = getattr(request.app.state, "metrics_sequences", None)
        named_points = request.headers.get(H_CAIRN_MIN_METRICS_SEQ)
        min_points = points.floor(principal, named_points) if points else named_sequence(named_points)
        return cls(request.app.state.proxy, principal, request.state.request_id, min_seq=min_seq,
                   sequences=sequences, min_metrics_seq=min_points, metrics_sequences=points)

    def headers(self, extra: dict[str, str] | None = None, service: str = "") -> dict[str, str]:
        seq = {H_CAIRN_MIN_SEQ: str(self.min_seq)} if self.min_seq else {}
        if service == "metrics" and self.min_metrics_seq:
            seq[H_CAIRN_MIN_METRICS_SEQ] = str(self.min_metrics_seq)
        return {**self.proxy.identity(self.principal), "X-Request-Id": self.request_id,
                **inject(), **seq, **(extra or {})}

    def _saw(self, resp: aiohttp.ClientResponse) -> None:
        written = resp.headers.get(H_CAIRN_SEQ, "")
        if written.isdigit():
            self.min_seq = max(self.min_seq, int(written))
            note_appended(int(written))
            if self.sequences is not None:
                self.sequences.saw(self.principal, written)
        points = resp.headers.get(H_CAIRN_METRICS_SEQ, "")
        if points.isdigit():
            self.min_metrics_seq = max(self.min_metrics_seq, int(points))
            if self.metrics_sequences is not None:
                self.metrics_sequences.saw(self.principal, points)

    async def call(self, service: str, method: str, path: str, *, body: Any = None,
                   params: Any = None, data: Any = None, headers: dict[str, str] | None = None) -> Any:
        """JSON in, JSON out; a Cairn error body becomes a :class:`ServiceError`. ``path`` is sent
        as it is (``encoded=True``: no re-quoting, no collapsing of ``..``); its identifiers were
        checked and escaped by the caller (:mod:`identifiers`)."""
        url = URL(f"{self.proxy.url_of(service)}{path}", encoded=True)
        try:
            async with self.proxy.session.request(
                    method, url, json=body, params=params, data=data,
                    headers=self.headers(headers, service)) as resp:
                raw = await resp.read()
                status = resp.status
                self._saw(resp)
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
            resp = await self.proxy.session.get(url, headers=self.headers(service=service))
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
