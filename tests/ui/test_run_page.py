"""The run page in full, in a real browser against a real ``cairn up`` (project ``runrec``).

A run made through the SDK with params, notes (the MLflow tag ``mlflow.note.content``), a
300-point metric, a couple of ``system/...`` samples, a dataset input and a reproducibility
record. The admin edits the notes (a reload shows them), smooths the chart, switches the x axis
to relative time, filters the packages of the record, follows the dataset link and sees the
dataset in the lineage graph, and a job's run links its job; a viewer gets the same page without
the notes' edit button.
axe-core checks the page; the charts, the record and the lineage are photographed (``run-charts``,
``run-record``, ``run-lineage``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from browser_driver import (
    BROWSER_TEST,
    no_violations,
    open_context,
    shot,
    sign_in,
)
from up_driver import Up, wait

import cairn
from cairn.sdk.lineage import Lineage

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "runrec"
NOTE_TAG = "mlflow.note.content"
ENVIRONMENT = {
    "python": {"version": "3.12.4", "implementation": "CPython", "executable": "python3"},
    "os": {"system": "Linux", "release": "6.8.0", "machine": "x86_64", "distribution": "Debian 13"},
    "hostname": "trainer-1",
    "cpu": {"model": "Example CPU", "count": 16},
    "memory_bytes": 64 * 1024 ** 3,
    "gpu": {"devices": [{"name": "NVIDIA H200", "driver": "570.1", "memory_mib": 143771}], "driver": "570.1",
            "cuda_driver": "12.8", "cuda": "12.6", "cudnn": "90100", "source": "nvidia-smi"},
    "packages": ["numpy==2.1.0", "pandas==2.2.3", "scikit-learn==1.6.1", "zstandard==0.23.0"],
    "frameworks": {"numpy": "2.1.0"},
    "env": {"OMP_NUM_THREADS": "4"},
}
CODE = {"commit": "0123456789abcdef0123456789abcdef01234567", "branch": "main", "dirty": True,
        "diff": "diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr = 0.1\n+lr = 0.2\n"}


def seed_run(client: cairn.Client, tmp_path: Path) -> str:
    """The run the page shows, with everything each section reads, through the SDK."""
    run = cairn.start_run(project=PROJECT, experiment="records", name="recorded", params={"lr": "0.2", "depth": "6"},
                          client=client, system_metrics=False, record_environment=False)
    data = tmp_path / "digits"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n3,4\n")
    client.artifacts.push_dataset(PROJECT, "digits", data)
    run.use_dataset("digits")
    run.set_tag(NOTE_TAG, "Baseline with the new schedule.\nSecond line.")
    client.record_run_environment(PROJECT, run.id, environment=ENVIRONMENT, code=CODE,
                                  command=["train.py", "--epochs", "3"], seeds={"seed": 7})
    t0 = 1_700_000_000.0
    for i in range(300):  # a noisy falling curve: smoothing visibly changes it
        run.log_metric("loss", 1.0 / (1 + i / 30) + 0.2 * math.sin(i * 1.7), step=i, timestamp=t0 + i)
    for i, v in enumerate((12.5, 40.0, 33.0)):
        run.log_metric("system/cpu_percent", v, step=i, timestamp=t0 + 100 * i)
    run.flush()
    run.finish()
    # The metrics service and the lineage graph are projections: wait until they have the run.
    summary = f"/api/v1/metrics/projects/{PROJECT}/runs/{run.id}/metrics/summary"
    wait(lambda: {s["key"]: s["count"] for s in client.request("GET", summary)["summaries"]}
         == {"loss": 300, "system/cpu_percent": 3}, 30, "the run's metrics summarised")
    lineage = Lineage(client)

    def dataset_in_graph() -> bool:
        try:
            graph = lineage.graph(PROJECT, f"run:{run.id}", direction="both", depth=2)
        except cairn.ApiError:
            return False
        return any(n["ref"].startswith("dataset:digits@") for n in graph["nodes"])
    wait(dataset_in_graph, 30, "the lineage graph has the run's dataset")
    return run.id


def test_the_run_page(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    run_id = seed_run(client, tmp_path)
    viewer_token = client.create_token("rhea")["token"]
    client.add_member(PROJECT, "rhea", "viewer")
    url = f"{up.url}/projects/{PROJECT}/runs/{run_id}"

    admin = open_context(pw, tmp_path / "admin-profile")
    try:
        page = admin.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, up.url, admin_token)
        page.goto(url)

        # Notes: shown as text with the line break, hidden from the tags table; edited and saved.
        notes = page.locator(".run-notes")
        notes.get_by_text("Second line.").wait_for()
        assert page.locator(".kv", has_text="Tags").get_by_role("rowheader", name=NOTE_TAG).count() == 0
        notes.get_by_role("button", name="Edit notes").click()
        page.get_by_label("Notes (plain text").fill("Edited in the browser.\n<b>not bold</b>")
        notes.get_by_role("button", name="Save notes").click()
        notes.get_by_text("<b>not bold</b>").wait_for()  # kept as text, never parsed as HTML
        assert notes.locator("b").count() == 0
        assert client.get_run(PROJECT, run_id)["tags"][NOTE_TAG] == "Edited in the browser.\n<b>not bold</b>"
        page.reload()
        notes.get_by_text("Edited in the browser.").wait_for()

        # Charts: the training metric and, in their own section, the system metrics.
        loss = page.locator("figure.chart", has_text="300 of 300 points")
        loss.locator("canvas").wait_for()
        system = page.locator("section", has=page.get_by_role("heading", name="System metrics"))
        system.locator("figure.chart", has_text="system/cpu_percent").locator("canvas").wait_for()
        assert page.locator("figure.chart").count() == 2

        # Smoothing: the slider's value shows, and the chart redraws with a smoothed series.
        slider = page.get_by_label("Smoothing")
        slider.fill("0.9")
        page.locator("#run-smoothing-value", has_text="0.90").wait_for()
        assert slider.get_attribute("aria-valuetext") == "0.90"
        page.locator("figure.chart[data-smoothing='0.90']", has_text="300 of 300 points").wait_for()
        loss.get_by_text("loss (smoothed 0.90)").wait_for()
        loss.get_by_text("loss (raw)").wait_for()

        # X axis relative: seconds since the first point (the last loss point is at 299 s).
        page.get_by_label("X axis").select_option("relative")
        loss.get_by_role("img", name="Chart of loss by seconds since first point, smoothed 0.90; drag to zoom").wait_for()
        loss.get_by_text("seconds since first point").first.wait_for()
        page.evaluate("document.querySelector('figure.chart').scrollIntoView()")
        shot(page, "run-charts", tmp_path)

        # The record: collapsible groups, the packages filter, the GPU and the dirty diff summary.
        record = page.locator(".run-record")
        record.locator("summary", has_text="Packages (4)").click()
        page.get_by_label("Filter packages").fill("pan")
        record.get_by_role("rowheader", name="pandas").wait_for()
        assert record.locator(".run-packages tbody tr").count() == 1
        record.locator("summary", has_text="GPU, driver and CUDA").click()
        record.get_by_role("cell", name="NVIDIA H200").wait_for()
        record.locator("summary", has_text="Code").click()
        record.get_by_text("1 file, +1 −1 (train.py)").wait_for()
        record.locator("summary", has_text="Command").click()
        record.get_by_text("train.py --epochs 3").wait_for()

        # Lineage: the dataset is a node of the SVG, and a link to its page.
        svg = page.locator("svg.run-lineage")
        svg.locator("[data-ref^='dataset:digits@']").wait_for()
        assert svg.locator(".run-here[data-ref='run:%s']" % run_id).count() == 1

        no_violations(page, "the run page (admin)")
        page.evaluate("document.getElementById('run-datasets-h').scrollIntoView()")
        shot(page, "run-lineage", tmp_path)
        page.evaluate("document.getElementById('run-record-h').scrollIntoView()")
        shot(page, "run-record", tmp_path)

        # Datasets used: the dataset links to its page.
        page.get_by_role("region", name="Datasets used").get_by_role("link", name="digits", exact=True).click()
        page.wait_for_url(f"**/projects/{PROJECT}/datasets/digits")

        # A job's run (no agent serves the queue, so it stays queued): the page links the job.
        job = client.submit_job({"command": ["python", "-c", "pass"], "code": "none",
                                 "queue": "runrec-nobody", "name": "waiting"}, PROJECT)
        page.goto(f"{up.url}/projects/{PROJECT}/runs/{job['run_id']}")
        section = page.get_by_role("region", name="Job")
        section.locator(".badge", has_text="queued").wait_for()
        section.get_by_role("link", name=job["id"]).click()
        page.wait_for_url(f"**/projects/{PROJECT}/jobs/{job['id']}")
        client.cancel_job(PROJECT, job["id"])  # leave no queued job in the shared stack
        assert not errors, errors
    finally:
        admin.close()

    viewer = open_context(pw, tmp_path / "viewer-profile")
    try:
        page = viewer.new_page()
        sign_in(page, up.url, viewer_token)
        page.goto(url)
        page.locator(".run-notes").get_by_text("Edited in the browser.").wait_for()
        page.locator("figure.chart canvas").first.wait_for()
        page.locator(".run-record summary", has_text="Packages (4)").wait_for()
        # A viewer may read everything and edit nothing: the edit button is not in the DOM at all.
        assert page.get_by_role("button", name="Edit notes").count() == 0
        assert page.locator("#run-note-edit").count() == 0
        no_violations(page, "the run page (viewer)")
    finally:
        viewer.close()
