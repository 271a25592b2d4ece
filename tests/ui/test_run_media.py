"""The run page's Media section in a real browser against a real ``cairn up``.

A run logs images at three steps (numpy arrays, one larger than a thumbnail), a table, text and
HTML with a script through the SDK. The admin opens the run page: the image card's slider moves
between steps (the thumbnail shown changes), a click on the thumbnail shows the image at full
size, the table's rows, the text and the HTML (in a sandboxed frame, where its script does not
run) show, and an image logged while the page is open appears at its new step. axe-core on the
page; screenshot "media"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from browser_driver import BROWSER_TEST, no_violations, open_context, shot, sign_in
from up_driver import Up

import cairn

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "media-ui"
HTML = ('<p><b>bold words</b> from a report</p>'
        '<script>parent.window.__mediaPwned = 1; document.body.innerHTML = "script ran";</script>')


def image(step: int) -> np.ndarray:
    """300x150 RGB, a colour of its own per step (its thumbnail is 256x128)."""
    out = np.zeros((150, 300, 3), dtype=np.uint8)
    out[:, :, step % 3] = 60 + 60 * step
    return out


def natural_width(page: Any, alt: str) -> int:
    return page.get_by_role("img", name=alt, exact=True).evaluate(
        "(i) => new Promise((ok) => i.complete ? ok(i.naturalWidth) : i.addEventListener('load', () => ok(i.naturalWidth)))")


def test_media_section_slider_full_size_table_text_and_sandboxed_html(up: Up, pw: Any, tmp_path: Path) -> None:
    token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=token)
    run = cairn.start_run(PROJECT, client=client, system_metrics=False, record_environment=False)
    for step in range(3):
        run.log_image("samples", image(step), step=step)
    run.log_table("preds", pd.DataFrame({"y": [1, 2], "label": ["cat", "dog"]}))
    run.log_text("notes", "first line\nsecond line")
    run.log_html("report", HTML)

    context = open_context(pw, tmp_path / "media-profile")
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        sign_in(page, up.url, token)
        page.goto(f"{up.url}/projects/{PROJECT}/runs/{run.id}")
        page.get_by_role("heading", name="Media").wait_for()

        samples = page.get_by_role("article", name="Media samples")
        slider = samples.get_by_label("Step", exact=True)
        samples.locator("output").get_by_text("step 2").wait_for()  # the last step first
        assert natural_width(page, "samples at step 2") == 256  # the thumbnail
        slider.focus()
        page.keyboard.press("Home")
        samples.locator("output").get_by_text("step 0").wait_for()
        assert natural_width(page, "samples at step 0") == 256
        samples.get_by_role("button", name="Show samples at step 0 at full size").click()
        full = samples.get_by_role("dialog", name="samples at step 0, full size")
        full.wait_for()
        assert natural_width(page, "samples at step 0, full size") == 300

        table = page.get_by_role("table", name="Table preds at step 0")
        table.get_by_role("columnheader", name=re.compile(r"^label (large_)?string$")).wait_for()
        assert table.locator("tbody td").all_inner_texts() == ["1", "cat", "2", "dog"]
        page.get_by_label("Text notes at step 0").get_by_text("second line").wait_for()

        frame = page.locator("iframe.media-frame")
        frame.wait_for()
        assert frame.get_attribute("sandbox") == ""  # no scripts, an origin of its own
        page.frame_locator("iframe.media-frame").get_by_text("bold words").wait_for()
        assert page.frame_locator("iframe.media-frame").get_by_text("script ran").count() == 0
        assert page.evaluate("window.__mediaPwned") is None

        # live: a new step appears while the page is open, and the card follows it only when it
        # was showing the last step (it shows step 0 now, so it stays; the count grows)
        page.locator(".media .live-state.state-live").wait_for(timeout=30_000)
        run.log_image("samples", image(3), step=3)
        samples.get_by_text("(1 of 4)").wait_for(timeout=30_000)
        slider.focus()
        page.keyboard.press("End")
        samples.locator("output").get_by_text("step 3").wait_for()

        no_violations(page, "the run page's media section")
        samples.get_by_role("button", name="Show samples at step 3 at full size").click()
        natural_width(page, "samples at step 3, full size")
        samples.scroll_into_view_if_needed()
        shot(page, "media", tmp_path)
    finally:
        context.close()
        run.finish()
        client.close()
