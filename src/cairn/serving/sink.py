"""What a serving replica hands to the inference log for each sampled request.

The runtime calls :meth:`InferenceSink.offer` once per answered request, after the answer is
sent or queued; ``offer`` never blocks and never raises: a sink that cannot keep up drops the
sample and counts it (the request is never slowed down or failed by logging).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class InferenceSample:
    """One answered request: its features (one row per input row), what the model predicted
    (one entry per row), how long the model call and the whole request took, and where it ran."""

    request_id: str
    project: str
    model: str
    version: int
    features: Any  # a pandas DataFrame, one row per input row
    prediction: Any  # a list or numpy array, one entry per row
    latency_ms: float
    status: int  # the HTTP status answered
    time: float  # unix seconds when the request arrived
    deployment: str | None = None  # None for a plain ``cairn serve``
    replica: str | None = None
    role: str = "primary"  # "primary", "canary" or "shadow" (a shadow's answer was discarded)
    extra: dict[str, Any] = field(default_factory=dict)


class InferenceSink(Protocol):
    def offer(self, sample: InferenceSample) -> None: ...

    async def close(self) -> None: ...


class NoSink:
    """Logging off: every sample is ignored."""

    def offer(self, sample: InferenceSample) -> None:
        return None

    async def close(self) -> None:
        return None
