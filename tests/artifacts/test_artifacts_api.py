"""The artifact store through the gateway, with real processes and files: blobs, datasets, run
artifacts, GC."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from cairn.core import Manifest, blake3, fingerprint_tree
from cairn.sdk import Client
from cairn.sdk.client import ApiError

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from platform_harness import Platform, read_all_events  # noqa: E402


@pytest.fixture(scope="module")
def blobs(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/artifacts", timeout=30,
                      headers=platform.headers) as client:
        yield client


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[Client]:
    with Client(platform.gateway, token=platform.token) as c:
        yield c


def _blob_path(platform: Platform, digest: str) -> Path:
    return platform.root / "data" / "artifacts" / "blobs" / digest[:2] / digest[2:4] / digest


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _put(blobs: httpx.Client, project: str, data: bytes) -> str:
    digest = blake3(data).hex()
    resp = blobs.put(f"/projects/{project}/blobs/{digest}", content=data)
    assert resp.status_code in (200, 201), resp.text
    return digest


def test_upload_with_wrong_digest_stores_nothing(platform: Platform, blobs: httpx.Client, project: str) -> None:
    data = os.urandom(2 << 20)  # streamed through the gateway, not sent whole
    claimed = blake3(b"not these bytes").hex()
    resp = blobs.put(f"/projects/{project}/blobs/{claimed}", content=iter([data[: 1 << 20], data[1 << 20:]]))
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "digest_mismatch"
    assert error["details"] == {"expected": claimed, "actual": blake3(data).hex(), "size": len(data)}
    assert blobs.head(f"/blobs/{claimed}").status_code == 404
    assert not _blob_path(platform, claimed).exists()
    assert list((platform.root / "data" / "artifacts" / "tmp").iterdir()) == []
    assert blobs.post(f"/projects/{project}/blobs/missing", json={"digests": [claimed]}).json() == {
        "missing": [claimed]}  # bytes that did not match prove nothing


def test_missing_lists_only_blobs_the_project_has_not_uploaded(blobs: httpx.Client, project: str) -> None:
    stored = _put(blobs, project, b"present")
    absent = blake3(b"absent").hex()
    resp = blobs.post(f"/projects/{project}/blobs/missing", json={"digests": [stored, absent, absent]})
    assert resp.json() == {"missing": [absent]}
    assert blobs.head(f"/blobs/{stored}").status_code == 200
    assert blobs.post(f"/projects/{project}/blobs/missing", json={"digests": ["xyz"]}).status_code == 422


def test_ranged_download_serves_exact_bytes(blobs: httpx.Client, project: str) -> None:
    data = os.urandom(3_000_001)
    digest = _put(blobs, project, data)
    whole = blobs.get(f"/blobs/{digest}")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    part = blobs.get(f"/blobs/{digest}", headers={"Range": "bytes=1000-2999999"})
    assert part.status_code == 206 and part.content == data[1000:3_000_000]
    assert part.headers["content-range"] == f"bytes 1000-2999999/{len(data)}"
    tail = blobs.get(f"/blobs/{digest}", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = blobs.get(f"/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.json()["error"]["code"] == "range_not_satisfiable"


def test_blob_corrupted_on_disk_is_reported_not_served(platform: Platform, blobs: httpx.Client,
                                                       project: str) -> None:
    data = os.urandom(100_000)
    digest = _put(blobs, project, data)
    path = _blob_path(platform, digest)
    path.write_bytes(data[:500] + b"X" + data[501:])
    for headers in ({}, {"Range": "bytes=0-9"}):
        resp = blobs.get(f"/blobs/{digest}", headers=headers)
        assert resp.status_code == 500
        assert resp.json()["error"]["code"] == "blob_corrupt"
    _put(blobs, project, data)  # uploading the original bytes again repairs it
    assert blobs.get(f"/blobs/{digest}").content == data


def test_second_push_of_same_tree_uploads_nothing(client: Client, project: str, tmp_path: Path) -> None:
    root = _tree(tmp_path / "data", {"a.bin": os.urandom(200_000), "dir/b.txt": b"b", "dir/c.txt": b"b"})
    first = client.artifacts.push_dataset(project, "dedup", root)
    assert (first.record["version"], first.uploaded_files, first.uploaded_bytes) == (1, 2, 200_001)
    again = client.artifacts.push_dataset(project, "dedup", root)
    assert (again.record["version"], again.uploaded_files, again.uploaded_bytes) == (1, 0, 0)
    (root / "dir" / "new.txt").write_bytes(b"new file")
    third = client.artifacts.push_dataset(project, "dedup", root)
    assert (third.record["version"], third.uploaded_files, third.uploaded_bytes) == (2, 1, 8)
    assert [v["version"] for v in client.artifacts.dataset(project, "dedup")["versions"]] == [1, 2]


def test_cli_push_then_pull_round_trips(platform: Platform, project: str, tmp_path: Path) -> None:
    import json

    def cli(*args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "cairn.cli.main", "--url", platform.gateway, "--json",
                              *args], capture_output=True, text=True,
                         env={**os.environ, "CAIRN_TOKEN": platform.token})
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    root = _tree(tmp_path / "cli", {"a.txt": b"alpha", "b/c.bin": os.urandom(5000)})
    first = cli("datasets", "push", str(root), "--project", project, "--name", "clids")
    assert (first["version"], first["uploaded_bytes"]) == (1, 5005)
    assert cli("datasets", "push", str(root), "--project", project, "--name", "clids")["uploaded_bytes"] == 0
    pulled = cli("datasets", "pull", "clids@v1", str(tmp_path / "back"), "--project", project)
    assert pulled["manifest_digest"] == fingerprint_tree(tmp_path / "back").digest == first["manifest_digest"]
    assert [d["name"] for d in cli("datasets", "list", "--project", project)] == ["clids"]
    missing = subprocess.run([sys.executable, "-m", "cairn.cli.main", "--url", platform.gateway, "datasets",
                              "pull", "clids@v9", str(tmp_path / "x"), "-p", project], capture_output=True, text=True,
                         env={**os.environ, "CAIRN_TOKEN": platform.token})
    assert missing.returncode == 1 and "has no version 9; latest is 1" in missing.stderr


def test_pull_restores_identical_bytes(client: Client, project: str, tmp_path: Path) -> None:
    files = {"x/y/z.bin": os.urandom(1 << 20), "empty": b"", "same1": b"twin", "same2": b"twin",
             "name with spaces.txt": b"s"}
    root = _tree(tmp_path / "src", files)
    os.symlink("x/y/z.bin", root / "link")
    client.artifacts.push_dataset(project, "pullme", root)
    (root / "empty").write_bytes(b"now not empty")
    client.artifacts.push_dataset(project, "pullme", root)
    out = tmp_path / "out"
    record = client.artifacts.pull_dataset(project, "pullme@v1", out)
    assert record["version"] == 1
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data
    assert os.readlink(out / "link") == "x/y/z.bin"
    assert fingerprint_tree(out).digest == record["manifest_digest"]


@pytest.mark.parametrize("bad_path", ["../x", "/etc/passwd", "a/../../x", "a//b", "./a"])
def test_path_traversal_in_manifest_is_refused(blobs: httpx.Client, project: str, bad_path: str) -> None:
    digest = _put(blobs, project, b"payload")
    body = {"digest": "0" * 64, "entries": [{"path": bad_path, "kind": "file", "size": 7, "digest": digest}]}
    for url in (f"/projects/{project}/datasets/evil/versions", f"/projects/{project}/manifests"):
        resp = blobs.post(url, json={"manifest": body})
        assert resp.status_code == 422, resp.text
        assert "manifest refused" in resp.json()["error"]["message"]
    assert blobs.get(f"/projects/{project}/datasets/evil").status_code == 404


def test_version_with_files_not_uploaded_is_refused(blobs: httpx.Client, project: str) -> None:
    absent = blake3(b"never uploaded").hex()
    manifest = Manifest.from_dict({"entries": [{"path": "a", "kind": "file", "size": 14, "digest": absent}]})
    resp = blobs.post(f"/projects/{project}/datasets/ds/versions", json={"manifest": manifest.as_dict()})
    assert resp.status_code == 422 and resp.json()["error"]["details"]["missing"] == [absent]


def test_diff_lists_files_and_table_changes(platform: Platform, client: Client, project: str,
                                            tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    root = tmp_path / "d"
    _tree(root, {"keep.txt": b"same", "gone.txt": b"bye", "t.csv": b"a,b\n1,2\n"})
    pq.write_table(pa.table({"id": [1, 2, 3], "label": ["a", "b", "c"]}), root / "t.parquet")
    feather.write_feather(pa.table({"v": [1.0]}), root / "t.feather")
    client.artifacts.push_dataset(project, "tab", root)
    (root / "gone.txt").unlink()
    (root / "added.bin").write_bytes(b"12345")
    (root / "t.csv").write_bytes(b"a,b,c\n1,2,3\n4,5,6\n")
    pq.write_table(pa.table({"id": [1.5, 2, 3, 4], "score": [0.1, 0.2, 0.3, 0.4]}), root / "t.parquet")
    feather.write_feather(pa.table({"v": [1.0, 2.0]}), root / "t.feather")
    client.artifacts.push_dataset(project, "tab", root)

    diff = client.artifacts.diff(project, "tab@v1", "tab@v2")
    assert diff["added"] == [{"path": "added.bin", "size": 5, "kind": "file"}]
    assert diff["removed"] == [{"path": "gone.txt", "size": 3, "kind": "file"}]
    changed = {c["path"]: c for c in diff["changed"]}
    assert set(changed) == {"t.csv", "t.parquet", "t.feather"} and diff["unchanged"] == 1
    parquet = changed["t.parquet"]["table"]
    assert parquet["columns_added"] == {"score": "double"}
    assert parquet["columns_removed"] == {"label": "string"}
    assert parquet["types_changed"] == {"id": {"from": "int64", "to": "double"}}
    assert (parquet["rows_before"], parquet["rows_after"], parquet["rows_change"]) == (3, 4, 1)
    assert changed["t.csv"]["table"]["columns_added"] == {"c": "int64"}
    assert changed["t.csv"]["table"]["rows_change"] == 1
    assert changed["t.feather"]["table"]["rows_change"] == 1

    out = subprocess.run([sys.executable, "-m", "cairn.cli.main", "--url", platform.gateway, "datasets",
                          "diff", "tab@v1", "tab@v2", "-p", project], capture_output=True, text=True,
                         env={**os.environ, "CAIRN_TOKEN": platform.token})
    assert out.returncode == 0, out.stderr
    for line in ("+ added.bin  (5 bytes)", "- gone.txt  (3 bytes)", "+ column score: double",
                 "- column label: string", "~ column id: int64 -> double", "rows 3 -> 4 (+1)"):
        assert line in out.stdout


def test_runs_record_inputs_and_artifacts_as_events(platform: Platform, client: Client, project: str,
                                                    tmp_path: Path) -> None:
    import cairn

    _tree(tmp_path / "in", {"train.csv": b"x\n1\n"})
    client.artifacts.push_dataset(project, "inputs", tmp_path / "in")
    model_dir = _tree(tmp_path / "model", {"weights.bin": os.urandom(4096), "config.json": b"{}"})
    (tmp_path / "report.txt").write_text("accuracy 0.9")
    with cairn.start_run(project, client=client) as run:
        used = run.use_dataset("inputs@v1")
        assert used["version"] == 1
        run.use_dataset("inputs@v1")  # declaring twice records once
        file_art = run.log_artifact(tmp_path / "report.txt")
        dir_art = run.log_artifact(model_dir, name="model", kind="model")
        with pytest.raises(ApiError) as err:
            run.log_artifact(tmp_path / "in" / "train.csv", name="report.txt")
        assert err.value.status == 409
    assert (file_art["kind"], file_art["size"], dir_art["files"]) == ("file", 12, 2)
    listed = client.artifacts.list_artifacts(project, run.id)
    assert [a["name"] for a in listed] == ["model", "report.txt"]
    restored = client.artifacts.download_artifact(dir_art, tmp_path / "restored")
    assert (restored / "config.json").read_bytes() == b"{}"
    events = [e for e in read_all_events(platform.nats_url) if e["project"] == project]
    types = [e["type"] for e in events]
    assert types.count("run.dataset_used") == 1 and types.count("run.artifact_logged") == 2
    assert "dataset.version_created" in types


def test_file_upload_is_stored_and_logged_in_one_request(platform: Platform, blobs: httpx.Client,
                                                         project: str) -> None:
    data = os.urandom(3 << 20)  # streamed in pieces, hashed by the service
    resp = blobs.put(f"/projects/{project}/runs/r1/files/out/model weights.bin",
                     content=iter([data[: 1 << 20], data[1 << 20:]]))
    assert resp.status_code == 201, resp.text
    digest = blake3(data).hex()
    assert resp.json() == {"project": project, "run_id": "r1", "name": "out/model weights.bin",
                           "digest": digest, "kind": "file", "size": len(data), "files": 1, "logged": True}
    # Answered once the event is in the log; the next read sees it.
    logged = [e for e in read_all_events(platform.nats_url)
              if e["project"] == project and e["type"] == "run.artifact_logged"]
    assert [e["data"]["digest"] for e in logged] == [digest]
    listed = blobs.get(f"/projects/{project}/runs/r1/artifacts").json()["artifacts"]
    assert [(a["name"], a["digest"], a["size"]) for a in listed] == [("out/model weights.bin", digest, len(data))]
    assert blobs.get(f"/blobs/{digest}").content == data
    again = blobs.put(f"/projects/{project}/runs/r1/files/out/model weights.bin", content=data)
    assert again.status_code == 201 and again.json()["logged"] is False  # same bytes: nothing new
    other = blobs.put(f"/projects/{project}/runs/r1/files/out/model weights.bin", content=b"other")
    assert other.status_code == 409 and other.json()["error"]["details"]["digest"] == digest


def test_file_upload_with_wrong_digest_logs_nothing(platform: Platform, blobs: httpx.Client,
                                                    project: str) -> None:
    claimed = blake3(b"claimed").hex()
    resp = blobs.put(f"/projects/{project}/runs/r2/files/a.txt", content=b"actual",
                     headers={"X-Cairn-Digest": claimed})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "digest_mismatch"
    assert blobs.head(f"/blobs/{blake3(b'actual').hex()}").status_code == 404
    assert blobs.get(f"/projects/{project}/runs/r2/artifacts").json() == {"artifacts": []}
    bad = blobs.put(f"/projects/{project}/runs/r2/files/bad%E2%80%8Bname.txt", content=b"x")  # zero-width space
    assert bad.status_code == 422 and "artifact name" in bad.json()["error"]["message"]
    for bad_name in ("bad%5Cname.txt", "bad%01name.txt", "a/%2E%2E/b.txt"):  # refused at the gateway's door
        assert blobs.put(f"/projects/{project}/runs/r2/files/{bad_name}", content=b"x").status_code == 400
    assert not [e for e in read_all_events(platform.nats_url) if e["project"] == project and e["aggregate"] != "project"]


def test_file_names_with_any_printable_unicode_are_accepted(blobs: httpx.Client, project: str) -> None:
    names = ["model(1).txt", "k=v.txt", "a,b.csv", "v1+2.txt", "résumé.txt", "report@2.txt", ".hidden",
             "日本/データ.txt", "dog+step+1.png"]
    for name in names:
        resp = blobs.put(f"/projects/{project}/runs/r3/files/{quote(name)}", content=name.encode())
        assert resp.status_code == 201 and resp.json()["name"] == name, resp.text
    listed = blobs.get(f"/projects/{project}/runs/r3/artifacts").json()["artifacts"]
    assert sorted(a["name"] for a in listed) == sorted(names)


def test_every_artifact_event_matches_its_schema(platform: Platform) -> None:
    """Runs after the tests above have emitted each of this service's event types."""
    import jsonschema

    from cairn.kernel.schemas import known_schemas
    from cairn.services.artifacts.domain import EVENT_SCHEMAS

    schemas = known_schemas()
    seen = set()
    for event in read_all_events(platform.nats_url):
        stem = f"{event['type']}.v{event['version']}"
        jsonschema.validate(event, schemas["envelope.v1"])
        jsonschema.validate(event["data"], schemas[stem])
        seen.add(stem)
    assert set(EVENT_SCHEMAS) <= seen


def test_gc_never_deletes_a_referenced_blob(platform: Platform, blobs: httpx.Client, client: Client,
                                            project: str, tmp_path: Path) -> None:
    import cairn

    root = _tree(tmp_path / "ds", {"f1": os.urandom(1000), "f2": os.urandom(1000)})
    client.artifacts.push_dataset(project, "kept", root)
    (tmp_path / "weights.pt").write_bytes(os.urandom(2000))
    model_dir = _tree(tmp_path / "model_dir", {"w.bin": os.urandom(1500)})
    with cairn.start_run(project, client=client) as run:
        run.log_artifact(tmp_path / "weights.pt")
        run.log_artifact(model_dir, kind="model")
    model_blob = _put(blobs, project, b"model registered from a run")
    client.create_model(project, "m")
    client.create_model_version(project, "m", run_id=run.id, artifact_digest=model_blob)
    orphan = _put(blobs, project, os.urandom(3000))

    young = client.artifacts.gc(grace_seconds=3600)
    assert orphan not in young["removed"]
    result = client.artifacts.gc(grace_seconds=0)
    assert orphan in result["removed"] and blobs.head(f"/blobs/{orphan}").status_code == 404
    referenced = [blake3((root / "f1").read_bytes()).hex(), blake3((root / "f2").read_bytes()).hex(),
                  fingerprint_tree(root).digest, blake3((tmp_path / "weights.pt").read_bytes()).hex(),
                  model_blob, fingerprint_tree(model_dir).digest,
                  blake3((model_dir / "w.bin").read_bytes()).hex()]
    assert blobs.post(f"/projects/{project}/blobs/missing", json={"digests": referenced}).json() == {"missing": []}
    assert client.artifacts.pull_dataset(project, "kept", tmp_path / "back")["version"] == 1


def test_rebuild_gives_the_same_read_model(client: Client, project: str, tmp_path: Path) -> None:
    client.artifacts.push_dataset(project, "rb", _tree(tmp_path / "r", {"a": b"a"}))
    before = client.request("GET", "/api/v1/artifacts/admin/content-hash")["content_hash"]
    assert client.rebuild("artifacts")["content_hash"] == before


def test_a_site_admin_writing_into_a_project_that_does_not_exist_gets_404_and_nothing_is_stored(
        platform: Platform, blobs: httpx.Client, client: Client, tmp_path: Path) -> None:
    data = b"orphan bytes " + os.urandom(8)
    digest = blake3(data).hex()
    before = len(read_all_events(platform.nats_url))
    writes = [blobs.put(f"/projects/nosuch/blobs/{digest}", content=data),
              blobs.post("/projects/nosuch/manifests", json={"files": []}),
              blobs.post("/projects/nosuch/datasets/d/versions", json={"files": []}),
              blobs.put("/projects/nosuch/runs/r1/files/model.bin", content=data)]
    for resp in writes:
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["message"].startswith("project 'nosuch' does not exist; create it first")
    with pytest.raises(ApiError) as raised:  # the SDK's (and so `cairn datasets push`'s) path
        client.artifacts.push_dataset("nosuch", "d", _tree(tmp_path / "d", {"a.txt": b"a"}))
    assert raised.value.status == 404 and "project 'nosuch' does not exist" in str(raised.value)
    assert not _blob_path(platform, digest).exists()
    assert [e for e in read_all_events(platform.nats_url)[before:] if e["project"] == "nosuch"] == []
    assert blobs.get("/projects/nosuch/datasets").json()["datasets"] == []


def test_a_project_created_after_a_refused_write_takes_the_write(platform: Platform, blobs: httpx.Client) -> None:
    name = f"late{os.getpid()}"
    data = os.urandom(64)
    digest = blake3(data).hex()
    assert blobs.put(f"/projects/{name}/blobs/{digest}", content=data).status_code == 404
    created = httpx.post(f"{platform.gateway}/api/v1/registry/projects", json={"name": name},
                         headers=platform.headers, timeout=30)
    assert created.status_code == 201, created.text
    assert blobs.put(f"/projects/{name}/blobs/{digest}", content=data).status_code in (200, 201)
