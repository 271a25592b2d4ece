"""``httpx.get`` and the rest, with one TLS context for the whole test process.

httpx's module functions build a Client for each call, and with it an SSL context that loads
certifi's CA bundle: about 20 ms of CPU a call (measured here), although the platform under test
speaks plain HTTP. The route matrices and the polling waits make thousands of calls; on a 2-core
machine that CPU was a large share of the suite's time. These functions take the same arguments
and behave the same; they reuse the SDK's process-wide context (``cairn.sdk.tls``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from cairn.sdk.tls import tls_context


def request(method: str, url: Any, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, verify=tls_context(), **kwargs)


def get(url: Any, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: Any, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def put(url: Any, **kwargs: Any) -> httpx.Response:
    return request("PUT", url, **kwargs)


def patch(url: Any, **kwargs: Any) -> httpx.Response:
    return request("PATCH", url, **kwargs)


def delete(url: Any, **kwargs: Any) -> httpx.Response:
    return request("DELETE", url, **kwargs)


@contextmanager
def stream(method: str, url: Any, **kwargs: Any) -> Iterator[httpx.Response]:
    with httpx.stream(method, url, verify=tls_context(), **kwargs) as response:
        yield response
