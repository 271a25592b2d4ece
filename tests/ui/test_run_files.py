"""The run page's code snapshot and artifact browsers in a real browser against a real ``cairn up``.

A run made through the SDK gets a code snapshot (a small git repository, snapshotted and uploaded
as the SDK does) and artifacts: notes.txt, config.json, a tiny PNG, a CSV, a Parquet file and a
model directory with an MLflow ``MLmodel`` carrying a signature. The admin opens the run page,
browses the code tree and opens a file (line numbers), opens each artifact and sees its preview
(text, formatted JSON, the image decoded, table rows, the signature's columns), downloads a file
(200, the same bytes), and sees an artifact logged while the page is open appear live. A viewer
sees the same browsers (they have no write controls at all). axe-core on the page; screenshot
"artifacts"."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from browser_driver import (
    BROWSER_TEST,
    no_violations,
    open_context,
    shot,
    sign_in,
    signed_in,
)
from up_driver import Up

import cairn
from cairn.sdk.code_snapshot import snapshot_code, upload_snapshot

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "files-ui"
MLMODEL = """artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
signature:
  inputs: '[{"type": "double", "name": "sepal_length", "required": true}, {"type": "string",
    "name": "species_hint", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
"""


def tiny_png(width: int = 48, height: int = 32) -> bytes:
    """An RGB PNG written by hand (no imaging library here): a red-to-blue gradient."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"".join(bytes((255 - 5 * x, 4 * y, 5 * x)) for x in range(width))
                   for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_run(client: cairn.Client, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    run = client.start_new_run(PROJECT, experiment="files", name="with-files")
    repo = tmp_path / "repo"
    (repo / "lib").mkdir(parents=True)
    (repo / "train.py").write_text("from lib.util import scale\n\nprint(scale(2))\n")
    (repo / "lib" / "util.py").write_text("def scale(x):\n    return 3 * x\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    code = upload_snapshot(client, PROJECT, snapshot_code(repo, tmp_path / "snap"))
    client.record_run_environment(PROJECT, run["id"], code=code)

    out = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "score": [0.5, 0.25, 0.125]}), out)
    files = {"notes.txt": b"first line of the notes\nsecond line\n",
             "config.json": json.dumps({"lr": 0.01, "layers": [64, 32]}).encode(),
             "plot.png": tiny_png(),
             "metrics.csv": b"epoch,loss\n0,0.9\n1,0.4\n2,0.2\n",
             "scores.parquet": out.getvalue()}
    arts = tmp_path / "arts"
    arts.mkdir()
    for name, data in files.items():
        (arts / name).write_bytes(data)
        client.artifacts.log_artifact(PROJECT, run["id"], arts / name, name)
    model = arts / "model"
    model.mkdir()
    (model / "MLmodel").write_text(MLMODEL)
    (model / "model.pkl").write_bytes(b"\x80\x04not really a pickle")
    client.artifacts.log_artifact(PROJECT, run["id"], model, "model")
    return run["id"], files


def open_artifact(page: Any, path: str) -> Any:
    """Select a file in the artifacts tree; the preview section of that file."""
    page.get_by_role("table", name="Artifact files").get_by_role("button", name=path.split("/")[-1], exact=True).click()
    return page.get_by_role("region", name=f"Preview of {path}")


def test_code_and_artifact_browsers(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    run_id, files = make_run(client, tmp_path)
    viewer_token = client.create_token("files-viewer")["token"]
    client.add_member(PROJECT, "files-viewer", "viewer")
    run_url = f"{up.url}/projects/{PROJECT}/runs/{run_id}"

    admin = open_context(pw, tmp_path / "admin-profile")
    try:
        page = admin.new_page()
        page.set_default_timeout(15_000)
        sign_in(page, up.url, admin_token)
        page.goto(run_url)

        # Code: the snapshot's tree, a folder opened, a file shown with line numbers.
        code = page.get_by_role("table", name="Code snapshot files")
        code.get_by_role("button", name="train.py", exact=True).click()
        source = page.get_by_label("Source of train.py")
        source.wait_for()
        assert source.locator(".files-line").count() == 3
        assert "print(scale(2))" in source.inner_text()
        code.get_by_role("button", name="lib/").click()
        code.get_by_role("button", name="util.py", exact=True).click()
        page.get_by_label("Source of lib/util.py").get_by_text("return 3 * x").wait_for()

        # Artifacts: each preview.
        notes = open_artifact(page, "notes.txt")
        notes.get_by_text("second line").wait_for()
        config = open_artifact(page, "config.json")
        pretty = config.get_by_label("JSON of config.json")
        pretty.wait_for()
        assert pretty.inner_text().strip() == json.dumps({"lr": 0.01, "layers": [64, 32]}, indent=2)
        image = open_artifact(page, "plot.png").get_by_role("img", name="Image artifact plot.png")
        image.wait_for()
        page.wait_for_function("() => { const i = document.querySelector('img.files-image');"
                               " return i && i.complete && i.naturalWidth === 48; }", timeout=20_000)
        csv = open_artifact(page, "metrics.csv")
        csv.get_by_text("The first 3 of 3 rows.").wait_for()
        assert csv.locator("tbody tr").nth(1).inner_text().split() == ["1", "0.4"]
        parquet = open_artifact(page, "scores.parquet")
        parquet.get_by_role("columnheader", name="score double").wait_for()
        assert parquet.locator("tbody td").all_inner_texts() == ["1", "0.5", "2", "0.25", "3", "0.125"]
        page.get_by_role("table", name="Artifact files").get_by_role("button", name="model/").click()
        signature = open_artifact(page, "model/MLmodel")
        inputs = signature.get_by_role("table", name="Signature inputs")
        inputs.wait_for()
        assert inputs.get_by_role("rowheader").all_inner_texts() == ["sepal_length", "species_hint"]
        assert "tensor(int64)" in signature.get_by_role("table", name="Signature outputs").inner_text()
        open_artifact(page, "model/model.pkl").get_by_text("No preview for this kind of file").wait_for()

        # Download: the link answers the bytes.
        href = page.get_by_role("link", name="Download notes.txt").get_attribute("href")
        answer = page.request.get(f"{up.url}{href}")
        assert answer.status == 200 and answer.body() == files["notes.txt"]

        # Live: an artifact logged now appears without a reload.
        page.locator(".files-browser .live-state.state-live").wait_for(timeout=30_000)
        late = tmp_path / "late.txt"
        late.write_text("logged while the page was open\n")
        client.artifacts.log_artifact(PROJECT, run_id, late, "late.txt")
        open_artifact(page, "late.txt").get_by_text("logged while the page was open").wait_for(timeout=30_000)

        open_artifact(page, "plot.png").get_by_role("img").wait_for()
        no_violations(page, "the run page's file browsers")
        page.get_by_role("heading", name="Artifacts").scroll_into_view_if_needed()
        shot(page, "artifacts", tmp_path)
    finally:
        admin.close()

    with signed_in(pw, tmp_path / "viewer-profile", up.url, viewer_token) as vpage:
        vpage.goto(run_url)
        open_artifact(vpage, "notes.txt").get_by_text("second line").wait_for()
        files_part = vpage.locator(".files")
        assert files_part.locator("form, input, textarea, select").count() == 0  # nothing to write with
        assert files_part.get_by_role("button", name="Delete").count() == 0
