"""The datasets, experiments and bulk-action pages in a real browser against a real ``cairn up``.

A dataset with two versions pushed through the SDK (the second while its page is open, so it shows
live): the datasets page lists it, the dataset page shows both versions, a version's files, the
runs that used v1 (lineage) and the v1 → v2 diff (an added and a changed file). The admin creates
and renames an experiment in the page and follows its runs link (the runs table opens filtered by
``?filter=``), tags two runs at once and sees the tag column, then archives one with the confirm
step and sees it leave the table, shows archived runs and restores it (and archives and restores
the experiment). A viewer gets none of these write controls (absent from the DOM).
axe-core checks each page; screenshots "datasets", "dataset", "experiments".
"""

from __future__ import annotations

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

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "granary"
T = 30_000


def grid_rows(page: Any) -> Any:
    return page.locator("[role=grid] [role=row][id^=run-row-]")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_datasets_experiments_and_bulk_actions(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    ra = client.start_new_run(PROJECT, experiment="base", name="run-a", params={"lr": "0.1"})
    rb = client.start_new_run(PROJECT, experiment="base", name="run-b", params={"lr": "0.2"})
    client.start_new_run(PROJECT, experiment="other", name="run-c")
    v1 = write_tree(tmp_path / "v1", {"a.txt": "hello", "b.txt": "kept"})
    v2 = write_tree(tmp_path / "v2", {"a.txt": "hello, changed", "b.txt": "kept", "c.txt": "new file"})
    client.artifacts.push_dataset(PROJECT, "corpus", v1, description="first cut")
    client.artifacts.use_dataset(PROJECT, ra["id"], "corpus@v1")
    viewer_token = client.create_token("dora")["token"]
    client.add_member(PROJECT, "dora", "viewer")

    with signed_in(pw, tmp_path / "admin-profile", up.url, admin_token) as page:

        # The dataset page with one version; the second, pushed now, shows without a reload.
        page.goto(f"{up.url}/projects/{PROJECT}/datasets/corpus")
        versions = page.get_by_role("table", name="Versions")
        versions.get_by_role("rowheader", name="v1").wait_for(timeout=T)
        page.locator(".live-state.state-live").wait_for(timeout=T)
        client.artifacts.push_dataset(PROJECT, "corpus", v2, description="second cut")
        versions.get_by_role("rowheader", name="v2").wait_for(timeout=T)

        # v1's files (shown first: the latest at load) and the run that used it (lineage).
        files = page.get_by_role("table", name="Files of v1")
        files.get_by_role("rowheader", name="b.txt").wait_for(timeout=T)
        assert files.get_by_role("rowheader").count() == 2
        page.get_by_role("link", name=ra["id"]).wait_for(timeout=T)
        page.get_by_role("button", name="Show files of v2").click()
        files2 = page.get_by_role("table", name="Files of v2")
        files2.get_by_role("rowheader", name="c.txt").wait_for(timeout=T)
        page.get_by_label("Filter paths").fill("c.t")
        page.get_by_text("1–1 of 1 files").wait_for(timeout=T)
        assert files2.get_by_role("rowheader").all_inner_texts() == ["c.txt"]

        # The diff v1 → v2: c.txt added, a.txt changed, b.txt unchanged.
        diff = page.get_by_role("table", name="Files that differ between v1 and v2")
        diff.wait_for(timeout=T)
        assert "added" in diff.get_by_role("row").filter(has_text="c.txt").inner_text()
        changed = diff.get_by_role("row").filter(has_text="a.txt").inner_text()
        assert "changed" in changed and "+9 B" in changed, changed
        assert diff.get_by_role("row").filter(has_text="b.txt").count() == 0
        summary = page.locator(".dataset-summary").inner_text()
        assert "1 added" in summary and "1 changed" in summary and "1 unchanged" in summary, summary
        no_violations(page, "the dataset page")
        shot(page, "dataset", tmp_path)

        page.get_by_role("link", name="Datasets").click()
        row = page.get_by_role("row").filter(has_text="corpus")
        row.wait_for(timeout=T)
        assert "v2" in row.inner_text() and "3" in row.inner_text()
        no_violations(page, "the datasets page")
        shot(page, "datasets", tmp_path)

        # Experiments: create one in the page, rename it, see it.
        page.get_by_role("link", name="Experiments").click()
        page.get_by_role("rowheader", name="base").wait_for(timeout=T)
        page.locator("#new-exp-name").fill("trial")
        page.locator("#new-exp-desc").fill("a first try")
        page.get_by_role("button", name="Create experiment").click()
        page.get_by_role("rowheader", name="trial").wait_for(timeout=T)
        page.get_by_role("button", name="Edit trial").click()
        page.get_by_role("form", name="Edit trial").get_by_label("Name").fill("trial-renamed")
        page.get_by_role("button", name="Save").click()
        page.get_by_role("rowheader", name="trial-renamed").wait_for(timeout=T)
        assert client.get_experiment_by_name(PROJECT, "trial-renamed")["description"] == "a first try"
        no_violations(page, "the experiments page")
        shot(page, "experiments", tmp_path)
        # Archive (it leaves the list), then show archived ones and restore it.
        page.get_by_role("button", name="Archive trial-renamed").click()
        wait(lambda: page.get_by_role("rowheader", name="trial-renamed").count() == 0, 15, "the experiment left the list")
        page.get_by_label("Show archived experiments").check()
        page.get_by_role("rowheader", name="trial-renamed archived").wait_for(timeout=T)
        page.get_by_role("button", name="Restore trial-renamed").click()
        page.get_by_role("button", name="Archive trial-renamed").wait_for(timeout=T)
        assert not client.get_experiment_by_name(PROJECT, "trial-renamed")["archived"]
        # One made elsewhere (the SDK) appears without a reload.
        client.create_experiment(PROJECT, "from-sdk")
        page.get_by_role("rowheader", name="from-sdk").wait_for(timeout=T)

        # Its runs link: the runs table filtered to the experiment.
        page.get_by_role("link", name="Runs of base").click()
        page.locator("p.count", has_text="2 runs").wait_for(timeout=T)
        assert "filter=" in page.url
        assert sorted(r.split("\n")[0] for r in grid_rows(page).all_inner_texts()) == ["run-a", "run-b"]

        # Bulk: tag both, then archive one (with the confirm step).
        page.get_by_label("Select run-a to compare").check()
        page.get_by_label("Select run-b to compare").check()
        page.get_by_role("button", name="Tag 2 runs…").click()
        page.get_by_label("Tag (key=value)").fill("stage=candidate")
        no_violations(page, "the runs table with the bulk tag form")
        page.get_by_role("button", name="Apply to 2 runs").click()
        page.get_by_text("Tagged 2 runs.").wait_for(timeout=T)
        page.get_by_role("columnheader", name="tags.stage").wait_for(timeout=T)
        assert grid_rows(page).filter(has_text="candidate").count() == 2
        assert client.get_run(PROJECT, rb["id"])["tags"]["stage"] == "candidate"

        page.get_by_role("button", name="Clear selection").click()
        page.get_by_label("Select run-b to compare").check()
        page.get_by_role("button", name="Archive 1 run…").click()
        page.get_by_role("alertdialog", name="Confirm archiving").get_by_role("button", name="Archive 1 run").click()
        page.get_by_text("Archived 1 run.").wait_for(timeout=T)
        page.locator("p.count", has_text="1 runs").wait_for(timeout=T)
        assert [r.split("\n")[0] for r in grid_rows(page).all_inner_texts()] == ["run-a"]
        wait(lambda: bool(client.get_run(PROJECT, rb["id"])["archived"]), 10, "run-b archived")

        # Show archived runs: run-b is back, marked; Restore brings it back for good.
        page.get_by_label("Show archived runs").check()
        page.locator("p.count", has_text="2 runs").wait_for(timeout=T)
        archived_row = grid_rows(page).filter(has_text="run-b")
        assert "archived" in archived_row.inner_text()
        page.get_by_label("Select run-b to compare").check()
        page.get_by_role("button", name="Restore 1 run").click()
        page.get_by_text("Restored 1 run.").wait_for(timeout=T)
        wait(lambda: "archived" not in archived_row.inner_text(), 15, "run-b no longer marked archived")
        assert not client.get_run(PROJECT, rb["id"])["archived"]

    # The viewer: the same pages, no write controls at all.
    viewer = open_context(pw, tmp_path / "viewer-profile")
    try:
        vpage = viewer.new_page()
        sign_in(vpage, up.url, viewer_token)
        vpage.goto(f"{up.url}/projects/{PROJECT}/experiments")
        vpage.get_by_role("rowheader", name="trial-renamed").wait_for(timeout=T)
        vpage.get_by_text("your role: viewer").wait_for()
        assert vpage.locator("form").count() == 0
        assert vpage.get_by_role("button", name="Create experiment").count() == 0
        assert vpage.get_by_role("button").filter(has_text="Edit").count() == 0
        assert vpage.get_by_role("button").filter(has_text="Archive").count() == 0

        vpage.goto(f"{up.url}/projects/{PROJECT}/runs")
        vpage.locator("p.count", has_text="3 runs").wait_for(timeout=T)
        vpage.get_by_label("Select run-a to compare").check()
        vpage.get_by_text("1 selected").wait_for()
        assert vpage.locator(".bulk").count() == 0
        assert vpage.get_by_role("button").filter(has_text="Tag").count() == 0
        assert vpage.get_by_role("button").filter(has_text="Archive").count() == 0
        assert vpage.get_by_role("button").filter(has_text="Restore").count() == 0

        vpage.goto(f"{up.url}/projects/{PROJECT}/datasets/corpus")
        vpage.get_by_role("table", name="Files of v2").wait_for(timeout=T)
        no_violations(vpage, "the dataset page (viewer)")
    finally:
        viewer.close()
        client.close()
