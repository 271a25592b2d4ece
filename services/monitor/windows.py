"""What a window holds and how a sample batch goes into it: request and error counts and a
latency sketch, kept while the window is open and summarised when it closes.

Pure functions and small value classes (no I/O): ``window_store`` persists them and
``consumer`` feeds them. The statistics library (``cairn.monitor``: profiles, drift,
performance) is called from here only, so the parts that use it stay in one module.

- A window is ``[start, start + size)`` by sample time, per deployment and size; ``start`` is a
  multiple of the size since the epoch (tumbling windows that line up across restarts).
- A request counts once (a request of many input rows has many Arrow rows; ``row == 0`` is the
  request). Shadow copies are not traffic: left out, as in the deployments list's figures.
- An error is an answer with HTTP status >= 500 (a 4xx is the caller's mistake, not the model's).
- Latencies go into a log-bucket sketch (relative accuracy ``LATENCY_ALPHA``): bounded memory
  whatever the window's length, mergeable, and quantiles within 1% of the exact ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

LATENCY_ALPHA = 0.01  # a quantile is within 1% (relative) of a value at that rank
_GAMMA = (1 + LATENCY_ALPHA) / (1 - LATENCY_ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
LATENCY_FLOOR_MS = 1e-6  # latencies at or below this count as zero
ERROR_STATUS = 500


@dataclass
class LatencySketch:
    """Counts of latencies by bucket ``k`` (``gamma**(k-1) < x <= gamma**k``), plus zeros."""

    buckets: dict[int, int] = field(default_factory=dict)
    zero: int = 0

    def add(self, latency_ms: float) -> None:
        if not math.isfinite(latency_ms) or latency_ms < 0:
            return
        if latency_ms <= LATENCY_FLOOR_MS:
            self.zero += 1
            return
        k = math.ceil(math.log(latency_ms) / _LOG_GAMMA)
        self.buckets[k] = self.buckets.get(k, 0) + 1

    @property
    def count(self) -> int:
        return self.zero + sum(self.buckets.values())

    def quantile(self, q: float) -> float | None:
        """The value at rank ``q`` (0..1) within the sketch's accuracy; None when empty."""
        total = self.count
        if total == 0:
            return None
        rank = q * (total - 1)
        seen = self.zero
        if rank < seen:
            return 0.0
        for k in sorted(self.buckets):
            seen += self.buckets[k]
            if rank < seen:
                return 2 * _GAMMA ** k / (_GAMMA + 1)  # the bucket's middle: within alpha of any value in it
        return 2 * _GAMMA ** max(self.buckets) / (_GAMMA + 1)

    def to_json(self) -> dict[str, Any]:
        return {"zero": self.zero, "buckets": {str(k): n for k, n in sorted(self.buckets.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LatencySketch":
        return cls({int(k): int(n) for k, n in data.get("buckets", {}).items()}, int(data.get("zero", 0)))


@dataclass
class OpenWindow:
    """The running state of one open window."""

    project: str
    deployment: str
    size: str
    start: float
    seconds: int
    requests: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def add(self, status: int, latency_ms: float) -> None:
        self.requests += 1
        if status >= ERROR_STATUS:
            self.errors += 1
        self.latency.add(latency_ms)

    def summary(self) -> dict[str, Any]:
        """The closed window's row: counts, error rate, latency quantiles; drift and performance
        (None until the statistics library fills them in)."""
        return {"project": self.project, "deployment": self.deployment, "size": self.size, "start": self.start,
                "end": self.end, "requests": self.requests, "errors": self.errors,
                "error_rate": self.errors / self.requests if self.requests else None,
                "latency_p50_ms": _round(self.latency.quantile(0.50)),
                "latency_p95_ms": _round(self.latency.quantile(0.95)),
                "latency_p99_ms": _round(self.latency.quantile(0.99)),
                "drift": None, "performance": None}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def window_start(time_s: float, seconds: int) -> float:
    return float(math.floor(time_s / seconds) * seconds)


@dataclass(frozen=True)
class Request:
    """One sampled request as the windows count it."""

    time: float
    status: int
    latency_ms: float


def requests_in(table: Any) -> Iterator[Request]:
    """The requests of one decoded inference message (one per request id, shadows left out)."""
    columns = [c for c in ("row", "role", "time", "status", "latency_ms") if c in table.column_names]
    data = table.select(columns).to_pydict()
    rows = len(data["time"]) if "time" in data else 0
    for i in range(rows):
        if "row" in data and (data["row"][i] or 0) != 0:
            continue
        if "role" in data and data["role"][i] == "shadow":
            continue
        when = data["time"][i]
        if when is None or not math.isfinite(when):
            continue
        latency = data["latency_ms"][i] if "latency_ms" in data else None
        yield Request(float(when), int(data["status"][i] or 0) if "status" in data else 0,
                      float(latency) if latency is not None else math.nan)
