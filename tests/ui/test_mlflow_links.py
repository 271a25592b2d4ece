"""Offline API documents and MLflow's "View run" links, in a real browser against ``cairn up``.

The real MLflow client logs a run and prints ``View run ... at: <URI>/#/experiments/<e>/runs/<r>``;
that URL, opened in Chromium, lands on the run's page in the web UI, and the experiment's URL on
the runs table filtered to it. /docs and /redoc render under the gateway's same-origin
Content-Security-Policy (enforced here, unlike the other browser tests) without asking any
other host for anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from browser_driver import chromium_path, signed_in
from up_driver import Up

import cairn

playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("mlflow", reason="the MLflow client comes with the test extra")
pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed")

PROJECT = "mlflowlinks"
MLFLOW_RUN = textwrap.dedent("""
    import mlflow
    mlflow.set_experiment("linked-experiment")
    with mlflow.start_run(run_name="linked-run"):
        mlflow.log_param("lr", "0.1")
""")


def mlflow_urls(up: Up, token: str, folder: Path) -> tuple[str, str]:
    """The run and experiment URLs the MLflow client prints for a run it logged into PROJECT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CAIRN_"))}
    env.update(MLFLOW_TRACKING_URI=f"{up.url}/mlflow/{PROJECT}", MLFLOW_TRACKING_TOKEN=token,
               MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", GIT_PYTHON_REFRESH="quiet")
    proc = subprocess.run([sys.executable, "-c", MLFLOW_RUN], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_url = re.search(r"View run linked-run at: (\S+)", proc.stdout)
    experiment_url = re.search(r"View experiment at: (\S+)", proc.stdout)
    assert run_url and experiment_url, proc.stdout
    return run_url.group(1), experiment_url.group(1)


def test_mlflow_view_run_links_land_on_the_run_in_the_web_ui(up: Up, pw: Any, tmp_path: Path) -> None:
    token = (up.data_dir / "admin.token").read_text().strip()
    cairn.Client(up.url, token=token).create_project(PROJECT)
    run_url, experiment_url = mlflow_urls(up, token, tmp_path)
    assert run_url.startswith(f"{up.url}/mlflow/{PROJECT}/#/experiments/")
    run_id = run_url.rsplit("/", 1)[1]

    with signed_in(pw, tmp_path / "profile", up.url, token) as page:
        page.goto(run_url)
        page.wait_for_url(f"{up.url}/projects/{PROJECT}/runs/{run_id}")
        page.get_by_text("linked-run").first.wait_for()

        page.goto(experiment_url)
        page.wait_for_url(re.compile(rf"/projects/{PROJECT}/runs\?filter=experiment_id"))
        page.get_by_role("link", name="linked-run").first.wait_for()

        # With the plain tracking URI (the gateway: project `default`) the link is the app's front
        # page with MLflow's fragment; the app takes it to the run in `default`.
        plain = cairn.Client(up.url, token=token).start_new_run("default", name="plain-uri-run")
        page.goto(f"{up.url}/#/experiments/0/runs/{plain['id']}")
        page.wait_for_url(f"{up.url}/projects/default/runs/{plain['id']}")
        page.get_by_text("plain-uri-run").first.wait_for()


def test_api_documents_render_offline_under_the_content_security_policy(up: Up, pw: Any) -> None:
    browser = pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                 args=["--no-sandbox", "--disable-background-networking"])
    try:
        page = browser.new_context().new_page()  # CSP enforced: no bypass here
        blocked: list[str] = []
        elsewhere: list[str] = []
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        # answers from anywhere but this gateway (blob: URLs are made by the page's own scripts)
        page.on("response", lambda r: None if r.url.startswith((up.url, f"blob:{up.url}"))
                else elsewhere.append(r.url))

        page.goto(f"{up.url}/docs")
        page.locator(".swagger-ui .info .title").get_by_text("cairn").wait_for()
        page.locator(".opblock-summary-path", has_text="/api/v1/whoami").first.wait_for()

        page.goto(f"{up.url}/redoc")
        page.get_by_role("heading", name=re.compile("cairn")).first.wait_for()
        page.get_by_text("/api/v1/whoami").first.wait_for(state="attached")

        # ReDoc's side menu shows an image from Redocly's CDN: blocked before any request (and
        # hidden by ReDoc when it fails); anything else blocked is a page that needs fixing.
        blocked = [m for m in blocked if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in m]
        assert not blocked, "\n".join(blocked)
        assert not elsewhere, elsewhere
    finally:
        browser.close()
