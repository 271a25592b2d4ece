"""The real adapters of the sweep controller's ports against a real platform: the metric reader
over the metrics service's HTTP API (points logged with the SDK) and the event sink over the
event log (optimistic concurrency on the sweep's subject)."""

from __future__ import annotations

import math
from contextlib import ExitStack
from typing import Any

import pytest
from simulated_scheduler import RecordingSink, SimulatedScheduler, base_doc, new_sweep, objective

import cairn
from cairn.kernel.errors import ConcurrencyConflict
from cairn.kernel.eventlog import EventLog
from cairn.kernel.identity import Signer, load_service_key
from cairn.sdk.run import ActiveRun
from cairn.services.scheduler.sweeps import domain
from cairn.services.scheduler.sweeps.ports import EventLogSink, HttpMetricReader

from platform_harness import Platform


async def test_the_metric_reader_returns_what_the_sdk_logged(platform: Platform) -> None:
    reader = HttpMetricReader(platform.service_url("metrics"), Signer(load_service_key(platform.root / "data"), "scheduler"))
    with cairn.Client(platform.gateway, token=platform.token) as client:
        with cairn.start_run(project="sweepm", client=client, system_metrics=False) as run:
            for step, value in [(0, 3.0), (1, 2.0), (2, math.nan), (3, 1.0), (3, 0.5)]:
                run.log_metric("loss", value, step=step)
            assert run.flush()
            points = await reader.history("sweepm", run.id, "loss")
            assert await reader.history("sweepm", run.id, "nothing") == []
    await reader.close()
    assert [s for s, _ in points] == [0, 1, 2, 3]
    assert points[0] == (0, 3.0) and math.isnan(points[2][1])
    assert points[3] == (3, 0.5)  # at a repeated step the last point counts


class RunBackedScheduler(SimulatedScheduler):
    """The simulated scheduler, but each job's run is a real registry run and its curve is logged
    with the SDK to the real metrics service (the metric port is the real HTTP reader)."""

    def __init__(self, client: cairn.Client, project: str, steps: int, runs: ExitStack) -> None:
        super().__init__(steps=steps)
        self.client, self.project, self.stack = client, project, runs
        self.runs: dict[str, ActiveRun] = {}
        self.logged: dict[str, int] = {}

    async def submit(self, project: str, spec: dict[str, Any], *, idempotency_key: str,
                     tags: dict[str, str]) -> dict[str, str]:
        if idempotency_key not in self.by_key:
            run = cairn.start_run(self.project, client=self.client, params=spec["params"], tags=tags,
                                  system_metrics=False)
            self.runs[idempotency_key] = self.stack.enter_context(run)  # closed (and finished) at the end
        answer = await super().submit(project, spec, idempotency_key=idempotency_key, tags=tags)
        job = self.jobs[answer["job_id"]]
        job.run_id = self.runs[idempotency_key].id
        return {"job_id": job.job_id, "run_id": job.run_id}

    def advance(self) -> list[tuple[str, str]]:
        ended = super().advance()
        for key, job_id in self.by_key.items():
            job = self.jobs[job_id]
            run = self.runs[key]
            for step, value in job.points[self.logged.get(key, 0):]:
                run.log_metric("loss", value, step=step)
            self.logged[key] = len(job.points)
            assert run.flush()
        return ended


async def test_a_sweep_prunes_and_picks_its_best_from_real_metrics(platform: Platform) -> None:
    reader = HttpMetricReader(platform.service_url("metrics"), Signer(load_service_key(platform.root / "data"), "scheduler"))
    with cairn.Client(platform.gateway, token=platform.token) as client, ExitStack() as runs:
        client.ensure_project("sweepr")
        sim = RunBackedScheduler(client, "sweepr", steps=6, runs=runs)
        sink = RecordingSink()
        doc = base_doc(project="sweepr", max_parallel=2, budget={"max_trials": 6},
                       early_stopping={"type": "median", "warmup_trials": 2, "min_steps": 1})
        controller = new_sweep(doc, sim, sink, metrics=reader)
        await controller.tick()
        while controller.status == "running":
            for job_id, status in sim.advance():
                await controller.on_job_finished(job_id, status)
            await controller.tick()
    await reader.close()
    started = [d for t, d in sink.events if t == "sweep.trial_started"]
    assert len(started) == 6 and {d["run_id"] for d in started} == {r.id for r in sim.runs.values()}
    pruned = [d["number"] for t, d in sink.events if t == "sweep.trial_pruned"]
    assert pruned and all(sim.jobs[started[n]["job_id"]].status == "cancelled" for n in pruned)
    best = domain.best_trial(controller.state)
    assert best is not None
    complete = [t for t in controller.state["trials"].values() if t["state"] == "complete"]
    assert best["number"] == min(complete, key=lambda t: objective(t["params"]))["number"]
    assert best["value"] == pytest.approx(objective(best["params"]) + 4.0 / 6)


async def test_the_event_sink_refuses_to_write_over_events_it_has_not_seen(platform: Platform) -> None:
    log = await EventLog.open(platform.nats_url)
    sink = EventLogSink(log)
    created = domain.create_sweep(None, sweep_id="occ", spec=new_sweep(base_doc(), SimulatedScheduler()).spec,
                                  created_at="2026-01-01T00:00:00Z")
    assert created is not None
    first = await sink.append("sweepocc", "occ", [created], expected_sequence=0)
    stopped = await sink.append("sweepocc", "occ", [("sweep.stopped", {"reason": "by the API"})],
                                expected_sequence=first)
    with pytest.raises(ConcurrencyConflict):  # a controller that saw only sweep.created
        await sink.append("sweepocc", "occ", [("sweep.completed", {"reason": "max_trials", "best_trial": None,
                                                                    "best_value": None})], expected_sequence=first)
    later = await sink.append("sweepocc", "occ", [("sweep.stopped", {"reason": "after catching up"})] * 2,
                              expected_sequence=stopped)
    assert later == await log.last_subject_sequence("cairn.evt.sweepocc.sweep.occ") > stopped
    await log.close()
