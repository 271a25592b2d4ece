"""Bounds: request rates per token (429 with Retry-After) and body sizes per service (413)."""

from __future__ import annotations

import math
import time

from cairn.kernel.errors import CairnError, PayloadTooLarge

DEFAULT_MAX_BODY = 16 << 20
MAX_BODY = {"artifacts": 1 << 40}


class RateLimited(CairnError):
    status = 429
    code = "rate_limited"


class TokenBuckets:
    """One bucket per token: ``rate`` requests per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.rate)
            self._buckets[key] = (tokens, now)
            raise RateLimited(f"too many requests for this token; retry in {wait}s",
                              details={"retry_after": wait})
        self._buckets[key] = (tokens - 1, now)


def check_body_size(service: str, content_length: str | None) -> None:
    limit = MAX_BODY.get(service, DEFAULT_MAX_BODY)
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(f"the body is {int(content_length)} bytes; {service} accepts at most {limit}",
                              details={"limit": limit})
