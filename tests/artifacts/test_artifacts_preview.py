"""The preview routes the web UI's run page uses (services/artifacts/api_preview.py), through the
gateway with real processes: the first rows of CSV/Parquet/Arrow blobs and the files of a code
snapshot archive; other blobs and other projects' blobs are refused."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.ipc  # noqa: F401 (pa.ipc)
import pyarrow.parquet as pq
import pytest

from cairn.core import blake3
from cairn.sdk.code_snapshot import snapshot_code

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from platform_harness import Platform  # noqa: E402


@pytest.fixture(scope="module")
def blobs(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/artifacts", timeout=30,
                      headers=platform.headers) as client:
        yield client


def _put(blobs: httpx.Client, project: str, data: bytes) -> str:
    digest = blake3(data).hex()
    resp = blobs.put(f"/projects/{project}/blobs/{digest}", content=data)
    assert resp.status_code in (200, 201), resp.text
    return digest


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_csv_and_parquet_tables_give_the_first_rows_and_the_count(blobs: httpx.Client, project: str) -> None:
    csv = "epoch,loss,note\n" + "".join(f"{i},{1 / (i + 1):.3f},row {i}\n" for i in range(120))
    digest = _put(blobs, project, csv.encode())
    body = blobs.get(f"/blobs/{digest}/table", params={"format": "csv", "rows": 3}).json()
    assert [c["name"] for c in body["columns"]] == ["epoch", "loss", "note"]
    assert body["rows"] == [[0, 1.0, "row 0"], [1, 0.5, "row 1"], [2, 0.333, "row 2"]]
    assert body["total"] == 120

    table = pa.table({"x": [1.5, float("nan"), 3.0], "label": ["a", None, "c"]})
    digest = _put(blobs, project, _parquet(table))
    body = blobs.get(f"/blobs/{digest}/table", params={"format": "parquet"}).json()
    assert body["columns"] == [{"name": "x", "type": "double"}, {"name": "label", "type": "string"}]
    assert body["rows"] == [[1.5, "a"], ["nan", None], [3.0, "c"]]
    assert body["total"] == 3

    for write in (pa.ipc.new_file, pa.ipc.new_stream):  # Arrow IPC file and stream, two batches
        out = io.BytesIO()
        with write(out, table.schema) as writer:
            writer.write_table(table)
            writer.write_table(table)
        digest = _put(blobs, project, out.getvalue())
        body = blobs.get(f"/blobs/{digest}/table", params={"format": "arrow", "rows": 4}).json()
        assert body["rows"] == [[1.5, "a"], ["nan", None], [3.0, "c"], [1.5, "a"]]
        assert body["total"] == 6


def test_a_blob_that_is_not_a_table_or_archive_is_a_422_and_others_404(platform: Platform, blobs: httpx.Client,
                                                                      project: str) -> None:
    digest = _put(blobs, project, b"\x00\x01 not parquet at all")
    resp = blobs.get(f"/blobs/{digest}/table", params={"format": "parquet"})
    assert resp.status_code == 422 and "not a readable parquet file" in resp.json()["error"]["message"]
    assert blobs.get(f"/blobs/{digest}/table", params={"format": "xlsx"}).status_code == 422
    assert blobs.get(f"/blobs/{digest}/table", params={"format": "csv", "rows": 0}).status_code == 422
    resp = blobs.get(f"/blobs/{digest}/archive")
    assert resp.status_code == 422 and "not a code archive" in resp.json()["error"]["message"]
    absent = blake3(b"never uploaded").hex()
    assert blobs.get(f"/blobs/{absent}/table", params={"format": "csv"}).status_code == 404
    assert blobs.get(f"/blobs/{absent}/archive").status_code == 404


def test_a_code_archive_lists_its_files_and_serves_one_as_text(blobs: httpx.Client, project: str,
                                                               tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("import pkg\nprint('héllo')\n")
    (src / "pkg" / "__init__.py").write_text("X = 1\n")
    (src / "big.txt").write_text("a" * 5000)
    (src / "blob.bin").write_bytes(b"\x00\xff" * 10)
    snap = snapshot_code(src, tmp_path / "out")
    digest = _put(blobs, project, snap.archive.read_bytes())

    listing = blobs.get(f"/blobs/{digest}/archive").json()
    assert listing == {"files": [{"path": "big.txt", "size": 5000}, {"path": "blob.bin", "size": 20},
                                 {"path": "pkg/__init__.py", "size": 6},
                                 {"path": "train.py", "size": len("import pkg\nprint('héllo')\n".encode())}],
                       "truncated": False}
    one = blobs.get(f"/blobs/{digest}/archive/file", params={"path": "train.py"}).json()
    assert one["text"] == "import pkg\nprint('héllo')\n" and not one["truncated"] and not one["binary"]
    cut = blobs.get(f"/blobs/{digest}/archive/file", params={"path": "big.txt", "limit": 100}).json()
    assert cut["text"] == "a" * 100 and cut["truncated"] and cut["size"] == 5000
    binary = blobs.get(f"/blobs/{digest}/archive/file", params={"path": "blob.bin"}).json()
    assert binary["binary"] and binary["text"] is None
    resp = blobs.get(f"/blobs/{digest}/archive/file", params={"path": "nope.py"})
    assert resp.status_code == 404 and "no file 'nope.py'" in resp.json()["error"]["message"]
