"""The compare page's parallel coordinates and full run diff, the sweep pages and the agents page,
in a real browser (Debian's Chromium through Playwright) against the shared real ``cairn up``.

Project ``u9`` of its own: two runs with different params, metrics, packages and code records are
compared (two polylines, the diff's sections); a sweep made through REST whose trials wait on a
queue no agent serves (so they exist as queued jobs without running) shows its trial table and
plot, and a stop made through the API while the page is open shows without a reload; a real
``cairn agent`` is listed on the agents page. A viewer gets no Stop button. axe-core on each page.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from browser_driver import (
    BROWSER_TEST,
    no_violations,
    open_context,
    shot,
    sign_in,
    signed_in,
)
from up_driver import Up, wait

import cairn
from cairn.sdk.code_snapshot import snapshot_code, upload_snapshot

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "u9"
AGENT = "u9-agent"


def env(numpy: str, extra: dict[str, str]) -> dict[str, Any]:
    return {"python": {"version": "3.11.7"}, "packages": [f"numpy=={numpy}", *[f"{k}=={v}" for k, v in extra.items()]],
            "cpu": {"model": "test cpu", "count": 2}, "hostname": "u9-host"}


def code_record(client: cairn.Client, root: Path, lr: str) -> dict[str, Any]:
    """A real code snapshot (a folder outside git), uploaded into the project: its record."""
    folder = root / f"code-{lr}"
    folder.mkdir(parents=True)
    (folder / "train.py").write_text(f"import cairn\n\nLR = {lr}\nEPOCHS = 5\n")
    if lr == "0.1":
        (folder / "README.txt").write_text("the second run's notes\n")
    return upload_snapshot(client, PROJECT, snapshot_code(folder, root / f"archive-{lr}"))


def seed_runs(client: cairn.Client, root: Path) -> list[str]:
    ids = []
    for lr, opt, numpy, extra in (("0.01", "adam", "2.1.0", {"scipy": "1.14.0"}),
                                  ("0.1", "sgd", "2.2.0", {"pandas": "2.2.3"})):
        with cairn.start_run(project=PROJECT, experiment="cmp", name=f"lr-{lr}", client=client,
                             params={"lr": lr, "opt": opt, "epochs": "5"}, record_environment=False,
                             system_metrics=False) as run:
            for step in range(10):
                run.log_metric("loss", float(lr) * 10 / (step + 1), step=step)
        client.record_run_environment(PROJECT, run.id, environment=env(numpy, extra),
                                      code=code_record(client, root, lr),
                                      command=["python", "train.py", f"--lr={lr}"])
        ids.append(run.id)
    return ids


def start_agent(up: Up, token: str, root: Path) -> subprocess.Popen[bytes]:
    """One real ``cairn agent`` on a queue of its own, ready when the scheduler lists it live."""
    log = root / "agent.log"
    argv = [sys.executable, "-m", "cairn.cli.main", "--url", up.url, "agent", "--queue", "u9-queue", "--cpus", "1",
            "--memory", "1Gi", "--gpus", "0", "--name", AGENT, "--work-dir", str(root / "work"),
            "--token", token, "--grace", "2"]
    environ = {**os.environ, "CAIRN_LOG_LEVEL": "warning"}
    environ.pop("CAIRN_TOKEN", None)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=environ, start_new_session=True)
    with cairn.Client(up.url, token=token) as client:
        def live() -> bool:
            assert proc.poll() is None, f"the agent exited: {log.read_text()[-3000:]}"
            agents = client.request("GET", "/api/v1/scheduler/agents")["agents"]
            return any(a["name"] == AGENT and a["live"] for a in agents) and "ready" in log.read_text()
        wait(live, 60, "the agent to register")
    return proc


def test_compare_sweeps_and_agents(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    a, b = seed_runs(client, tmp_path)
    base = f"/api/v1/scheduler/projects/{PROJECT}/sweeps"
    doc = {"name": "lr-search", "method": "random", "seed": 3, "metric": {"name": "loss", "goal": "minimize"},
           "parameters": {"lr": {"type": "float", "min": 1e-4, "max": 0.1, "log": True},
                          "opt": {"values": ["adam", "sgd"]}},
           "max_parallel": 2, "budget": {"max_trials": 6},
           "job": {"command": "python train.py", "queue": "u9-nobody"}}  # no agent serves it: trials stay queued
    sweep = client.request("POST", base, json=doc)
    sweep_url = f"{base}/{sweep['id']}"
    wait(lambda: len(client.request("GET", sweep_url)["trials"]) == 2, 60, "the sweep's first two trials")
    viewer_token = client.create_token("u9-viewer")["token"]
    client.add_member(PROJECT, "u9-viewer", "viewer")
    agent = start_agent(up, admin_token, tmp_path)
    try:
        browse(up, pw, tmp_path, client, admin_token, viewer_token, (a, b), doc, sweep)
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=20)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def browse(up: Up, pw: Any, tmp_path: Path, client: cairn.Client, admin_token: str, viewer_token: str,
           runs: tuple[str, str], doc: dict[str, Any], sweep: dict[str, Any]) -> None:
    a, b = runs
    base = f"/api/v1/scheduler/projects/{PROJECT}/sweeps"
    sweep_url = f"{base}/{sweep['id']}"
    with signed_in(pw, tmp_path / "admin-profile", up.url, admin_token) as page:

        # Compare: two polylines over the differing params (lr, opt) and the metric; the full diff.
        page.goto(f"{up.url}/projects/{PROJECT}/compare?runs={a},{b}")
        plot = page.locator("figure.parcoords svg")
        plot.wait_for()
        assert plot.locator("path.pc-line").count() == 2
        names = plot.locator(".pc-name").all_text_contents()
        assert names == ["lr", "opt", "loss"], names  # epochs is the same for both: no axis
        plot.get_by_role("link").first.focus()
        page.locator(".pc-readout", has_text="lr-0.01: lr 0.01, opt adam, loss").wait_for()
        for title in ("Params", "Code", "Environment", "packages", "Metrics (last values)", "Command"):
            page.locator(".diff-section h3", has_text=title).first.wait_for()
        packages = page.locator(".diff-section", has=page.locator("h3", has_text="packages"))
        for name, change in (("numpy", "version changed"), ("scipy", "removed"), ("pandas", "added")):
            assert change in packages.locator("tr", has=page.get_by_role("rowheader", name=name)).inner_text()
        code = page.locator(".diff-section", has=page.locator("h3", has_text="Code"))
        archive_row = code.locator("tr", has=page.get_by_role("rowheader", name="archive_digest"))
        assert "differs" in (archive_row.get_attribute("class") or "")
        # the file-by-file diff, made in the browser from the two archives, with line numbers
        udiff = code.get_by_role("region", name="Code: unified diff")
        udiff.locator("tr.compare-udiff-add", has_text="+LR = 0.1").wait_for()
        assert udiff.locator("tr.compare-udiff-del", has_text="-LR = 0.01").locator("td").first.inner_text() == "3"
        assert udiff.locator("tr.compare-udiff-add", has_text="+LR = 0.1").locator("td").nth(1).inner_text() == "3"
        udiff.locator("tr.compare-udiff-file", has_text="+++ b/README.txt").wait_for()
        no_violations(page, "the compare page")
        page.locator("figure.parcoords").scroll_into_view_if_needed()
        shot(page, "compare-parallel", tmp_path)

        # Sweeps: the list, then the sweep's trial table and plot; a stop through the API shows live.
        page.goto(f"{up.url}/projects/{PROJECT}/sweeps")
        row = page.locator("table.sweeps tbody tr", has_text="lr-search")
        row.wait_for()
        assert "minimize loss" in row.inner_text() and "running" in row.inner_text()
        no_violations(page, "the sweeps page")
        row.get_by_role("link", name="lr-search").click()
        page.wait_for_url(f"**/sweeps/{sweep['id']}")
        trials = page.locator("table.sweep-trials tbody tr")
        trials.nth(1).wait_for()
        assert trials.count() == 2
        assert page.locator("figure.parcoords path.pc-line").count() == 2
        header = page.locator("table.sweep-trials th", has=page.locator("button.sweep-sort", has_text="loss"))
        assert header.get_attribute("aria-sort") == "ascending"  # best first for a minimized objective
        header.get_by_role("button").click()  # a second click flips the order
        page.locator("table.sweep-trials th[aria-sort=descending]", has_text="loss").wait_for()
        page.get_by_role("button", name="Stop sweep").wait_for()
        page.locator("p.count .state-live").wait_for()
        no_violations(page, "the sweep page")
        shot(page, "sweep", tmp_path)
        client.request("POST", f"{sweep_url}/stop", json={"reason": "stopped by the test"})
        page.locator(".facts dd", has_text="stopped (stopped by the test)").wait_for(timeout=30_000)
        assert page.get_by_role("button", name="Stop sweep").count() == 0

        # Agents: the real agent, its queue and state; a second sweep's trials wait on a queue no agent serves.
        again = client.request("POST", base, json={**doc, "name": "lr-search-2"})
        wait(lambda: len(client.request("GET", f"{base}/{again['id']}")["trials"]) == 2, 60, "the second sweep's trials")
        page.goto(f"{up.url}/agents")
        agent_row = page.locator("table.agents tbody tr", has=page.get_by_role("rowheader", name=AGENT))
        agent_row.wait_for()
        assert "u9-queue" in agent_row.inner_text() and "idle" in agent_row.inner_text()
        page.locator("table.agent-queues tr", has=page.get_by_role("rowheader", name="u9-queue")).wait_for()
        starved = page.locator("table.agent-queues tr", has=page.get_by_role("rowheader", name="u9-nobody"))
        starved.wait_for()
        assert "2 (no agent serves it)" in starved.inner_text()
        no_violations(page, "the agents page")
        shot(page, "agents", tmp_path)

    # A viewer sees the sweep but gets no Stop button (a fresh sweep, still running).
    viewer = open_context(pw, tmp_path / "viewer-profile")
    try:
        page = viewer.new_page()
        sign_in(page, up.url, viewer_token)
        page.goto(f"{up.url}/projects/{PROJECT}/sweeps/{again['id']}")
        page.get_by_text("your role: viewer").wait_for()
        page.locator(".facts dd.sweep-state-running").wait_for()
        assert page.get_by_role("button", name="Stop sweep").count() == 0
    finally:
        viewer.close()
        client.request("POST", f"{base}/{again['id']}/stop", json={})
