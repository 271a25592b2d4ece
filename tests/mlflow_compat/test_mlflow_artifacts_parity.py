"""Artifacts as MLflow does them: names with any printable Unicode (the real client logs, lists and
reads them back), a file path lists nothing (so load_text/load_dict and single-file downloads
work), unsafe paths are refused with MLflow's "Invalid path" and change nothing, and MLflow's
``/get-artifact`` and ``/ajax-api/2.0/mlflow/upload-artifact`` handlers answer as MLflow's do."""

from __future__ import annotations

import httpx
import pytest
from conftest import RunMlflow

from platform_harness import Platform, stream_last_seq

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

NAMES = ["model(1).txt", "k=v.txt", "a,b.csv", "v1+2.txt", "résumé.txt", "report@2.txt", ".hidden", "日本.txt",
         # mlflow.log_image(img, key="dog", step=1)'s file names: MLflow 3.6 ('%'), 3.7+ ('+')
         "dog%step%1%timestamp%1733400000000.png", "dog+step+1+timestamp+1733400000000+0a1b.png"]


@pytest.fixture(scope="module")
def http(platform: Platform) -> httpx.Client:
    with httpx.Client(base_url=platform.gateway, headers=platform.headers, timeout=30) as c:
        yield c


def _run(http: httpx.Client, project: str) -> str:
    resp = http.post(f"/mlflow/{project}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
    assert resp.status_code == 200, resp.text
    return resp.json()["run"]["info"]["run_id"]


def test_client_logs_and_reads_back_unicode_names(platform: Platform, run_mlflow: RunMlflow, project: str) -> None:
    out = run_mlflow(f"""
        import json, os, tempfile
        import mlflow
        names = {NAMES!r}
        folder = tempfile.mkdtemp()
        with mlflow.start_run() as run:
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write("bytes of " + name)
                mlflow.log_artifact(path, "named")
            mlflow.log_text("hello", "notes/readme.txt")
            mlflow.log_dict({{"a": 1}}, "notes/config.json")
        rid = run.info.run_id
        client = mlflow.MlflowClient()
        listed = sorted(a.path for a in client.list_artifacts(rid, "named"))
        read = {{n: mlflow.artifacts.load_text(f"runs:/{{rid}}/named/{{n}}") for n in names}}
        single = mlflow.artifacts.download_artifacts(f"runs:/{{rid}}/notes/readme.txt", dst_path=tempfile.mkdtemp())
        print(json.dumps({{
            "listed": listed, "read": read,
            "text": mlflow.artifacts.load_text(f"runs:/{{rid}}/notes/readme.txt"),
            "dict": mlflow.artifacts.load_dict(f"runs:/{{rid}}/notes/config.json"),
            "single": open(single).read(),
            "file_listing": [a.path for a in client.list_artifacts(rid, "notes/readme.txt")],
        }}))
    """, uri=f"{platform.gateway}/mlflow/{project}")
    result = out.result
    assert result["listed"] == sorted(f"named/{n}" for n in NAMES)
    assert result["read"] == {n: f"bytes of {n}" for n in NAMES}
    assert (result["text"], result["dict"], result["single"]) == ("hello", {"a": 1}, "hello")
    assert result["file_listing"] == []


@pytest.mark.parametrize("raw", ["..%2Fx.txt", "a%5Cb.txt", "a%00b.txt", "a%0Ab.txt"])
def test_unsafe_upload_names_are_refused_and_change_nothing(platform: Platform, http: httpx.Client,
                                                            project: str, raw: str) -> None:
    run = _run(http, project)
    before = stream_last_seq(platform)
    resp = http.put(f"/api/2.0/mlflow-artifacts/artifacts/{project}/{run}/artifacts/{raw}", content=b"x")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    assert stream_last_seq(platform) == before
    listed = http.get(f"/mlflow/{project}/api/2.0/mlflow/artifacts/list", params={"run_id": run})
    assert listed.json()["files"] == []


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a\\b"])
def test_list_and_get_artifact_refuse_paths_outside_the_run(http: httpx.Client, project: str, path: str) -> None:
    run = _run(http, project)
    for url in (f"/mlflow/{project}/api/2.0/mlflow/artifacts/list", f"/mlflow/{project}/get-artifact"):
        resp = http.get(url, params={"run_id": run, "path": path})
        assert resp.status_code == 400, (url, resp.text)
        assert resp.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}


def test_upload_artifact_handler_checks_then_stores(platform: Platform, http: httpx.Client, project: str) -> None:
    run = _run(http, project)
    url = f"/mlflow/{project}/ajax-api/2.0/mlflow/upload-artifact"
    before = stream_last_seq(platform)
    for params, message in (({}, "Request must specify run_uuid."), ({"run_uuid": run}, "Request must specify path."),
                            ({"run_uuid": run, "path": ""}, "Request must specify path."),
                            ({"run_uuid": run, "path": "../test.txt"}, "Invalid path"),
                            ({"run_uuid": run, "path": "test.txt"}, "Request must specify data.")):
        resp = http.post(url, params=params)
        assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in resp.json()["message"]
    assert stream_last_seq(platform) == before
    resp = http.post(url, params={"run_uuid": run, "path": "dir/résumé.txt"}, content=b"hello world")
    assert resp.status_code == 200, resp.text
    got = http.get(f"/mlflow/{project}/get-artifact", params={"run_uuid": run, "path": "dir/résumé.txt"})
    assert got.status_code == 200 and got.content == b"hello world"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Type"].startswith("text/plain")
    assert got.headers["Content-Disposition"].startswith("attachment")


def test_proxy_download_is_an_attachment_and_lists_a_file_as_nothing(http: httpx.Client, project: str) -> None:
    run = _run(http, project)
    base = f"/api/2.0/mlflow-artifacts/artifacts/{project}/{run}/artifacts"
    assert http.put(f"{base}/page.html", content=b"<script>alert(1)</script>").status_code == 200
    got = http.get(f"{base}/page.html")
    assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/plain")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert http.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{project}/{run}/artifacts/page.html"}
                    ).json() == {"files": []}


def test_server_info_says_single_transfers(platform: Platform, http: httpx.Client, project: str) -> None:
    for url in ("/api/3.0/mlflow/server-info", f"/mlflow/{project}/api/3.0/mlflow/server-info"):
        info = http.get(url).json()
        assert info["multipart_uploads_enabled"] is False and info["artifacts_presigned_only"] is False
    with httpx.Client(base_url=platform.gateway, timeout=30) as anonymous:
        assert anonymous.get("/api/3.0/mlflow/server-info").status_code == 401


def test_files_at_the_proxy_root_are_the_projects_own(platform: Platform, http: httpx.Client, project: str,
                                                      api: httpx.Client) -> None:
    """MLflow clients may write at the proxy's root (no run): kept per project, as immutable as a
    run's files, recorded by an event, and invisible from another project."""
    root = f"/mlflow/{project}/api/2.0/mlflow-artifacts/artifacts"
    before = stream_last_seq(platform)
    assert http.put(f"{root}/a.txt", content=b"0").status_code == 200
    assert http.put(f"{root}/dir/MLmodel", content=b"").status_code == 200
    assert stream_last_seq(platform) > before
    got = http.get(f"{root}/dir/MLmodel")
    assert got.status_code == 200 and got.content == b""
    assert got.headers["Content-Type"] == "text/plain" and got.headers["Content-Disposition"] == "attachment; filename=MLmodel"
    assert http.get(root).json() == {"files": [{"path": "a.txt", "is_dir": False, "file_size": 1},
                                               {"path": "dir", "is_dir": True}]}
    assert http.get(root, params={"path": "dir"}).json() == {"files": [{"path": "MLmodel", "is_dir": False,
                                                                        "file_size": 0}]}
    assert http.put(f"{root}/a.txt", content=b"other").json()["error_code"] == "INVALID_PARAMETER_VALUE"
    other = api.post("/projects", json={"name": f"{project}-other"})
    assert other.status_code == 201, other.text
    assert http.get(f"/mlflow/{project}-other/api/2.0/mlflow-artifacts/artifacts").json() == {"files": []}
    assert http.get(f"/mlflow/{project}-other/api/2.0/mlflow-artifacts/artifacts/a.txt").status_code == 404
