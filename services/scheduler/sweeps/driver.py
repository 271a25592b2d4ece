"""Runs every live sweep of a scheduler: one controller per sweep, rebuilt from the sweep's
journal (the read model's copy of its events) whenever it is new to this process or someone else
appended to the sweep (``sweep.stopped`` from the API), or when its last step failed.

The scheduler calls ``tick()`` periodically (say every second) and, to react sooner, calls
``on_job_finished`` when one of its jobs reaches a final state. Nothing is lost if a call is
missed or the process dies: a controller rebuilt from the log asks the job's status itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from cairn.kernel.errors import CairnError
from cairn.services.scheduler.sweeps.controller import Clock, SweepController
from cairn.services.scheduler.sweeps.ports import JobSubmitter, MetricReader, SweepEventSink
from cairn.services.scheduler.sweeps.projection import SweepQueries

log = logging.getLogger(__name__)


class SweepDriver:
    """Keeps the sweeps of one scheduler process moving."""

    def __init__(self, queries: SweepQueries, *, jobs: JobSubmitter, metrics: MetricReader,
                 sink: SweepEventSink, clock: Clock = time.time) -> None:
        self.queries = queries
        self.ports: dict[str, Any] = {"jobs": jobs, "metrics": metrics, "sink": sink, "clock": clock}
        self.controllers: dict[tuple[str, str], SweepController] = {}

    def _controller(self, project: str, sweep_id: str) -> SweepController | None:
        key = (project, sweep_id)
        controller = self.controllers.get(key)
        if controller is not None and self.queries.last_sequence(project, sweep_id) <= controller.sequence:
            return controller  # nobody else wrote to the sweep (the read model may lag behind it)
        history, sequence = self.queries.journal(project, sweep_id)
        if not history:
            return None
        # If the read model lags behind the log, this controller is stale: its first append
        # conflicts (it expects ``sequence``) and it is rebuilt again, never writing blind.
        controller = SweepController.rebuild(project, history, sequence=sequence, **self.ports)
        self.controllers[key] = controller
        return controller

    async def _step(self, project: str, sweep_id: str, job: tuple[str, str, str | None] | None) -> None:
        controller = self._controller(project, sweep_id)
        if controller is None:
            return
        try:
            if job is None:
                await controller.tick()
            else:
                await controller.on_job_finished(*job)
        except (CairnError, OSError) as err:
            # A conflict (someone appended first) or a port that failed: start again from the log.
            self.controllers.pop((project, sweep_id), None)
            log.warning("sweep=%s/%s step failed, rebuilding from the log next time: %s", project, sweep_id,
                        getattr(err, "message", err))
            return
        except Exception:  # noqa: BLE001 - a bug in one sweep must not stall the others
            self.controllers.pop((project, sweep_id), None)
            log.exception("sweep=%s/%s step failed unexpectedly; rebuilding from the log next time",
                          project, sweep_id)
            return
        if controller.status != "running" and not _has_running(controller):
            self.controllers.pop((project, sweep_id), None)  # done: nothing left to drive

    async def tick(self) -> None:
        """One step of every sweep that still has work."""
        for project, sweep_id in self.queries.running():
            await self._step(project, sweep_id, None)

    async def run(self, interval_s: float = 1.0) -> None:
        """Tick every ``interval_s`` until cancelled (the scheduler runs this as a task)."""
        while True:
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - one bad sweep must not stop the others for good
                log.exception("sweep driver tick failed; trying again in %.1fs", interval_s)
            await asyncio.sleep(interval_s)

    async def on_job_finished(self, job_id: str, status: str, error: str | None = None) -> None:
        """A job reached a final state; if it is a sweep's trial, record it and start the next."""
        owner = self.queries.sweep_of_job(job_id)
        if owner is not None:
            await self._step(owner[0], owner[1], (job_id, status, error))


def _has_running(controller: SweepController) -> bool:
    return any(t["state"] == "running" for t in controller.state["trials"].values())
