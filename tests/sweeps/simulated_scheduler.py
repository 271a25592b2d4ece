"""A simulated scheduler for the sweep controller's unit tests: a test double of the scheduler's
JobSubmitter and of the MetricReader port. Its "jobs" log a metric curve computed from their
params, one step each time the test calls ``advance()``, so a sweep runs deterministically without
processes. The real ports (scheduler job submission, metrics HTTP API, event log) are wired by the
scheduler service; ``EventLogSink`` and ``HttpMetricReader`` are tested against real services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.errors import ConcurrencyConflict, InvalidInput
from cairn.kernel.schemas import validate_event
from cairn.services.scheduler.sweeps import domain
from cairn.services.scheduler.sweeps.controller import SweepController
from cairn.services.scheduler.sweeps.spec import parse_sweep_spec

CREATED_AT = "2026-01-01T00:00:00Z"
T0 = datetime.fromisoformat("2026-01-01T00:00:00+00:00").timestamp()


def objective(params: dict[str, Any]) -> float:
    """The simulated final loss: best at x = 1 (and opt = 'adam' when present)."""
    penalty = 0.0 if params.get("opt", "adam") == "adam" else 0.5
    return (float(params["x"]) - 1.0) ** 2 + penalty


def curve(params: dict[str, Any], step: int) -> float:
    """A loss curve that falls towards the objective: the same shape for every trial, so a trial
    with a worse objective is worse at every step."""
    return objective(params) + 4.0 / (step + 1)


@dataclass
class SimJob:
    job_id: str
    run_id: str
    params: dict[str, Any]
    points: list[tuple[int, float]] = field(default_factory=list)
    status: str = "running"


class SimulatedScheduler:
    """JobSubmitter + MetricReader over simulated jobs that run ``steps`` steps each."""

    def __init__(self, steps: int = 9, curve: Callable[[dict[str, Any], int], float] = curve) -> None:
        self.steps = steps
        self.curve = curve
        self.jobs: dict[str, SimJob] = {}
        self.by_key: dict[str, str] = {}
        self.submissions: list[str] = []  # idempotency keys, in order (repeats included)
        self.max_running = 0
        self.fail_params: Callable[[dict[str, Any]], bool] = lambda params: False
        self._ended: list[tuple[str, str]] = []
        self.refuse: str | None = None  # when set, submit refuses every job with this message

    def running(self) -> list[SimJob]:
        return [j for j in self.jobs.values() if j.status == "running"]

    async def submit(self, project: str, spec: dict[str, Any], *, idempotency_key: str,
                     tags: dict[str, str]) -> dict[str, str]:
        self.submissions.append(idempotency_key)
        if self.refuse is not None:
            raise InvalidInput(self.refuse)
        if idempotency_key in self.by_key:
            job = self.jobs[self.by_key[idempotency_key]]
            return {"job_id": job.job_id, "run_id": job.run_id}
        number = len(self.jobs)
        job = SimJob(f"job-{number}", f"run-{number}", dict(spec["params"]))
        self.jobs[job.job_id] = job
        self.by_key[idempotency_key] = job.job_id
        self.max_running = max(self.max_running, len(self.running()))
        return {"job_id": job.job_id, "run_id": job.run_id}

    async def cancel(self, project: str, job_id: str, *, reason: str) -> None:
        job = self.jobs[job_id]
        if job.status == "running":
            job.status = "cancelled"
            self._ended.append((job_id, "cancelled"))  # the scheduler's job.cancelled, later

    async def status(self, project: str, job_id: str) -> str:
        return self.jobs[job_id].status

    async def history(self, project: str, run_id: str, key: str) -> list[tuple[int, float]]:
        job = next(j for j in self.jobs.values() if j.run_id == run_id)
        return list(job.points)

    def advance(self) -> list[tuple[str, str]]:
        """Every running job logs one more step; returns (job_id, final status) of jobs that ended."""
        ended, self._ended = self._ended, []
        for job in self.running():
            step = len(job.points)
            job.points.append((step, self.curve(job.params, step)))
            if self.fail_params(job.params) and step == 1:
                job.status = "failed"
                ended.append((job.job_id, "failed"))
            elif len(job.points) == self.steps:
                job.status = "succeeded"
                ended.append((job.job_id, "succeeded"))
        return ended


class RecordingSink:
    """Keeps the appended events and, as the event log would, checks each against its JSON Schema
    and refuses an append that does not expect the sweep's last event (optimistic concurrency)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def append(self, project: str, sweep_id: str, events: list[tuple[str, dict[str, Any]]], *,
                     expected_sequence: int) -> int:
        if expected_sequence != len(self.events):  # the position in this list plays the log sequence
            raise ConcurrencyConflict(f"sweep {sweep_id} is at {len(self.events)}, not {expected_sequence}")
        for event_type, data in events:
            validate_event(Event(type=event_type, project=project, aggregate="sweep", aggregate_id=sweep_id,
                                 data=data))
        self.events.extend((t, _copy(d)) for t, d in events)
        return len(self.events)


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    import json
    return json.loads(json.dumps(data))  # what a reader of the log gets back


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def new_sweep(doc: dict[str, Any], sim: SimulatedScheduler, sink: RecordingSink | None = None,
              clock: Clock | None = None, metrics: Any = None) -> SweepController:
    """A controller for a freshly created sweep (its sweep.created already on the sink)."""
    sink = sink if sink is not None else RecordingSink()
    spec = parse_sweep_spec(doc, project=doc.get("project") or "demo")
    decision = domain.create_sweep(None, sweep_id="s1", spec=spec, created_at=CREATED_AT)
    assert decision is not None
    sink.events.append(decision)
    return SweepController(spec.project or "demo", decision[1], sequence=len(sink.events), jobs=sim,
                           metrics=metrics or sim, sink=sink, clock=clock or Clock())


async def run_to_end(controller: SweepController, sim: SimulatedScheduler, *, max_rounds: int = 10_000,
                     stop_after: int | None = None) -> int:
    """Tick, advance the simulated jobs, report their ends; returns the rounds it took."""
    await controller.tick()
    rounds = 0
    while controller.status == "running" and rounds < max_rounds:
        if stop_after is not None and rounds == stop_after:
            break
        rounds += 1
        for job_id, status in sim.advance():
            await controller.on_job_finished(job_id, status)
        await controller.tick()
        assert len(sim.running()) <= controller.spec.max_parallel
    return rounds


def base_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "xsearch", "method": "random", "seed": 7,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"type": "float", "min": -4.0, "max": 6.0}},
        "max_parallel": 2, "budget": {"max_trials": 8},
        "job": {"command": "python train.py", "params": {"epochs": 9}},
    }
    doc.update(overrides)
    return doc
