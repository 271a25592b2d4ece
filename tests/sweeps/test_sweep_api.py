"""The sweep API and driver over a real nats-server and a real SQLite projection: sweeps are
created and stopped through HTTP, the driver appends trial events to the event log with
optimistic concurrency, and the read model serves the best trial and the table. Jobs and metrics
come from the simulated scheduler (a test double of the scheduler's job port, see
simulated_scheduler.py); the scheduler service wires its real job submission when it includes
this router."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from simulated_scheduler import SimulatedScheduler, base_doc, objective

from cairn.kernel.service import ServiceRuntime, create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.kernel.store import SnapshotProjection, SqliteStore
from cairn.services.registry.project_check import ProjectCheck
from cairn.services.scheduler.sweeps.api import router
from cairn.services.scheduler.sweeps.driver import SweepDriver
from cairn.services.scheduler.sweeps.ports import EventLogSink
from cairn.services.scheduler.sweeps.projection import (
    SWEEP_EVOLVERS,
    SWEEP_HANDLERS,
    SWEEP_SCHEMA,
    SweepQueries,
)

from platform_harness import signed_headers


def _app(nats_url: str, data_dir: Path) -> FastAPI:
    settings = ServiceSettings(nats_url=nats_url, data_dir=data_dir)
    app = create_service_app(
        "scheduler", settings,
        make_store=lambda s: SqliteStore(s.data_dir / "sweeps.sqlite3", SWEEP_SCHEMA),
        handler=SnapshotProjection(SWEEP_EVOLVERS, SWEEP_HANDLERS), routers=[router],
        description="the sweep routes alone, as the scheduler includes them")
    # no registry runs here to say which projects exist (services/registry/project_check.py)
    app.state.project_check = ProjectCheck(known=["demo", "stops", "bad", "idem"])
    return app


@pytest.fixture()
def client(nats_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(_app(nats_url, tmp_path), headers=signed_headers(tmp_path)) as test_client:
        yield test_client


class Harness:
    """Runs driver steps on the app's event loop and waits for the projection after each."""

    def __init__(self, client: TestClient, sim: SimulatedScheduler) -> None:
        self.client, self.sim = client, sim
        self.rt: ServiceRuntime = client.app.state.runtime  # type: ignore[attr-defined]
        self.driver = self.new_driver()

    def new_driver(self) -> SweepDriver:
        """A driver as a freshly started scheduler makes it (no controllers in memory)."""
        return SweepDriver(SweepQueries(self.rt.store), jobs=self.sim, metrics=self.sim, sink=EventLogSink(self.rt.log))

    def _call(self, fn: Any, *args: Any) -> None:
        async def step() -> None:
            await fn(*args)
            await self.rt.runner.wait_for(await self.rt.log.last_sequence())
        self.client.portal.call(step)  # type: ignore[union-attr]

    def round(self) -> None:
        self._call(self.driver.tick)
        for job_id, status in self.sim.advance():
            self._call(self.driver.on_job_finished, job_id, status)


def _create(client: TestClient, doc: dict[str, Any], project: str = "demo") -> dict[str, Any]:
    resp = client.post(f"/projects/{project}/sweeps", json=doc)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_sweep_runs_to_its_budget_survives_a_restart_and_serves_best_and_table(client: TestClient) -> None:
    sim = SimulatedScheduler(steps=6)
    harness = Harness(client, sim)
    doc = base_doc(budget={"max_trials": 6}, max_parallel=2,
                   early_stopping={"type": "median", "warmup_trials": 2, "min_steps": 1})
    sweep = _create(client, doc)
    assert sweep["status"] == "running" and sweep["trial_counts"]["running"] == 0
    for rounds in range(200):
        if rounds == 7:
            harness.driver = harness.new_driver()  # the scheduler restarted: controllers come from the log
        harness.round()
        shown = client.get(f"/projects/demo/sweeps/{sweep['id']}").json()
        if shown["status"] != "running":
            break
    assert shown["status"] == "completed" and shown["reason"] == "max_trials"
    assert len(shown["trials"]) == 6 == len(sim.jobs)  # the restart repeated no trial
    assert sorted(sim.submissions) == sorted(set(sim.submissions))
    complete = [t for t in shown["trials"] if t["state"] == "complete"]
    best = min(complete, key=lambda t: objective(t["params"]))
    assert shown["best_trial"]["number"] == best["number"]
    assert shown["best_trial"]["run_id"] == best["run_id"]

    table = client.get(f"/projects/demo/sweeps/{sweep['id']}/table").json()
    assert table["metric"] == "loss" and table["goal"] == "minimize"
    assert table["dimensions"] == [{"name": "x", "type": "float", "min": -4.0, "max": 6.0, "log": False}]
    assert [r["trial"] for r in table["rows"]] == list(range(6))
    assert {r["state"] for r in table["rows"]} <= {"complete", "pruned"}
    assert all(isinstance(r["params"]["x"], float) and r["loss"] is not None for r in table["rows"])

    listed = client.get("/projects/demo/sweeps", params={"status": "completed"}).json()["sweeps"]
    assert sweep["id"] in [s["id"] for s in listed]

    before = client.get("/admin/content-hash").json()["content_hash"]
    assert client.post("/admin/rebuild").json()["content_hash"] == before


def test_stopping_a_sweep_cancels_its_running_trials(client: TestClient) -> None:
    sim = SimulatedScheduler(steps=50)
    harness = Harness(client, sim)
    sweep = _create(client, base_doc(max_parallel=3, budget={"max_trials": 10}), project="stops")
    for _ in range(3):
        harness.round()
    assert len(sim.running()) == 3
    resp = client.post(f"/projects/stops/sweeps/{sweep['id']}/stop", json={"reason": "looks done"})
    assert resp.status_code == 200 and resp.json()["status"] == "stopped"
    harness.round()  # the driver's controller conflicts or sees the stop, is rebuilt, cancels
    harness.round()
    shown = client.get(f"/projects/stops/sweeps/{sweep['id']}").json()
    assert not sim.running() and len(sim.jobs) == 3
    assert [t["state"] for t in shown["trials"]] == ["cancelled"] * 3
    assert shown["reason"] == "looks done"
    again = client.post(f"/projects/stops/sweeps/{sweep['id']}/stop")
    assert again.status_code == 200 and again.json()["status"] == "stopped"


def test_bad_requests_say_what_to_fix_and_change_nothing(client: TestClient) -> None:
    before = client.get("/projects/bad/sweeps").json()["sweeps"]
    resp = client.post("/projects/bad/sweeps", json=base_doc(metric={"name": "loss", "goal": "down"}))
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid_input" and error["message"].startswith("metric.goal:")
    resp = client.post("/projects/bad/sweeps", json=base_doc(project="elsewhere"))
    assert resp.status_code == 422 and "elsewhere" in resp.json()["error"]["message"]
    assert client.get("/projects/bad/sweeps").json()["sweeps"] == before
    missing = client.get("/projects/bad/sweeps/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    assert client.post("/projects/bad/sweeps/nope/stop").status_code == 404
    assert client.get("/projects/bad/sweeps/nope/table").status_code == 404


def test_a_repeated_create_with_one_idempotency_key_makes_one_sweep(client: TestClient) -> None:
    headers = {"Idempotency-Key": "create-once"}
    first = client.post("/projects/idem/sweeps", json=base_doc(), headers=headers)
    second = client.post("/projects/idem/sweeps", json=base_doc(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(client.get("/projects/idem/sweeps").json()["sweeps"]) == 1
