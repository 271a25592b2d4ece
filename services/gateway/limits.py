"""Bounds: request rates per token and per user (429 with Retry-After) and body sizes by route (413).

Gateway replicas (issue 26) keep their buckets in process, each with its share of the limits:
the configured rate and burst divided by CAIRN_GATEWAY_REPLICAS. A load balancer that spreads a
caller's requests over the replicas (round robin, least connections) adds the shares up to about
the configured limit. Why not one bucket shared in a key-value bucket: every request would become
a replicated, fsynced JetStream write plus a read (benchmarks/bench_rate_limit_shared.py measured
about 1.7 ms per request against 2 us in process, and the writes would load the whole NATS
cluster), to make exact a limit that is a guard against floods, not a quota.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from cairn.kernel.bodylimit import LARGE_BODY, MANIFEST_BODY, BodyLimits
from cairn.kernel.errors import CairnError
from cairn.kernel.identity import SERVICE_ACCOUNT_KIND, Caller
from cairn.kernel.settings import ServiceSettings

PRIVILEGED_FACTOR = 5  # service accounts' and site admins' default limits, times the users'
SWEEP_AT = 10_000  # buckets kept before full ones are dropped (see TokenBuckets.spend)
# The routes whose bodies may pass the default (CAIRN_MAX_BODY_BYTES, 16 MiB), enforced while the
# body streams in (cairn.kernel.bodylimit); each service enforces its own limits again.
BODY_LIMITS: dict[str, int | None] = {
    "/api/v1/artifacts/projects/*/blobs": LARGE_BODY,
    "/api/v1/artifacts/projects/*/blobs/missing": None,  # a JSON query: the default
    "/api/v1/artifacts/projects/*/runs/*/files": LARGE_BODY,
    "/api/v1/artifacts/projects/*/manifests": MANIFEST_BODY,
    "/api/v1/artifacts/projects/*/datasets/*/versions": MANIFEST_BODY,
    "/api/v1/monitor/projects/*/profiles": 64 << 20,  # a profile of many columns (the monitor's own limit)
    "/api/2.0/mlflow-artifacts/artifacts": LARGE_BODY,
    "/mlflow/*/api/2.0/mlflow-artifacts/artifacts": LARGE_BODY,
}


class RateLimited(CairnError):
    status = 429
    code = "rate_limited"


class TokenBuckets:
    """One bucket per key: ``rate`` requests per second on average, bursts up to ``burst``.

    A key nobody used lately has a full bucket, and a full bucket answers exactly like a missing
    one, so full buckets are dropped whenever the dict doubles: memory follows the keys used in the
    last ``burst / rate`` seconds, not every token or user ever seen.
    """

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 sweep_at: int = SWEEP_AT) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._min_sweep = sweep_at
        self._sweep_at = sweep_at
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def level(self, key: str, now: float) -> float:
        """How many requests ``key`` may make at ``now`` (fractions count toward the next one)."""
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - stamp) * self.rate)

    def retry_after(self, level: float) -> int:
        """Whole seconds until a bucket at ``level`` holds one request again (at least 1)."""
        return max(1, math.ceil((1 - level) / self.rate))

    def spend(self, key: str, level: float, now: float) -> None:
        """Take one request from a bucket whose level at ``now`` is ``level`` (>= 1)."""
        self._buckets[key] = (level - 1, now)
        if len(self._buckets) > self._sweep_at:
            self._buckets = {k: v for k, v in self._buckets.items() if self.level(k, now) < self.burst}
            self._sweep_at = max(self._min_sweep, 2 * len(self._buckets))

    def take(self, key: str) -> None:
        """Count one request against ``key``; RateLimited when its bucket is empty."""
        if not self.enabled:
            return
        now = self.clock()
        level = self.level(key, now)
        if level < 1:
            wait = self.retry_after(level)
            raise RateLimited(f"too many requests for this key; retry in {wait}s", details={"retry_after": wait})
        self.spend(key, level, now)


class RequestLimits:
    """The gateway's rate limits for one tier of callers: every request takes one from its token's
    bucket and one from its user's bucket (job tokens count against their submitter), so minting
    more tokens does not buy a user more requests. Both are checked before either is spent: a
    refused request costs nothing."""

    def __init__(self, per_token: TokenBuckets, per_user: TokenBuckets) -> None:
        self.per_token = per_token
        self.per_user = per_user

    def take(self, token_id: str, user: str) -> None:
        """Count one request of ``user`` through token ``token_id``; RateLimited (naming the limit
        that is used up, with the seconds to wait) when either bucket is empty."""
        now = self.per_token.clock()
        checks = [(buckets, key, buckets.level(key, now))
                  for buckets, key in ((self.per_token, token_id), (self.per_user, user)) if buckets.enabled]
        empty = [(buckets, level) for buckets, _, level in checks if level < 1]
        if empty:
            wait = max(buckets.retry_after(level) for buckets, level in empty)
            precise = max((1 - level) / buckets.rate for buckets, level in empty)
            names = ["token" if buckets is self.per_token else "user" for buckets, _ in empty]
            said = " and ".join(self._describe(name, user) for name in names)
            raise RateLimited(f"too many requests: {said} {'is' if len(names) == 1 else 'are'} used up; "
                              f"retry in {wait}s", details={"retry_after": wait, "retry_after_s": round(precise, 3),
                                                            "limits": names})
        for buckets, key, level in checks:
            buckets.spend(key, level, now)

    def _describe(self, name: str, user: str) -> str:
        b = self.per_token if name == "token" else self.per_user
        shared = "" if name == "token" else f"; shared by all of {user}'s tokens and jobs"
        return f"the limit per {name} ({b.rate:g} requests/s, bursts of {b.burst:g}{shared})"


TIERS = ("user", "service", "admin")  # people and their jobs; service accounts; site admins


def tier_of(caller: Caller) -> str:
    """The tier whose limits a caller's requests count against: site admins', service accounts'
    (``kind == "service"``), or everyone else's (users, and jobs as their submitter)."""
    if caller.site_admin:
        return "admin"
    return "service" if caller.kind == SERVICE_ACCOUNT_KIND else "user"


class TieredLimits:
    """One :class:`RequestLimits` per tier, so automation (service accounts) and site admins can
    have budgets of their own. A tier's buckets are its own: a user's site-admin token and their
    plain token do not share a per-user bucket."""

    def __init__(self, tiers: dict[str, RequestLimits]) -> None:
        self.tiers = tiers

    def __getitem__(self, tier: str) -> RequestLimits:
        return self.tiers[tier]

    def take(self, token_id: str, user: str, tier: str = "user") -> None:
        self.tiers[tier].take(token_id, user)

    def take_for(self, caller: Caller) -> None:
        """Count one request of ``caller`` in its tier (see :func:`tier_of`)."""
        self.take(caller.token_id, caller.user, tier_of(caller))


def request_limits(rate: float, burst: float, rate_user: float | None, burst_user: float | None) -> RequestLimits:
    """Limits from the gateway's settings; the user's default to twice the token's."""
    user_rate = 2 * rate if rate_user is None else rate_user
    user_burst = 2 * burst if burst_user is None else burst_user
    return RequestLimits(TokenBuckets(rate, burst), TokenBuckets(user_rate, user_burst))


def replica_share(value: float | None, replicas: int) -> float | None:
    """One gateway replica's share of a configured rate or burst (None and 0 pass as they are)."""
    if not value or replicas <= 1:
        return value
    return value / replicas


def tiered_limits(settings: Any) -> TieredLimits:
    """Every tier's limits from the gateway's settings (``CAIRN_RATE_*``): users' from
    CAIRN_RATE_LIMIT/_BURST (per user: _USER, twice those by default); service accounts' and site
    admins' from CAIRN_RATE_LIMIT_SERVICE/_ADMIN and their _BURST_, which default to
    :data:`PRIVILEGED_FACTOR` times the users' (per user, again twice their token's). Each limit
    is this replica's share: divided by CAIRN_GATEWAY_REPLICAS (see the module's docstring)."""
    replicas = int(getattr(settings, "gateway_replicas", 1) or 1)

    def scaled(value: float | None, base: float) -> float:
        return PRIVILEGED_FACTOR * base if value is None else value

    def share(value: float | None) -> float | None:
        return replica_share(value, replicas)

    def burst_share(value: float | None) -> float | None:  # a bucket that cannot hold one request refuses all
        cut = replica_share(value, replicas)
        return cut if not cut else max(1.0, cut)

    tiers = {"user": request_limits(share(settings.rate_limit) or 0.0, burst_share(settings.rate_burst) or 0.0,
                                    share(settings.rate_limit_user), burst_share(settings.rate_burst_user))}
    for tier in ("service", "admin"):
        rate = scaled(getattr(settings, f"rate_limit_{tier}"), settings.rate_limit)
        burst = scaled(getattr(settings, f"rate_burst_{tier}"), settings.rate_burst)
        tiers[tier] = request_limits(share(rate) or 0.0, burst_share(burst) or 0.0, None, None)
    return TieredLimits(tiers)


def body_limits(settings: ServiceSettings) -> BodyLimits:
    """The gateway's body limits: :data:`BODY_LIMITS` under CAIRN_MAX_BODY_BYTES and CAIRN_BODY_LIMITS."""
    return BodyLimits.from_settings(settings, BODY_LIMITS)
