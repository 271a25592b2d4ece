"""A run's media through the real platform: the SDK's log_image/log_figure/log_table/log_text/
log_html with numpy, PIL, files, matplotlib, plotly, pandas and pyarrow; the index's filters and
pages; bytes through the usual blob download; bad input; who may read; the CLI; and an MLflow
client's log_image/log_figure/log_table landing in the same index."""

from __future__ import annotations

import io
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.core import blake3

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "mlflow_compat"))
from mlflow_scripts import run_script  # noqa: E402

from platform_harness import Platform, read_all_events  # noqa: E402

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py
PROJECT = "media-sdk"

MLFLOW_SCRIPT = """
import json
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

mlflow.set_experiment("media")
with mlflow.start_run() as run:
    for step in (0, 5):
        mlflow.log_image(np.full((8, 12, 3), 40 * step, dtype=np.uint8), key="val/recon", step=step)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    mlflow.log_figure(fig, "plots/line.png")
    mlflow.log_table(pd.DataFrame({"q": ["a", "b"], "score": [0.5, 0.75]}), artifact_file="eval.json")
    mlflow.log_text("not media", "notes.txt")
print(json.dumps({"run_id": run.info.run_id}))
"""


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[cairn.Client]:
    with cairn.Client(platform.gateway, token=platform.token) as c:
        yield c


@pytest.fixture(scope="module")
def http(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/artifacts", headers=platform.headers, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def logged(client: cairn.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run with media of every kind, logged once for the module."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import plotly.graph_objects as go
    import pyarrow as pa
    from PIL import Image

    tmp = tmp_path_factory.mktemp("media")
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp / "red.png")
    run = cairn.start_run(PROJECT, client=client, system_metrics=False, record_environment=False)
    out: dict[str, Any] = {"run": run.id}
    out["gray"] = run.log_image("samples", np.arange(64, dtype=np.uint8).reshape(8, 8))  # step 0
    out["rgb"] = run.log_image("samples", np.random.default_rng(0).random((600, 300, 3)))  # step 1, float 0..1
    out["rgba"] = run.log_image("samples", np.zeros((4, 6, 4), dtype=np.uint8), step=10)
    out["pil"] = run.log_image("pil", Image.new("L", (5, 7), 128), step=2)
    out["file"] = run.log_image("file", tmp / "red.png")
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [2, 0, 1])
    out["mpl"] = run.log_figure("curves/loss", fig, step=3)
    plt.close(fig)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["plotly"] = run.log_figure("curves/plotly", go.Figure(go.Scatter(x=[1, 2], y=[3, 1])))
    out["plotly_warnings"] = [str(w.message) for w in caught]
    out["df"] = run.log_table("preds", pd.DataFrame({"y": [1, 2, 3], "label": ["a", "b", "c"]}), step=0)
    out["arrow"] = run.log_table("preds", pa.table({"y": [4], "label": ["d"]}), step=1)
    out["text"] = run.log_text("notes", "hello\nworld")
    out["html"] = run.log_html("report", "<b>bold</b><script>alert(1)</script>")
    run.finish()
    return out


def _media(http: httpx.Client, run: str, **params: Any) -> dict[str, Any]:
    resp = http.get(f"/projects/{PROJECT}/runs/{run}/media", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_every_kind_is_indexed_with_its_step_type_and_size(logged: dict[str, Any], http: httpx.Client) -> None:
    entries = _media(http, logged["run"], limit=1000)["media"]
    seen = {(e["key"], e["step"]): e for e in entries}
    assert [s for k, s in seen if k == "samples"] == [0, 1, 10]  # a step left out is the key's next
    gray, rgb, rgba = seen["samples", 0], seen["samples", 1], seen["samples", 10]
    assert (gray["width"], gray["height"], gray["kind"], gray["media_type"]) == (8, 8, "image", "image/png")
    assert (rgb["width"], rgb["height"]) == (300, 600) and (rgba["width"], rgba["height"]) == (6, 4)
    assert (seen["pil", 2]["width"], seen["pil", 2]["height"]) == (5, 7)
    assert (seen["file", 0]["width"], seen["file", 0]["height"]) == (20, 10)
    assert seen["curves/loss", 3]["kind"] == "figure" and seen["curves/loss", 3]["media_type"] == "image/png"
    plotly = seen["curves/plotly", 0]
    assert plotly["media_type"] == "text/html"
    # no kaleido here: HTML only, no thumbnail, and the caller is told
    assert plotly["thumbnail_digest"] is None and "no PNG" in logged["plotly"]["note"]
    assert any("no PNG" in w for w in logged["plotly_warnings"])
    assert seen["preds", 0]["media_type"] == "application/vnd.apache.parquet"
    assert (seen["notes", 0]["kind"], seen["report", 0]["kind"]) == ("text", "html")
    assert all(e["source"] == "sdk" for e in entries)


def test_bytes_and_thumbnails_come_through_the_blob_download(logged: dict[str, Any], http: httpx.Client) -> None:
    import pyarrow.parquet as pq
    from PIL import Image

    rgb = logged["rgb"]
    full = Image.open(io.BytesIO(http.get(f"/blobs/{rgb['digest']}").content))
    thumb = Image.open(io.BytesIO(http.get(f"/blobs/{rgb['thumbnail_digest']}").content))
    assert full.size == (300, 600) and full.mode == "RGB"
    assert max(thumb.size) == 256 and thumb.size == (128, 256)
    gray = np.asarray(Image.open(io.BytesIO(http.get(f"/blobs/{logged['gray']['digest']}").content)))
    assert gray.tolist() == np.arange(64, dtype=np.uint8).reshape(8, 8).tolist()  # lossless
    table = pq.read_table(io.BytesIO(http.get(f"/blobs/{logged['df']['digest']}").content))
    assert table.column("label").to_pylist() == ["a", "b", "c"]
    preview = http.get(f"/blobs/{logged['arrow']['digest']}/table", params={"format": "parquet"}).json()
    assert preview["rows"] == [[4, "d"]]  # the artifacts preview reads media tables
    assert http.get(f"/blobs/{logged['text']['digest']}").text == "hello\nworld"
    assert b"plotly" in http.get(f"/blobs/{logged['plotly']['digest']}").content
    assert http.get(f"/blobs/{logged['mpl']['digest']}").content.startswith(b"\x89PNG")


def test_filters_keys_and_pages(logged: dict[str, Any], http: httpx.Client) -> None:
    run = logged["run"]
    assert [e["step"] for e in _media(http, run, key="samples", step_min=1)["media"]] == [1, 10]
    assert [e["step"] for e in _media(http, run, key="samples", step_max=1)["media"]] == [0, 1]
    assert {e["key"] for e in _media(http, run, kind="table")["media"]} == {"preds"}
    first = _media(http, run, limit=4)
    second = _media(http, run, limit=4, offset=first["next_offset"])
    everything = _media(http, run, limit=1000)["media"]
    assert first["next_offset"] == 4 and first["media"] + second["media"] == everything[:8]
    keys = {k["key"]: k for k in http.get(f"/projects/{PROJECT}/runs/{run}/media/keys").json()["keys"]}
    assert keys["samples"] == {"key": "samples", "kind": "image", "count": 3, "min_step": 0, "max_step": 10}


def test_same_step_same_bytes_is_a_no_op_other_bytes_a_conflict(logged: dict[str, Any], client: cairn.Client) -> None:
    from cairn.sdk.client import ApiError
    from cairn.sdk.media import Media

    media = Media(client, PROJECT, logged["run"])
    again = media.log_text("notes", "hello\nworld", step=0)
    assert again["logged"] is False and again["digest"] == logged["text"]["digest"]
    with pytest.raises(ApiError) as err:
        media.log_text("notes", "other words", step=0)
    assert err.value.status == 409 and "immutable" in err.value.message
    with pytest.raises(ApiError) as err:
        media.log_text("samples", "text under an image key", step=99)
    assert err.value.status == 409 and "holds image media" in err.value.message


@pytest.mark.parametrize("body, field, says", [
    ({"key": "bad<key>", "kind": "text"}, "key", "not valid"),
    ({"key": "k", "kind": "video"}, "kind", "not one of"),
    ({"key": "k", "kind": "text", "step": -1}, "step", "whole number"),
])
def test_bad_input_is_a_422_that_says_what_to_fix_and_records_nothing(
        logged: dict[str, Any], http: httpx.Client, platform: Platform, body: dict[str, Any], field: str,
        says: str) -> None:
    digest = blake3(b"some text").hex()
    assert http.put(f"/projects/{PROJECT}/blobs/{digest}", content=b"some text").status_code in (200, 201)
    before = len(_media(http, logged["run"], limit=1000)["media"])
    resp = http.post(f"/projects/{PROJECT}/runs/{logged['run']}/media",
                     json={"digest": digest, "media_type": "text/plain", **body})
    assert resp.status_code == 422, resp.text
    assert says in resp.json()["error"]["message"]
    assert len(_media(http, logged["run"], limit=1000)["media"]) == before


def test_a_blob_the_project_never_uploaded_is_refused(logged: dict[str, Any], http: httpx.Client) -> None:
    ghost = blake3(b"never uploaded into media-sdk").hex()
    resp = http.post(f"/projects/{PROJECT}/runs/{logged['run']}/media",
                     json={"key": "k", "kind": "text", "digest": ghost, "media_type": "text/plain"})
    assert resp.status_code == 422 and resp.json()["error"]["details"]["missing"] == [ghost]


def test_a_member_of_another_project_cannot_list_or_read(logged: dict[str, Any], platform: Platform) -> None:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as admin:
        admin.post("/registry/projects", json={"name": "media-other"}).raise_for_status()
        token = admin.post("/tokens", json={"user": "media-outsider"}).json()["token"]
        admin.post("/projects/media-other/members", json={"user": "media-outsider", "role": "editor"}
                   ).raise_for_status()
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/artifacts", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as outsider:
        assert outsider.get(f"/projects/{PROJECT}/runs/{logged['run']}/media").status_code == 404
        assert outsider.get(f"/projects/{PROJECT}/runs/{logged['run']}/media/keys").status_code == 404
        assert outsider.get(f"/blobs/{logged['rgb']['digest']}").status_code == 404
        resp = outsider.post(f"/projects/{PROJECT}/runs/{logged['run']}/media",
                             json={"key": "k", "kind": "text", "digest": logged["text"]["digest"],
                                   "media_type": "text/plain"})
        assert resp.status_code == 404


def test_cli_lists_and_gets_by_key_and_step(logged: dict[str, Any], platform: Platform, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--url", platform.gateway, "--token", platform.token]
    listed = runner.invoke(cli, [*base, "media", "list", logged["run"], "-p", PROJECT, "--kind", "image", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {e["key"] for e in json.loads(listed.output)} == {"samples", "pil", "file"}
    dest = tmp_path / "s.png"
    got = runner.invoke(cli, [*base, "media", "get", logged["run"], "samples", "-p", PROJECT, "--step", "1",
                              "-o", str(dest), "--json"])
    assert got.exit_code == 0, got.output
    assert blake3(dest.read_bytes()).hex() == logged["rgb"]["digest"] == json.loads(got.output)["digest"]
    last = runner.invoke(cli, [*base, "--json", "media", "get", logged["run"], "samples", "-p", PROJECT,
                               "-o", str(tmp_path / "last.png")])
    assert last.exit_code == 0 and json.loads(last.output)["step"] == 10  # no --step: the last
    missing = runner.invoke(cli, [*base, "media", "get", logged["run"], "nokey", "-p", PROJECT])
    assert missing.exit_code == 1 and "no media under key 'nokey'" in missing.output


def test_mlflow_log_image_figure_and_table_land_in_the_index(platform: Platform, http: httpx.Client,
                                                              tmp_path: Path) -> None:
    run_id = run_script(tmp_path, MLFLOW_SCRIPT, uri=platform.gateway, token=platform.token).result["run_id"]
    resp = http.get(f"/projects/default/runs/{run_id}/media", params={"limit": 1000})
    assert resp.status_code == 200, resp.text
    entries = {(e["key"], e["step"]): e for e in resp.json()["media"]}
    assert set(entries) == {("val/recon", 0), ("val/recon", 5), ("plots/line", 0), ("eval", 0)}
    image = entries["val/recon", 5]
    assert (image["kind"], image["width"], image["height"], image["source"]) == ("image", 12, 8, "mlflow")
    assert image["thumbnail_digest"] is not None and image["thumbnail_type"] == "image/webp"  # +compressed.webp
    assert image["name"].startswith("images/val~recon+step+5+")
    assert entries["plots/line", 0]["kind"] == "figure"
    table = entries["eval", 0]
    assert table["kind"] == "table" and table["media_type"] == "application/json"
    assert json.loads(http.get(f"/blobs/{table['digest']}").content)["columns"] == ["q", "score"]


def test_media_events_match_their_schemas(logged: dict[str, Any], platform: Platform) -> None:
    import jsonschema

    from cairn.kernel.schemas import known_schemas
    from cairn.services.artifacts.media_domain import MEDIA_EVENT_SCHEMAS

    schemas = known_schemas()
    seen = set()
    for event in read_all_events(platform.nats_url):
        if event["aggregate"] == "media_set":
            jsonschema.validate(event["data"], schemas[f"{event['type']}.v{event['version']}"])
            seen.add(f"{event['type']}.v{event['version']}")
    assert seen == set(MEDIA_EVENT_SCHEMAS)


def test_gc_keeps_media_and_their_thumbnails(logged: dict[str, Any], client: cairn.Client) -> None:
    kept = {logged["rgb"]["digest"], logged["rgb"]["thumbnail_digest"], logged["df"]["digest"]}
    removed = set(client.artifacts.gc(grace_seconds=0, dry_run=True)["removed"])
    assert not kept & removed
