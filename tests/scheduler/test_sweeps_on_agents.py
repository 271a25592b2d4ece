"""Sweeps run on the scheduler for real: every trial is a job on an agent, its metric is read back
from the trial's run, and the best trial is named."""

from __future__ import annotations

import pytest
from agent_pool import wait_until

from cairn.sdk.client import Client

TRAIN = ("import os, cairn\n"
         "with cairn.start_run() as run:\n"
         "    lr = float(os.environ['CAIRN_PARAM_LR'])\n"
         "    for step in range(3):\n"
         "        run.log_metric('score', lr * (step + 1), step=step)\n"
         "    run.flush()\n")


def test_a_grid_sweep_runs_its_trials_as_jobs_and_names_the_best(
        client: Client, agents, project: str, queue: str) -> None:
    agents.start(queue)
    spec = {"name": "lr-grid", "method": "grid", "metric": {"name": "score", "goal": "maximize"},
            "parameters": {"lr": {"values": [0.1, 0.3]}}, "max_parallel": 2, "budget": {"max_trials": 2},
            "job": {"command": ["python", "-c", TRAIN], "code": None, "queue": queue}}
    base = f"/api/v1/scheduler/projects/{project}/sweeps"
    sweep = client.request("POST", base, json=spec)

    def finished() -> dict | None:
        shown = client.request("GET", f"{base}/{sweep['id']}")
        return shown if shown["status"] != "running" else None

    shown = wait_until(finished, timeout=180, what="the sweep to complete")
    assert shown["status"] == "completed", shown
    assert shown["best_trial"]["params"]["lr"] == 0.3
    assert shown["best_trial"]["value"] == pytest.approx(0.9)
    trials = shown["trials"]
    assert len(trials) == 2 and all(t["state"] == "complete" for t in trials), trials
    jobs = client.list_jobs(project)
    assert len(jobs) == 2 and all(j["status"] == "succeeded" for j in jobs)
