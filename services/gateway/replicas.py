"""The replicas of each service the gateway forwards to: round robin, skipping a refused one.

``CAIRN_SERVICES`` gives each service one base URL or a list of them (its replicas, each keeping a
read model of its own; read-your-writes holds across them through ``Cairn-Seq``/``Cairn-Min-Seq``,
cairn.kernel.consistency). Requests are spread round robin. A replica whose connection was refused
is set aside for a moment (``DOWN_S``) so that requests stop trying it first; when every replica
is set aside they are all tried again (one may have come back).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping, Sequence

DOWN_S = 2.0  # how long a replica that refused a connection is tried last


def service_urls(services: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """``CAIRN_SERVICES`` as name -> list of base URLs (one URL is a list of one)."""
    urls: dict[str, list[str]] = {}
    for name, value in services.items():
        listed = [value] if isinstance(value, str) else list(value)
        urls[name] = [url.rstrip("/") for url in listed]
        if not urls[name]:
            raise ValueError(f"CAIRN_SERVICES gives service {name!r} no URL")
    return urls


class Replicas:
    """One service's replicas, in the order a request should try them."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self._turn = itertools.count()
        self._down_until: dict[str, float] = {}

    def order(self) -> list[str]:
        """Every replica, starting with the next one in turn; those refused a moment ago last."""
        start = next(self._turn) % len(self.urls)
        turn = self.urls[start:] + self.urls[:start]
        now = time.monotonic()
        up = [url for url in turn if self._down_until.get(url, 0.0) <= now]
        return up + [url for url in turn if url not in up]

    def first(self) -> str:
        """The replica the next request goes to."""
        return self.order()[0]

    def refused(self, url: str) -> None:
        """``url`` refused a connection: try it last for a while."""
        self._down_until[url] = time.monotonic() + DOWN_S

    def __iter__(self) -> Iterator[str]:
        return iter(self.urls)
