"""The deployments pages in a real browser against a real ``cairn up`` (docs/ui.md, "Deployments").

One deployment, made the cheapest way the monitor tests make one: a registered model version
deployed with no managed replicas (a replica reports itself through the deployments API, as
``cairn serve`` does), a reference profile, a rule that fires on any traffic, and sampled
requests posted to the deployments service's relay the way a replica's ``HttpRelay`` posts them,
stamped in minute windows a few minutes back (``cairn up`` keeps 1-minute windows, and the
monitor closes a window whose end is past by the clock, so they close within a tick; the last two
windows are shifted so the heatmap shows drift). The admin sees it in its environment, opens it
(replicas, charts, heatmap cells, the fired alert), scales it to 2 and sees the desired count
change live, and rolls it back after a confirm step; a viewer sees no action buttons; axe-core checks both pages.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
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
from cairn.kernel.ids import new_id
from cairn.monitor import profile_table
from cairn.protocol import ARROW_STREAM
from cairn.sdk.deployments import Deployments
from cairn.serving.inference_records import encode_samples
from cairn.serving.sink import InferenceSample

from model_helpers import push_model

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "deploy-ui"
DEPLOYMENT = "scorer"
WINDOWS = 5  # one-minute windows of traffic; the last SHIFTED of them drift
SHIFTED = 2
_batches = itertools.count()


def _samples(start: float, rows: pd.DataFrame, shift: float) -> list[InferenceSample]:
    return [InferenceSample(request_id=f"{DEPLOYMENT}-{start:.0f}-{i}", project=PROJECT, model="scorer", version=1,
                            features=pd.DataFrame({"x1": [float(x1) + shift], "x2": [float(x2)]}),
                            prediction=np.array([i % 2]), latency_ms=4.0 + i % 7, status=500 if i % 10 == 0 else 200,
                            time=start + 1 + i * 0.25, deployment=DEPLOYMENT, replica="ui-test")
            for i, (x1, x2) in enumerate(rows.itertuples(index=False))]


def _seed(up: Up, token: str, client: cairn.Client) -> None:
    rng = np.random.default_rng(22)
    train = pd.DataFrame({"x1": rng.normal(0.0, 1.0, 200), "x2": rng.normal(0.0, 1.0, 200)})
    with httpx.Client(base_url=f"{up.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        run_id = http.post(f"/registry/projects/{PROJECT}/runs", json={}).raise_for_status().json()["id"]
        http.post(f"/registry/projects/{PROJECT}/models", json={"name": "scorer"}).raise_for_status()
        digest = push_model(http, PROJECT)
        for _ in range(2):
            http.post(f"/registry/projects/{PROJECT}/models/scorer/versions",
                      json={"run_id": run_id, "artifact_digest": digest}).raise_for_status()
        Deployments(client).create(PROJECT, DEPLOYMENT, environment="staging", model="scorer", version=1, replicas=0,
                                   sample_rate=1.0)
        Deployments(client).set_version(PROJECT, DEPLOYMENT, 2)  # v1 is then the version to roll back to
        client.set_reference(PROJECT, DEPLOYMENT, client.register_profile(PROJECT, profile_table(train), {"run": run_id}))
        client.add_alert_rule(PROJECT, DEPLOYMENT, name="any traffic", metric="requests", comparison=">=",
                              threshold=1, window="1m", persistence=(1, 1), cooldown_s=0)
        # a replica reporting itself, as `cairn serve --deployment` does when it starts
        http.put(f"/deployments/projects/{PROJECT}/deployments/{DEPLOYMENT}/replicas/{new_id()}",
                 json={"url": "http://127.0.0.1:8931/", "version": 1, "state": "started"}).raise_for_status()
        first = math.floor(time.time() / 60) * 60 - (WINDOWS + 1) * 60  # every window ended a minute ago or more
        for w in range(WINDOWS):
            rows = train.sample(40, random_state=w)
            for data, _ in encode_samples(_samples(first + 60 * w, rows, 3.0 if w >= WINDOWS - SHIFTED else 0.0)):
                http.post(f"/deployments/projects/{PROJECT}/deployments/{DEPLOYMENT}/samples", content=data,
                          headers={"Content-Type": ARROW_STREAM, "X-Cairn-Batch-Id": f"ui.{next(_batches)}"}
                          ).raise_for_status()

        def ready() -> bool:
            windows = http.get(f"/monitor/projects/{PROJECT}/deployments/{DEPLOYMENT}/windows",
                               params={"size": "1m", "since": "1h"}).json()["windows"]
            alerts = http.get(f"/monitor/projects/{PROJECT}/alerts", params={"deployment": DEPLOYMENT}).json()["alerts"]
            return len(windows) == WINDOWS and sum(1 for x in windows if x["drift"]) == WINDOWS and bool(alerts)

        wait(ready, 30, "the monitor to close the windows with drift and fire the rule")


def test_deployments_pages(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    client.ensure_project(PROJECT)
    viewer_token = client.create_token("dora")["token"]
    client.add_member(PROJECT, "dora", "viewer")
    began = time.monotonic()
    _seed(up, admin_token, client)
    print(f"seeded in {time.monotonic() - began:.1f} s")  # speed is printed, never asserted

    with signed_in(pw, tmp_path / "admin-profile", up.url, admin_token) as page:
        page.goto(f"{up.url}/projects/{PROJECT}/deployments")
        staging = page.locator("section.deploy-env", has=page.get_by_role("heading", name="staging"))
        row = staging.locator(f"tr[data-deployment={DEPLOYMENT}]")
        row.wait_for(timeout=30_000)
        assert "v2 (pinned)" in row.inner_text() and "1 of 0 ready" in row.inner_text()
        page.locator(".live-state.state-live").wait_for(timeout=20_000)
        no_violations(page, "deployments")
        shot(page, "deployments", tmp_path)

        row.get_by_role("link", name=DEPLOYMENT).click()
        page.get_by_role("heading", name=f"Deployment {DEPLOYMENT}").wait_for()
        replicas = page.locator("table.deploy-replica-table tbody tr")
        replicas.first.wait_for(timeout=20_000)
        assert "127.0.0.1:8931" in replicas.first.inner_text() and "started" in replicas.first.inner_text()
        page.locator("figure.deploy-chart canvas").nth(2).wait_for(timeout=20_000)  # requests, errors, latency
        assert page.locator("figure.deploy-chart").count() == 3
        cells = page.locator(".drift-cell")
        assert cells.count() == 2 * WINDOWS  # x1 and x2 by five windows
        assert page.locator(".drift-cell", has_text="!").count() >= 1  # x1 drifted in the shifted windows
        alert = page.locator("table.alert-table tbody tr").first
        assert "any traffic" in alert.inner_text() and "firing" in alert.inner_text()
        page.locator(".live-state.state-live").wait_for(timeout=20_000)
        no_violations(page, "deployment")
        shot(page, "deployment", tmp_path)
        cells.first.focus()  # a cell says its figures on focus (and on hover)
        assert page.locator(".drift-readout").inner_text().startswith("x1: no drift, ks p-value")
        # one tab stop for the grid; arrows move between cells (down: x2 in the same window)
        assert page.locator(".drift-cell[tabindex='0']").count() == 1
        page.keyboard.press("ArrowDown")
        assert page.evaluate("document.activeElement.dataset.cell") == "1-0"
        assert page.locator(".drift-readout").inner_text().startswith("x2:")

        # scale to 2 through the page; then a change made elsewhere (the SDK) shows live too
        page.get_by_label("Replicas", exact=True).fill("2")
        page.get_by_role("button", name="Scale").click()
        page.locator(".deploy-desired", has_text="1 of 2 ready").wait_for(timeout=20_000)
        Deployments(client).scale(PROJECT, DEPLOYMENT, 3)
        page.locator(".deploy-desired", has_text="1 of 3 ready").wait_for(timeout=20_000)
        page.get_by_label("Replicas", exact=True).fill("-1")
        page.get_by_role("button", name="Scale").click()
        page.get_by_role("alert").filter(has_text="whole number").wait_for()

        # roll back: a confirm step first, then the version the deployment ran before
        page.get_by_role("button", name="Roll back to v1…").click()
        confirm = page.get_by_role("group", name="Confirm the rollback")
        assert "from v2 to v1" in confirm.inner_text()
        confirm.get_by_role("button", name="Roll back", exact=True).click()
        page.locator("dl.facts dd", has_text="v1 (pinned) (before: v2)").wait_for(timeout=20_000)
        assert client.request("GET", f"/api/v1/deployments/projects/{PROJECT}/deployments/{DEPLOYMENT}")["version"] == 1

    viewer = open_context(pw, tmp_path / "viewer-profile")
    try:
        vpage = viewer.new_page()
        sign_in(vpage, up.url, viewer_token)
        vpage.goto(f"{up.url}/projects/{PROJECT}/deployments/{DEPLOYMENT}")
        vpage.locator("table.deploy-replica-table tbody tr").first.wait_for(timeout=20_000)
        assert vpage.locator(".deploy-actions").count() == 0
        assert vpage.get_by_role("button", name="Scale").count() == 0
        assert vpage.get_by_role("button", name="Roll back").count() == 0
    finally:
        viewer.close()
        Deployments(client).delete(PROJECT, DEPLOYMENT)  # its replica set leaves the shared stack's scheduler
        client.close()
