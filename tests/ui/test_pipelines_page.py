"""The pipelines pages in a real browser against a real ``cairn up`` (docs/ui.md, "Pipelines").

A pipeline of two approval steps (``check``, then ``release`` which needs it) is the cheapest
real run: approvals need no agent, and ``cairn up``'s engine asks for each approval itself. The
admin sees the run listed, opens it, sees the DAG by level with each step's state in words, a
viewer sees the same run with no Approve/Reject/Cancel buttons (only who may decide), then the
admin approves ``check`` on the page and watches the engine's next move (``release`` waiting for
approval) arrive live; ``release`` approved through the API turns the run succeeded on the open
page without a reload. axe-core checks both pages; the run page is photographed ("pipeline").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
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

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "pipes-ui"
T = 30_000
DEFINITION = """\
name: release
params: {threshold: 0.5}
steps:
  - id: check
    approval: {role: admin, message: are the numbers right?}
  - id: release
    needs: [check]
    approval: {role: admin, message: ship it?}
"""


def _step_state(http: httpx.Client, run_id: str, step: str) -> str:
    view = http.get(f"/pipelines/projects/{PROJECT}/runs/{run_id}").raise_for_status().json()
    return next(s["state"] for s in view["steps"] if s["id"] == step)


def test_pipeline_run_page(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    client.ensure_project(PROJECT)
    viewer_token = client.create_token("pipe-viewer")["token"]
    client.add_member(PROJECT, "pipe-viewer", "viewer")
    http = httpx.Client(base_url=f"{up.url}/api/v1", headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)
    run_id = http.post(f"/pipelines/projects/{PROJECT}/runs", json={"pipeline": DEFINITION}).raise_for_status().json()["id"]
    wait(lambda: _step_state(http, run_id, "check") == "waiting_approval", 30, "the engine to ask for check's approval")
    run_url = f"{up.url}/projects/{PROJECT}/pipelines/{run_id}"

    try:
        viewer = open_context(pw, tmp_path / "viewer-profile")
        try:
            vpage = viewer.new_page()
            sign_in(vpage, up.url, viewer_token)
            vpage.goto(run_url)
            vpage.locator("li.dag-step.step-waiting_approval", has_text="check").wait_for(timeout=T)
            assert vpage.get_by_role("button", name="Approve check").count() == 0
            assert vpage.get_by_role("button", name="Reject check").count() == 0
            assert vpage.get_by_role("button", name="Cancel run").count() == 0
            assert vpage.locator("form.decide").count() == 0
            assert "Waiting for someone with role admin or higher (yours: viewer)" in vpage.locator("#step-check").inner_text()
        finally:
            viewer.close()

        with signed_in(pw, tmp_path / "admin-profile", up.url, admin_token) as page:
            page.goto(f"{up.url}/projects/{PROJECT}/pipelines")
            row = page.get_by_role("row", name=run_id)
            row.wait_for(timeout=T)
            assert "release" in row.inner_text() and "running" in row.inner_text()
            no_violations(page, "pipelines")

            row.get_by_role("link", name=run_id).click()
            page.get_by_role("heading", name=f"Pipeline release run {run_id}").wait_for(timeout=T)
            dag = page.get_by_role("list", name="Steps by level")
            check = dag.locator("li.dag-step", has_text="check")
            release = dag.locator("li.dag-step", has_text="release")
            check.locator(".dag-state", has_text="waiting approval").wait_for(timeout=T)
            assert release.locator(".dag-state").inner_text() == "pending"
            assert "← check" in release.inner_text()  # its edge, read from the run's start event
            assert [t.strip() for t in dag.locator(".dag-level-name").all_inner_texts()] == ["level 0", "level 1"]
            assert page.get_by_role("button", name="Cancel run").is_visible()
            page.locator(".live-state.state-live").wait_for(timeout=T)
            no_violations(page, "pipeline run")
            shot(page, "pipeline", tmp_path)

            # approve on the page; the engine's next move (release waits) arrives by the stream
            page.get_by_label("Comment on step check").fill("numbers checked")
            page.get_by_role("button", name="Approve check").click()
            page.locator("li.dag-step.step-succeeded", has_text="check").wait_for(timeout=T)
            page.locator("li.dag-step.step-waiting_approval", has_text="release").wait_for(timeout=T)
            assert "admin" in page.locator("#step-check").inner_text()  # decided by, with the role
            assert page.get_by_role("button", name="Approve check").count() == 0
            # a decision made elsewhere (the API) shows without a reload, down to the run's status
            http.post(f"/pipelines/projects/{PROJECT}/runs/{run_id}/steps/release/approve",
                      json={"comment": "ship"}).raise_for_status()
            page.locator("li.dag-step.step-succeeded", has_text="release").wait_for(timeout=T)
            page.locator("h1 .badge.status-succeeded").wait_for(timeout=T)
            assert page.get_by_role("button", name="Cancel run").count() == 0
            events = http.get(f"/pipelines/projects/{PROJECT}/runs/{run_id}/events").json()["events"]
            granted = [e["data"] for e in events if e["type"] == "approval.granted"]
            assert [(g["step"], g["comment"]) for g in granted] == [("check", "numbers checked"), ("release", "ship")]
    finally:
        http.close()
        client.close()
