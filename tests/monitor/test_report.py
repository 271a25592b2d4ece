"""The HTML drift report is one page, parses, escapes names and marks the drifted columns."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pyarrow as pa

from cairn.monitor import profile_table
from cairn.monitor.drift import dataset_drift
from cairn.monitor.report import drift_html


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self.tags: list[str] = []
        self.external: list[str] = []
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and "data-column" in found:
            self.rows[found["data-column"] or ""] = found.get("data-drifted") or ""
        if tag == "svg":
            self.svgs += 1
        if tag in ("script", "link", "img", "iframe") or found.get("src"):
            self.external.append(tag)


def test_report_marks_drifted_columns_and_escapes_names() -> None:
    rng = np.random.default_rng(3)
    odd = '<b>"amount"&</b>'
    reference = pa.table({odd: rng.normal(0, 1, 600), "steady": rng.normal(0, 1, 600),
                          "kind": rng.choice(["a", "b"], 600)})
    current = pa.table({odd: rng.normal(3, 1, 600), "steady": rng.normal(0, 1, 600),
                        "kind": rng.choice(["a", "b", "<new>"], 600)})
    ref = profile_table(reference)
    cur = profile_table(current, reference=ref)
    page = drift_html(dataset_drift(ref, cur), ref, cur, title="fraud <v3>")
    parser = _Page()
    parser.feed(page)
    assert parser.rows == {odd: "true", "steady": "false", "kind": "true"}
    assert parser.svgs == 3 and parser.external == []
    assert "<b>" not in page and "fraud &lt;v3&gt;" in page
    assert "b" not in parser.tags  # the column name did not become markup
