"""Drives one sweep, step by step: ``tick()`` checks running trials' metrics for early stopping,
enforces the budget and starts trials up to ``max_parallel``; ``on_job_finished()`` records a
trial's final value when its job ends. Everything it decides is appended as sweep events first
and only then folded into its state, so a controller rebuilt from those events (``rebuild``)
carries on exactly where the old one stopped.

The controller does no I/O of its own: jobs, metrics, events and the clock are ports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cairn.kernel.errors import CairnError, Unavailable
from cairn.services.scheduler.sweeps import domain
from cairn.services.scheduler.sweeps.ports import (
    JobSubmitter,
    MetricReader,
    SweepEvent,
    SweepEventSink,
    finite_or_none,
)
from cairn.services.scheduler.sweeps.spec import SweepSpec, trial_job_spec
from cairn.services.scheduler.sweeps.study import SweepStudy

log = logging.getLogger(__name__)
Clock = Callable[[], float]
JOB_FINAL = ("succeeded", "failed", "cancelled")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class SweepController:
    """One sweep's driver. Not thread-safe: call it from one task."""

    def __init__(self, project: str, created: dict[str, Any], *, sequence: int, jobs: JobSubmitter,
                 metrics: MetricReader, sink: SweepEventSink, clock: Clock = time.time) -> None:
        self.project = project
        self.sweep_id = created["sweep_id"]
        self.spec = SweepSpec.model_validate(created["spec"])
        self.jobs, self.metrics, self.sink, self.clock = jobs, metrics, sink, clock
        self.state: dict[str, Any] = domain.evolve_sweep(None, "sweep.created", created)
        self.study = SweepStudy(self.spec, self.sweep_id)
        self.sequence = sequence  # where the last event it folded is in the log: its next append expects it
        self._lock = asyncio.Lock()  # one step at a time: a tick and a job's end never interleave
        self.deadline = (_epoch(created["created_at"]) + self.spec.budget.max_duration_s
                         if self.spec.budget.max_duration_s else None)

    @classmethod
    def rebuild(cls, project: str, history: list[SweepEvent], *, sequence: int, **ports: Any) -> SweepController:
        """A controller from the sweep's events in log order (the first one is sweep.created);
        ``sequence`` is the log position of the last of them."""
        first_type, created = history[0]
        if first_type != "sweep.created":
            raise ValueError(f"a sweep's history starts with sweep.created, not {first_type}")
        controller = cls(project, created, sequence=sequence, **ports)
        for event_type, data in history[1:]:
            controller._replay(event_type, data)
        return controller

    # --- folding ---------------------------------------------------------------------------------

    def _replay(self, event_type: str, data: dict[str, Any]) -> None:
        study = self.study
        if event_type == "sweep.trial_started":
            study.add_started(data["number"], data["params"], data.get("system_attrs") or {})
        elif event_type == "sweep.trial_reported":
            study.replay_report(data["number"], [(s, v) for s, v in data["points"]])
        elif event_type == "sweep.trial_pruned":
            study.finish(data["number"], "pruned", None)
        elif event_type == "sweep.trial_finished":
            study.finish(data["number"], data["state"], data.get("value"))
        self._fold(event_type, data)

    def _fold(self, event_type: str, data: dict[str, Any]) -> None:
        self.state = domain.evolve_sweep(self.state, event_type, data)

    async def _record(self, events: list[SweepEvent]) -> None:
        """Append (expecting the log to be where this controller last saw it), then fold into the
        state (the study was already told, live)."""
        if not events:
            return
        self.sequence = await self.sink.append(self.project, self.sweep_id, events,
                                               expected_sequence=self.sequence)
        for event_type, data in events:
            self._fold(event_type, data)

    # --- reading -------------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return str(self.state["status"])

    def trial_of_job(self, job_id: str) -> dict[str, Any] | None:
        for trial in self.state["trials"].values():
            if trial["job_id"] == job_id:
                return trial
        return None

    # --- driving ---------------------------------------------------------------------------------------

    async def tick(self) -> None:
        """One step: cancel if stopped, prune, enforce the budget, start trials, complete."""
        async with self._lock:
            await self._tick()

    async def _tick(self) -> None:
        if self.status == "stopped":
            await self._cancel_running("the sweep was stopped")
            return
        if self.status != "running":
            return
        if self.deadline is not None and self.clock() >= self.deadline:
            await self._cancel_running("the sweep's max_duration_s was reached")
            await self._complete("max_duration")
            return
        for trial in domain.running_trials(self.state):
            status = await self.jobs.status(self.project, trial["job_id"])
            if status in JOB_FINAL:
                await self._finish_trial(trial, status, None)  # its job event was missed or is late
            else:
                await self._check_pruning(trial)
        limit = self.spec.budget.max_failed_trials
        if limit is not None and domain.trial_counts(self.state)["failed"] >= limit:
            await self._cancel_running(f"{limit} trials failed")
            await self._complete("max_failed_trials")
            return
        await self._start_trials()
        budget = self.spec.max_trials()
        if not domain.running_trials(self.state) and budget is not None and self.study.size >= budget:
            await self._complete("grid_exhausted" if self.spec.method == "grid" else "max_trials")

    async def on_job_finished(self, job_id: str, status: str, error: str | None = None) -> None:
        """React to a trial's job reaching a final state (succeeded, failed, cancelled), then tick.
        Optional: ``tick`` finds ended jobs by itself; this only makes the sweep react sooner."""
        async with self._lock:
            trial = self.trial_of_job(job_id)
            if trial is None or trial["state"] != "running":
                return  # not ours, or already pruned / cancelled by us
            await self._finish_trial(trial, status, error)
            await self._tick()

    async def _finish_trial(self, trial: dict[str, Any], status: str, error: str | None) -> None:
        number = trial["number"]
        points = await self._new_points(trial)
        events: list[SweepEvent] = []
        step, value = trial["step"], trial["value"]
        if points:
            self.study.report(number, points)  # the decision does not matter any more; the replay matches
            events.append(("sweep.trial_reported", {"number": number, "points": [list(p) for p in points]}))
            step, value = points[-1]
        finished: dict[str, Any] = {"number": number, "state": "complete", "value": value, "step": step}
        if status != "succeeded":
            finished.update(state="failed" if status == "failed" else "cancelled", value=None,
                            error=(error or f"the job was {status}")[:2000])
        elif value is None:
            finished.update(state="failed", error=f"the job succeeded but its last {self.spec.metric.name!r} "
                                                  "is missing or not finite")
        self.study.finish(number, finished["state"], finished["value"])
        await self._record([*events, ("sweep.trial_finished", finished)])

    async def _new_points(self, trial: dict[str, Any]) -> list[tuple[int, float | None]]:
        """The trial's metric points after the last step the study was shown."""
        if trial["run_id"] is None:
            return []
        history = await self.metrics.history(self.project, trial["run_id"], self.spec.metric.name)
        seen = trial["step"] if trial["step"] is not None else -1
        return [(int(step), finite_or_none(value)) for step, value in history if step > seen]

    async def _check_pruning(self, trial: dict[str, Any]) -> None:
        try:
            points = await self._new_points(trial)
        except Unavailable as err:  # nothing changed yet: look again next tick
            log.warning("sweep=%s trial=%d metrics unavailable: %s", self.sweep_id, trial["number"], err.message)
            return
        if not points:
            return
        number = trial["number"]
        events: list[SweepEvent] = [("sweep.trial_reported", {"number": number,
                                                              "points": [list(p) for p in points]})]
        if not self.study.report(number, points):
            await self._record(events)
            return
        step, value = points[-1]
        self.study.finish(number, "pruned", None)
        events.append(("sweep.trial_pruned", {"number": number, "step": step, "value": value}))
        # Cancel before recording: if the append then fails, the rebuilt controller finds the job
        # cancelled and ends the trial; the other order could leave a pruned trial's job running.
        rule = self.spec.early_stopping.type if self.spec.early_stopping else "early-stopping"
        await self.jobs.cancel(self.project, trial["job_id"], reason=f"pruned by the sweep's {rule} rule "
                               f"at step {step}")
        await self._record(events)

    async def _start_trials(self) -> None:
        budget = self.spec.max_trials()
        while len(domain.running_trials(self.state)) < self.spec.max_parallel:
            if budget is not None and self.study.size >= budget:
                return
            number, params, system_attrs = self.study.ask()
            started: dict[str, Any] = {"number": number, "params": params, "system_attrs": system_attrs,
                                       "job_id": None, "run_id": None}
            try:
                job = await self.jobs.submit(
                    self.project, trial_job_spec(self.spec, number, params),
                    idempotency_key=f"sweep-{self.sweep_id}-trial-{number}",
                    tags={"sweep.id": self.sweep_id, "sweep.trial": str(number)})
            except CairnError as err:
                log.warning("sweep=%s trial=%d submission failed: %s", self.sweep_id, number, err.message)
                self.study.finish(number, "failed", None)
                await self._record([("sweep.trial_started", started),
                                    ("sweep.trial_finished", {"number": number, "state": "failed",
                                                              "value": None, "step": None,
                                                              "error": f"job submission failed: {err.message}"[:2000]})])
                return  # one failed submission per tick: the failure budget is checked before the next
            started.update(job_id=job["job_id"], run_id=job["run_id"])
            await self._record([("sweep.trial_started", started)])

    async def _cancel_running(self, reason: str) -> None:
        for trial in domain.running_trials(self.state):
            number = trial["number"]
            await self.jobs.cancel(self.project, trial["job_id"], reason=reason)  # first, as for pruning
            self.study.finish(number, "cancelled", None)
            await self._record([("sweep.trial_finished", {"number": number, "state": "cancelled", "value": None,
                                                          "step": trial["step"], "error": reason})])

    async def _complete(self, reason: str) -> None:
        best = domain.best_trial(self.state)
        await self._record([("sweep.completed", {
            "reason": reason, "best_trial": None if best is None else best["number"],
            "best_value": None if best is None else best["value"]})])
