"""What a sweep controller needs from the rest of the platform, as small protocols, and the real
adapters that do not depend on the scheduler's internals: the event sink (the event log) and the
metric reader (the metrics service's HTTP API). The job submitter is the scheduler's own job
submission; the scheduler implements it."""

from __future__ import annotations

import math
from typing import Any, Protocol, TypedDict

import httpx

from cairn.kernel.envelope import Event
from cairn.kernel.errors import Unavailable
from cairn.kernel.eventlog import EventLog
from cairn.kernel.identity import Signer
from cairn.kernel.schemas import validate_event

SweepEvent = tuple[str, dict[str, Any]]


class SubmittedJob(TypedDict):
    job_id: str
    run_id: str


class JobSubmitter(Protocol):
    """Submits and cancels the trials' jobs (the scheduler's job submission)."""

    async def submit(self, project: str, spec: dict[str, Any], *, idempotency_key: str,
                     tags: dict[str, str]) -> SubmittedJob:
        """Queue a job; the same ``idempotency_key`` must return the same job, not a second one.
        ``tags`` go on the job's run (sweep id and trial number: the child-run link)."""
        ...

    async def cancel(self, project: str, job_id: str, *, reason: str) -> None:
        """Cancel a job; a job that already ended is left as it is."""
        ...

    async def status(self, project: str, job_id: str) -> str:
        """The job's status. Say succeeded, failed or cancelled only once the job will not run
        again (a failed attempt that is retried is not final): the controller ends the trial then."""
        ...


class MetricReader(Protocol):
    """Reads a run's metric history."""

    async def history(self, project: str, run_id: str, key: str) -> list[tuple[int, float]]:
        """Every (step, value) of ``key`` in the run, ordered by step."""
        ...


class SweepEventSink(Protocol):
    """Appends a sweep's events in order, the first expecting the sweep's last event to be at
    ``expected_sequence`` (ConcurrencyConflict if the sweep moved on); returns the last one's."""

    async def append(self, project: str, sweep_id: str, events: list[SweepEvent], *,
                     expected_sequence: int) -> int: ...


class EventLogSink:
    """Appends sweep events to the event log with optimistic concurrency on the sweep's subject:
    a controller that missed an event (``sweep.stopped`` from the API, or its own events that the
    read model it was rebuilt from had not applied yet) gets a conflict and is rebuilt, instead of
    writing over history it has not seen."""

    def __init__(self, event_log: EventLog, *, actor: str = "service:scheduler") -> None:
        self.log = event_log
        self.actor = actor

    async def append(self, project: str, sweep_id: str, events: list[SweepEvent], *,
                     expected_sequence: int) -> int:
        last = expected_sequence
        for event_type, data in events:
            event = Event(type=event_type, project=project, aggregate="sweep", aggregate_id=sweep_id,
                          data=data, actor=self.actor)
            validate_event(event)
            last = (await self.log.append(event, expected_last_subject_seq=last)).sequence
        return last


class HttpMetricReader:
    """Reads metric histories from the metrics service (``GET /projects/{p}/runs/{r}/metrics``)."""

    def __init__(self, metrics_url: str, signer: Signer, *, timeout: float = 10.0) -> None:
        self.url = metrics_url.rstrip("/")
        self.signer = signer
        self._http = httpx.AsyncClient(timeout=timeout)

    async def history(self, project: str, run_id: str, key: str) -> list[tuple[int, float]]:
        try:
            resp = await self._http.get(f"{self.url}/projects/{project}/runs/{run_id}/metrics",
                                        params={"key": key}, headers=self.signer.internal())
            resp.raise_for_status()
        except httpx.HTTPError as err:
            raise Unavailable(f"the metrics service did not answer for run {run_id!r} metric {key!r} "
                              f"({type(err).__name__}); retry shortly", details={"retry_after": 1}) from None
        body = resp.json()
        points: dict[int, float] = {}
        for step, value in zip(body["steps"], body["values"]):
            # NaN and infinities arrive as strings; float() reads both. At a repeated step the last point counts.
            points[int(step)] = float(value)
        return sorted(points.items())

    async def close(self) -> None:
        await self._http.aclose()


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: events carry a non-finite metric value as null."""
    return value if math.isfinite(value) else None
