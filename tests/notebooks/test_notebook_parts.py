"""The pure parts of notebook runs, without a kernel or a platform: secret scrubbing, stripping,
the cell-by-cell diff, and reading a Jupyter server's sessions answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cairn.sdk.code_snapshot import diff_snapshots
from cairn.sdk.notebook import session_path, strip_notebook
from cairn.sdk.notebook_diff import diff_notebooks, load_cells
from cairn.sdk.notebook_secrets import REDACTED, scrub_output, scrub_text


@pytest.mark.parametrize("leak", [
    "cairn_0123456789ab_" + "x" * 43,
    "AKIAABCDEFGHIJKLMNOP",
    "ghp_" + "a1" * 18,
    "glpat-" + "b2" * 10,
    "hf_" + "c3" * 15,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXNpZ24",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt\n-----END OPENSSH PRIVATE KEY-----",
])
def test_token_shapes_are_redacted(leak: str) -> None:
    scrubbed = scrub_text(f"before {leak} after")
    assert leak not in scrubbed and REDACTED in scrubbed and scrubbed.startswith("before ")


def test_labelled_values_and_url_passwords_lose_the_value_and_keep_the_label() -> None:
    assert scrub_text("password=hunter22 ok") == f"password={REDACTED} ok"
    assert scrub_text('api_key: "abcd1234efgh"') == f'api_key: "{REDACTED}"'
    assert scrub_text("postgres://bob:pa55word@db:5432/x") == f"postgres://bob:{REDACTED}@db:5432/x"
    assert scrub_text("loss=0.25 accuracy=0.91 step 3") == "loss=0.25 accuracy=0.91 step 3"


def test_secret_looking_environment_values_are_redacted_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_PASSWORD", "Tr0ub4dor&3")
    monkeypatch.setenv("BATCH_SIZE", "Tr0ub4dor&3-not-secret-by-name")
    assert scrub_text("connected with Tr0ub4dor&3.") == f"connected with {REDACTED}."


def test_scrub_output_joins_multiline_text_and_keeps_images() -> None:
    out = scrub_output({"output_type": "display_data", "metadata": {},
                        "data": {"text/plain": ["key AKIAABCDEFGH", "IJKLMNOP\n"], "image/png": "iVBORw0KGgo="}})
    assert out["data"] == {"text/plain": f"key {REDACTED}\n", "image/png": "iVBORw0KGgo="}


def _nb(*cells: tuple[str, str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"cells": [{"cell_type": t, "source": s, "metadata": {"execution": {"t": 1}}, "outputs": o,
                       "execution_count": 4} if t == "code" else {"cell_type": t, "source": s, "metadata": {}}
                      for t, s, o in cells],
            "metadata": {"widgets": {"state": "x"}}, "nbformat": 4, "nbformat_minor": 5}


def test_stripping_drops_outputs_counts_timings_and_widget_state() -> None:
    nb = _nb(("code", "print(1)", [{"output_type": "stream", "name": "stdout", "text": "1\n"}]), ("markdown", "m", []))
    stripped = strip_notebook(nb, outputs=False)
    assert stripped["cells"][0] == {"cell_type": "code", "source": "print(1)", "metadata": {}, "outputs": [],
                                    "execution_count": None}
    assert "widgets" not in stripped["metadata"] and nb["metadata"]["widgets"]  # the input is left alone
    assert strip_notebook(nb, outputs=True)["cells"][0]["outputs"][0]["text"] == "1\n"


def test_the_diff_pairs_cells_by_content_and_compares_outputs_only_when_both_kept() -> None:
    out = [{"output_type": "stream", "name": "stdout", "text": "0.5\n"}]
    a = load_cells(json.dumps(_nb(("code", "a = 1", []), ("code", "b = 2\nprint(b)", out))).encode())
    b = load_cells(json.dumps(_nb(("code", "a = 1", []), ("code", "new()", []),
                                  ("code", "b = 3\nprint(b)", [{**out[0], "text": "0.7\n"}]))).encode())
    diff = diff_notebooks(a, b)
    assert "@@ cell 1" not in diff  # unchanged
    assert "@@ (no cell) -> cell 2 (code) @@\n@@ -0,0 +1 @@\n+new()\n" in diff  # inserted, not a change of cell 2
    assert "@@ cell 2 -> cell 3 (code) @@\n@@ -1,2 +1,2 @@\n-b = 2\n+b = 3\n print(b)\n" in diff
    assert "outputs:\n@@ -1 +1 @@\n-0.5\n+0.7\n" in diff  # both notebooks kept outputs: compared
    stripped_b = [{**c, "outputs": None} for c in b]
    assert "outputs:" not in diff_notebooks(a, stripped_b) and "0.5" not in diff_notebooks(a, stripped_b)


def test_a_notebook_inside_a_work_tree_snapshot_diffs_by_cell() -> None:
    old = {"nb.ipynb": json.dumps(_nb(("code", "x = 1", []))).encode(), "t.py": b"a\n"}
    new = {"nb.ipynb": json.dumps(_nb(("code", "x = 2", []))).encode(), "t.py": b"b\n"}
    diff = diff_snapshots(old, new)
    assert "--- a/nb.ipynb\n+++ b/nb.ipynb\n@@ cell 1 -> cell 1 (code) @@\n" in diff and "+x = 2\n" in diff
    assert "--- a/t.py" in diff and '"source"' not in diff


def test_session_path_finds_this_kernels_notebook_under_the_server_root(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "train.ipynb").write_text("{}")
    sessions = [{"path": "other.ipynb", "kernel": {"id": "k1"}}, {"path": "work/train.ipynb", "kernel": {"id": "k2"}}]
    assert session_path(sessions, "k2", str(tmp_path)) == (tmp_path / "work" / "train.ipynb").resolve()
    assert session_path(sessions, "k1", str(tmp_path)) is None  # listed, but not on disk
    assert session_path(sessions, "k3", str(tmp_path)) is None
