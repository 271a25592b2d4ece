"""Bounds: request rates per token (429 with Retry-After) and body sizes by route (413)."""

from __future__ import annotations

import math
import time

from cairn.kernel.bodylimit import LARGE_BODY, MANIFEST_BODY, BodyLimits
from cairn.kernel.errors import CairnError
from cairn.kernel.settings import ServiceSettings

# The routes whose bodies may pass the default (CAIRN_MAX_BODY_BYTES, 16 MiB), enforced while the
# body streams in (cairn.kernel.bodylimit); each service enforces its own limits again.
BODY_LIMITS: dict[str, int | None] = {
    "/api/v1/artifacts/blobs": LARGE_BODY,
    "/api/v1/artifacts/blobs/missing": None,  # a JSON query: the default
    "/api/v1/artifacts/projects/*/runs/*/files": LARGE_BODY,
    "/api/v1/artifacts/manifests": MANIFEST_BODY,
    "/api/v1/artifacts/projects/*/datasets/*/versions": MANIFEST_BODY,
    "/api/2.0/mlflow-artifacts/artifacts": LARGE_BODY,
    "/mlflow/*/api/2.0/mlflow-artifacts/artifacts": LARGE_BODY,
}


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


def body_limits(settings: ServiceSettings) -> BodyLimits:
    """The gateway's body limits: :data:`BODY_LIMITS` under CAIRN_MAX_BODY_BYTES and CAIRN_BODY_LIMITS."""
    return BodyLimits.from_settings(settings, BODY_LIMITS)
