"""The web app in a real browser (Debian's Chromium through Playwright) against a real ``cairn up``.

One ``cairn up`` (own data dir, free ports) and two people, each in a browser profile of their
own: the admin (the ``admin.token`` that ``cairn up`` writes) and a viewer (a user token made
through the SDK). The admin signs in, watches a run made through the SDK arrive in the open runs
table, filters, walks the table with the keyboard, opens a run, zooms a chart and signs out; the
viewer signs in and sees the same runs with the viewer role. A second test (same ``cairn up``,
its own project) compares two runs picked with Space, points ``production`` at v1 as the admin
(the viewer's page has no alias controls at all), and follows a real ``cairn agent``'s job log
as it grows. axe-core checks every page (no
serious or critical violations), and the main pages are photographed (written to docs/ui/ only
with ``CAIRN_UI_SCREENSHOTS=1``). Speed is printed, never asserted (benchmarks/bench_ui.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from browser_driver import (
    BROWSER_TEST,
    bundle_gzip_bytes,
    no_violations,
    open_context,
    shot,
    sign_in,
    signed_in,
)
from up_driver import Up, wait

import cairn
from cairn.sdk.client import ApiError
from cairn.sdk.lineage import Lineage

from model_helpers import push_model_folder

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "vision"
# The focused element's outline width in CSS pixels (0 when it has no visible outline).
FOCUS_RING = ("(() => { const s = getComputedStyle(document.activeElement);"
              " return s.outlineStyle === 'none' ? 0 : parseFloat(s.outlineWidth); })()")


def rows(page: Any) -> Any:
    return page.locator("[role=grid] [role=row][id^=run-row-]")


def wait_count(page: Any, n: int) -> None:
    page.locator("p.count", has_text=f"{n:,} runs").wait_for(timeout=30_000)


def test_the_app_in_a_browser(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    for lr in ("0.001", "0.05", "0.3"):
        client.start_new_run(PROJECT, experiment="resnet", name=f"lr-{lr}", params={"lr": lr, "epochs": "10"})
    viewer_token = client.create_token("vera")["token"]
    client.add_member(PROJECT, "vera", "viewer")

    admin = open_context(pw, tmp_path / "admin-profile")
    try:
        page = admin.new_page()
        page.goto(f"{up.url}/")
        page.get_by_label("Cairn token").wait_for()
        no_violations(page, "the sign-in page")
        shot(page, "sign-in", tmp_path)

        sign_in(page, up.url, admin_token)
        page.get_by_role("link", name=PROJECT).wait_for()
        no_violations(page, "the projects page")
        shot(page, "projects", tmp_path)

        # The first page shown: navigation to the runs table's first rows (printed, not asserted).
        t0 = time.perf_counter()
        page.goto(f"{up.url}/projects/{PROJECT}/runs")
        rows(page).first.wait_for()
        first_page_s = time.perf_counter() - t0
        wait_count(page, 3)
        page.locator(".live-state.state-live").wait_for()

        # Live: a run made through the SDK shows without a reload.
        with cairn.start_run(project=PROJECT, experiment="resnet", name="live-one",
                             params={"lr": "0.02"}, client=client) as live:
            live.log_metric("loss", 1.0, step=0)
        page.get_by_role("row").filter(has_text="live-one").wait_for(timeout=30_000)
        wait_count(page, 4)
        no_violations(page, "the runs table")
        shot(page, "runs", tmp_path)

        # Keyboard: Tab reaches the filter, then the grid; arrows move the active row.
        page.get_by_role("button", name="Sign out").focus()
        for _ in range(20):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "run-filter":
                break
        assert page.evaluate("document.activeElement.id") == "run-filter", "Tab never reached the filter"
        assert page.evaluate(FOCUS_RING) >= 3, "the focused filter shows a focus ring"
        page.keyboard.type("params.lr >> 0.01")  # a mistake: the registry's message shows, rows stay
        page.keyboard.press("Escape")
        page.keyboard.press("Enter")
        alert = page.locator("section [role=alert]")
        alert.wait_for()
        assert "expected a quoted string or a number" in alert.inner_text(), alert.inner_text()
        wait_count(page, 4)
        page.keyboard.press("Control+A")
        page.keyboard.type("params.lr > 0.01")
        page.keyboard.press("Escape")  # close a completion list, if one is open
        t0 = time.perf_counter()
        page.keyboard.press("Enter")
        wait_count(page, 3)
        filter_s = time.perf_counter() - t0
        assert alert.count() == 0, "the error went with the mistake"
        names = {r.split("\n")[0] for r in rows(page).all_inner_texts()}
        assert names == {"lr-0.05", "lr-0.3", "live-one"}, names

        grid = page.get_by_role("grid")
        for _ in range(20):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.getAttribute('role')") == "grid":
                break
        assert page.evaluate("document.activeElement.getAttribute('role')") == "grid", "Tab never reached the grid"
        assert page.evaluate(FOCUS_RING) >= 3, "the focused grid shows a focus ring"
        assert grid.get_attribute("aria-activedescendant") == "run-row-0"
        page.keyboard.press("ArrowDown")
        assert grid.get_attribute("aria-activedescendant") == "run-row-1"
        page.keyboard.press("End")
        assert grid.get_attribute("aria-activedescendant") == "run-row-2"
        page.keyboard.press("Home")
        page.keyboard.press("Enter")  # the newest first: the live run
        page.wait_for_url(f"**/projects/{PROJECT}/runs/{live.id}")

        # The run page: params and a chart (the live run has a loss metric).
        page.get_by_role("rowheader", name="lr").wait_for()
        assert page.locator(".kv", has_text="Params").get_by_role("cell", name="0.02").count() == 1
        page.locator("figure.chart canvas").first.wait_for()
        page.goto(f"{up.url}/projects/{PROJECT}/runs")
        wait_count(page, 4)

        # A chart of 1,000 points: a drag zooms, and the request carries the step range.
        with cairn.start_run(project=PROJECT, experiment="resnet", name="long", params={"lr": "0.1"},
                             client=client) as long_run:
            for step in range(1000):
                long_run.log_metric("loss", 1.0 / (step + 1), step=step)
        t0 = time.perf_counter()
        page.goto(f"{up.url}/projects/{PROJECT}/runs/{long_run.id}")
        page.locator("figure.chart", has_text="1,000 of 1,000 points").wait_for(timeout=30_000)
        chart_s = time.perf_counter() - t0
        no_violations(page, "the run page")
        shot(page, "run", tmp_path)
        over = page.locator("figure.chart .u-over").first.bounding_box()
        assert over is not None
        y = over["y"] + over["height"] / 2
        with page.expect_request(lambda r: "step_min=" in r.url and "step_max=" in r.url) as zoomed:
            page.mouse.move(over["x"] + over["width"] * 0.25, y)
            page.mouse.down()
            page.mouse.move(over["x"] + over["width"] * 0.5, y, steps=5)
            page.mouse.up()
        query = dict(p.split("=", 1) for p in zoomed.value.url.split("?", 1)[1].split("&"))
        lo, hi = int(query["step_min"]), int(query["step_max"])
        assert 150 < lo < hi < 600, (lo, hi)
        page.get_by_role("button", name="Reset zoom").wait_for()

        # The viewer: their own profile, the same runs, their role shown.
        with signed_in(pw, tmp_path / "viewer-profile", up.url, viewer_token) as vpage:
            vpage.get_by_role("link", name=PROJECT).click()
            vpage.get_by_text("your role: viewer").wait_for()
            wait_count(vpage, 5)
            assert vpage.evaluate("async () => (await fetch('/api/v1/session')).status") == 200

        # Sign out: the cookie the session had no longer works, even when sent again.
        cookies = [c for c in admin.cookies() if c["name"] == "cairn_session"]
        assert len(cookies) == 1
        page.get_by_role("button", name="Sign out").click()
        page.get_by_label("Cairn token").wait_for()
        assert not [c for c in admin.cookies() if c["name"] == "cairn_session"], "the cookie was cleared"
        admin.add_cookies(cookies)
        status = page.evaluate("async () => (await fetch('/api/v1/session')).status")
        assert status == 401
        wait(lambda: client.whoami()["user"] is not None, 5, "the admin's token to still work")
    finally:
        admin.close()
        client.close()

    bundle = bundle_gzip_bytes()
    print(f"\nUI speed on loopback: first page shown {first_page_s * 1000:.0f} ms; "
          f"filter (5 runs) {filter_s * 1000:.0f} ms; 1,000-point chart {chart_s * 1000:.0f} ms; "
          f"bundle {sum(bundle.values()) / 1024:.1f} KiB gzip")


def start_agent(up: Up, token: str, queue: str, root: Path) -> subprocess.Popen[bytes]:
    """One real ``cairn agent`` on a queue of its own, ready when the scheduler lists it live."""
    log = root / "agent.log"
    argv = [sys.executable, "-m", "cairn.cli.main", "--url", up.url, "agent", "--queue", queue, "--cpus", "1",
            "--memory", "1Gi", "--gpus", "0", "--name", "ui-agent", "--work-dir", str(root / "work"),
            "--token", token, "--grace", "2"]
    env = {**os.environ, "CAIRN_LOG_LEVEL": "warning"}
    env.pop("CAIRN_TOKEN", None)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, start_new_session=True)
    with cairn.Client(up.url, token=token) as client:
        def live() -> bool:
            assert proc.poll() is None, f"the agent exited: {log.read_text()[-3000:]}"
            agents = client.request("GET", "/api/v1/scheduler/agents")["agents"]
            return any(a["name"] == "ui-agent" and a["live"] for a in agents) and "ready" in log.read_text()
        wait(live, 60, "the agent to register")
    return proc


def stop_agent(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# The job prints, then waits (with a deadline of its own) for the test to have seen its first lines
# in the browser, then prints its last line: the log is seen growing while the job runs, and no
# fixed pause decides it.
JOB_SCRIPT = """
import os, sys, time
print("step 1 of 3: loading", flush=True)
time.sleep(0.5)
print("step 2 of 3: training", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
print("step 3 of 3: done", flush=True)
"""


def test_compare_models_and_jobs(up: Up, pw: Any, tmp_path: Path) -> None:
    project = "atlas"
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    made = []
    for lr in ("0.01", "0.1"):
        with cairn.start_run(project=project, experiment="cmp", name=f"lr-{lr}",
                             params={"lr": lr, "epochs": "5"}, client=client) as run:
            for step in range(20):
                run.log_metric("loss", float(lr) * 10 / (step + 1), step=step)
        made.append(run)
    client.create_model(project, "classifier", description="two versions, one per run")
    for run in made:
        digest = push_model_folder(up.url, {"Authorization": f"Bearer {admin_token}"}, project, label=run.id)
        client.create_model_version(project, "classifier", run_id=run.id, artifact_digest=digest)
    lineage = Lineage(client)

    def v1_has_its_run() -> bool:
        try:
            graph = lineage.graph(project, "model:classifier@v1", direction="both", depth=2)
        except ApiError as err:  # 404 until the lineage projection has the version
            if err.status != 404:
                raise
            return False
        return any(n["ref"] == f"run:{made[0].id}" for n in graph["nodes"])

    wait(v1_has_its_run, 30, "the lineage graph has v1's run")
    viewer_token = client.create_token("walt")["token"]
    client.add_member(project, "walt", "viewer")
    agent = start_agent(up, admin_token, "ui-queue", tmp_path)
    admin = open_context(pw, tmp_path / "admin-profile")
    try:
        page = admin.new_page()
        sign_in(page, up.url, admin_token)

        # Compare: Space selects rows in the grid; the link opens the compare page.
        page.goto(f"{up.url}/projects/{project}/runs")
        wait_count(page, 2)
        page.get_by_role("grid").focus()
        page.keyboard.press("Space")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Space")
        page.get_by_text("2 selected").wait_for()
        page.get_by_role("link", name="Compare 2 runs").click()
        page.wait_for_url(f"**/projects/{project}/compare?runs=*")
        page.get_by_role("heading", name="Compare 2 runs").wait_for()
        table = page.locator("table.compare")
        lr_row = table.locator("tr", has=page.get_by_role("rowheader", name="params.lr"))
        lr_row.wait_for()
        assert "differs" in (lr_row.get_attribute("class") or ""), "the differing param is highlighted"
        epochs_row = table.locator("tr", has=page.get_by_role("rowheader", name="params.epochs"))
        assert "differs" not in (epochs_row.get_attribute("class") or "")
        all_rows = table.locator("tbody tr").count()
        page.get_by_label("Only differences").check()
        epochs_row.wait_for(state="detached")
        assert 0 < table.locator("tbody tr").count() < all_rows
        assert lr_row.count() == 1
        page.locator("figure.chart canvas").first.wait_for()  # the overlaid loss chart
        page.locator(".diff-section h3", has_text="Metrics (last values)").wait_for()  # the runs diff
        no_violations(page, "the compare page")
        shot(page, "compare", tmp_path)

        # Models: the admin points production at v1; it and its history show without a reload.
        page.goto(f"{up.url}/projects/{project}/models/classifier")
        form = page.get_by_role("form", name="Point an alias at a version")
        form.wait_for()
        form.get_by_label("Alias", exact=True).fill("production")
        form.get_by_label("Version", exact=True).select_option("1")
        form.get_by_role("button", name="Point production at v1").click()
        page.locator("h3.alias-name", has_text="production").get_by_text("v1").wait_for()
        history = page.get_by_role("list", name="History of production")
        history.get_by_role("listitem").first.wait_for()
        assert history.get_by_role("listitem").count() == 1
        assert page.get_by_role("button", name="Remove alias production").is_visible()
        # The chosen version's lineage: the run it was registered from, drawn as a linked node.
        page.get_by_label("Lineage of version").select_option("1")
        page.locator(f".model-lineage svg [data-ref='run:{made[0].id}']").wait_for()
        no_violations(page, "the model page")
        shot(page, "models", tmp_path)
        page.get_by_role("navigation", name=f"Project {project}").get_by_role("link", name="Models").click()
        page.get_by_role("row").filter(has_text="classifier").filter(has_text="production → v1").wait_for()
        no_violations(page, "the models page")

        # The viewer: the alias is shown, the controls are not in the page at all.
        with signed_in(pw, tmp_path / "viewer-profile", up.url, viewer_token) as vpage:
            vpage.goto(f"{up.url}/projects/{project}/models/classifier")
            vpage.get_by_text("your role: viewer").wait_for()
            vpage.get_by_role("list", name="History of production").get_by_role("listitem").first.wait_for()
            assert vpage.locator("form.alias-form").count() == 0
            assert vpage.locator("#alias-name, #alias-version").count() == 0
            assert vpage.get_by_role("button", name="Remove alias production").count() == 0
            assert vpage.locator("button", has_text="Remove").count() == 0

        # Jobs: the log of a running job grows in the page, then the job succeeds.
        gate = tmp_path / "seen-first-lines"
        job = client.submit_job({"command": [sys.executable, "-c", JOB_SCRIPT, str(gate)], "code": "none",
                                 "queue": "ui-queue", "name": "printer"}, project)
        page.goto(f"{up.url}/projects/{project}/jobs/{job['id']}")
        log = page.locator("pre.log")
        log.filter(has_text="step 2 of 3: training").wait_for(timeout=30_000)
        assert "step 3 of 3" not in log.inner_text(), "the job was still running"
        page.locator("h1 .badge", has_text="running").wait_for(timeout=20_000)
        assert "step 3 of 3" not in log.inner_text(), "the job waits for the gate: still running"
        no_violations(page, "the job page")
        gate.write_text("seen")
        log.filter(has_text="step 3 of 3: done").wait_for(timeout=30_000)
        page.locator("h1 .badge", has_text="succeeded").wait_for(timeout=30_000)
        shot(page, "job", tmp_path)
        page.goto(f"{up.url}/projects/{project}/jobs")
        page.get_by_role("row").filter(has_text="printer").filter(has_text="succeeded").wait_for()
        no_violations(page, "the jobs page")
    finally:
        admin.close()
        client.close()
        stop_agent(agent)
