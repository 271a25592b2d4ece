"""Presigned transfers on the S3 backend (a real SeaweedFS): the bytes go between the client and
the bucket, the service verifies a staged upload before storing it, a wrong digest stores
nothing, and the plans keep every access rule of the proxied routes. Also: pushing many small
files through the SDK's bounded pool gives exactly the sequential result."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cairn.core import blake3
from cairn.sdk import Client
from cairn.sdk.artifacts import IntegrityError

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from seaweed import SeaweedS3  # noqa: E402

from platform_harness import Platform, running  # noqa: E402

PART = 5 << 20  # the smallest S3 part, so a multipart upload stays small in tests


@pytest.fixture(scope="module")
def s3_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, SeaweedS3]]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"), bucket="pre").start()
    env = {"CAIRN_ARTIFACTS_BACKEND": "s3", "CAIRN_ARTIFACTS_S3_ENDPOINT": server.endpoint,
           "CAIRN_ARTIFACTS_S3_BUCKET": "pre", "CAIRN_ARTIFACTS_S3_ACCESS_KEY": "test",
           "CAIRN_ARTIFACTS_S3_SECRET_KEY": "test", "CAIRN_ARTIFACTS_S3_PART_BYTES": str(PART),
           "CAIRN_ARTIFACTS_VERIFY_READS": "false", "CAIRN_ARTIFACTS_VERIFY_EVERY_SECONDS": "1"}
    try:
        with running(Platform(tmp_path_factory.mktemp("platform-presign"), extra_env=env)) as plat:
            admin = httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30)
            for name in ("pre-a", "pre-b"):
                admin.post("/registry/projects", json={"name": name}).raise_for_status()
            admin.close()
            yield plat, server
    finally:
        server.stop()


def _keys(server: SeaweedS3, prefix: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket="pre", Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def _user(plat: Platform, user: str, project: str, role: str) -> str:
    with httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30) as admin:
        token = admin.post("/tokens", json={"user": user}).json()["token"]
        admin.post(f"/projects/{project}/members", json={"user": user, "role": role}).raise_for_status()
    return token


@pytest.fixture(autouse=True)
def presign_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sends files under 8 MiB through the gateway; these tests move small files directly."""
    monkeypatch.setattr("cairn.sdk.artifacts.DIRECT_UPLOAD_MIN", 0)


def test_presigned_round_trip_single_and_multipart(s3_platform: tuple[Platform, SeaweedS3],
                                                   tmp_path: Path) -> None:
    plat, server = s3_platform
    small, large = os.urandom(100_000), os.urandom(2 * PART + 12345)  # one PUT; three parts
    with Client(plat.gateway, token=plat.token) as client:
        for data in (small, large):
            src = tmp_path / "src.bin"
            src.write_bytes(data)
            digest = blake3(data).hex()
            answer = client.artifacts.upload_blob("pre-a", src)
            assert answer == {"digest": digest, "size": len(data), "created": True}
            assert f"blobs/{digest}" in _keys(server, "blobs/")
            plan = client.artifacts._call("GET", f"/blobs/{digest}/download-plan")
            assert plan["mode"] == "presigned" and plan["url"].startswith(server.endpoint)
            out = client.artifacts.download_blob(digest, tmp_path / "out.bin")
            assert out.read_bytes() == data
        assert _keys(server, "uploads/") == []  # staged objects are gone once committed
        # a second upload of the same bytes is verified again and answers "already held"
        assert client.artifacts.upload_blob("pre-a", src)["created"] is False


def test_tampered_presigned_upload_stores_nothing(s3_platform: tuple[Platform, SeaweedS3]) -> None:
    plat, server = s3_platform
    claimed = os.urandom(50_000)
    digest = blake3(claimed).hex()
    with Client(plat.gateway, token=plat.token) as client:
        plan = client.artifacts._call("POST", f"/projects/pre-a/blobs/{digest}/upload-plan",
                                      json={"size": len(claimed)})
        put = httpx.put(plan["url"], content=b"other bytes of the same story" * 100, timeout=30)
        assert put.status_code == 200, put.text
        with httpx.Client(base_url=f"{plat.gateway}/api/v1/artifacts", headers=plat.headers, timeout=30) as http:
            resp = http.post(f"/projects/pre-a/blobs/{digest}/commit", json={"token": plan["token"]})
            assert resp.status_code == 422, resp.text
            assert resp.json()["error"]["code"] == "digest_mismatch"
            assert f"blobs/{digest}" not in _keys(server, "blobs/")
            assert _keys(server, "uploads/") == []
            assert client.artifacts.missing("pre-a", [digest]) == [digest]  # nothing proved
            again = http.post(f"/projects/pre-a/blobs/{digest}/commit", json={"token": plan["token"]})
            assert again.status_code == 404  # the staged bytes were deleted: no second try on them
            bad = http.post(f"/projects/pre-a/blobs/{digest}/commit", json={"token": "../../blobs"})
            assert bad.status_code == 422 and "32 hex digits" in bad.json()["error"]["message"]


def test_plans_keep_the_access_rules(s3_platform: tuple[Platform, SeaweedS3], tmp_path: Path) -> None:
    plat, _ = s3_platform
    viewer = _user(plat, "pre-vic", "pre-a", "viewer")
    outsider = _user(plat, "pre-oz", "pre-b", "editor")
    data = os.urandom(10_000)
    src = tmp_path / "held.bin"
    src.write_bytes(data)
    digest = blake3(data).hex()
    with Client(plat.gateway, token=plat.token) as admin:
        admin.artifacts.upload_blob("pre-a", src)
    base = f"{plat.gateway}/api/v1/artifacts"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {viewer}"}, timeout=30) as vic:
        refused = vic.post(f"/projects/pre-a/blobs/{digest}/upload-plan", json={"size": 10})
        assert refused.status_code == 403, refused.text
        assert vic.get(f"/blobs/{digest}/download-plan").status_code == 200  # pre-a holds it
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {outsider}"}, timeout=30) as oz:
        hidden = oz.get(f"/blobs/{digest}/download-plan")
        assert hidden.status_code == 404 and "url" not in hidden.text
        assert oz.post(f"/projects/pre-a/blobs/{digest}/upload-plan", json={"size": 10}).status_code == 404
    with Client(plat.gateway, token=outsider) as oz_client:  # oz's own upload grants pre-b, only then
        oz_client.artifacts.upload_blob("pre-b", src)
        assert oz_client.artifacts._call("GET", f"/blobs/{digest}/download-plan")["mode"] == "presigned"


def test_unverified_reads_serve_and_on_demand_verify_finds_corruption(
        s3_platform: tuple[Platform, SeaweedS3], tmp_path: Path) -> None:
    """With CAIRN_ARTIFACTS_VERIFY_READS=false a download is not hashed by the service: bytes
    corrupted at rest are served (the SDK's own check still refuses them) until the on-demand
    verify finds them and a re-upload repairs them."""
    plat, server = s3_platform
    data = os.urandom(300_000)
    digest = blake3(data).hex()
    src = tmp_path / "kept.bin"
    src.write_bytes(data)
    with Client(plat.gateway, token=plat.token) as client, \
            httpx.Client(base_url=f"{plat.gateway}/api/v1/artifacts", headers=plat.headers, timeout=30) as http:
        client.artifacts.upload_blob("pre-a", src)
        assert client.artifacts.verify([digest]) == {"checked": 1, "bytes": len(data), "corrupt": [],
                                                     "missing": []}
        server.client().put_object(Bucket="pre", Key=f"blobs/{digest}", Body=b"rot" + data[3:])
        served = http.get(f"/blobs/{digest}")
        assert served.status_code == 200 and served.content[:3] == b"rot"  # the documented trade-off
        with pytest.raises(IntegrityError):
            client.artifacts.download_blob(digest, tmp_path / "out.bin")
        assert not (tmp_path / "out.bin").exists()
        assert digest in client.artifacts.verify()["corrupt"]
        deadline = time.monotonic() + 60  # the scheduled pass (every second here) finds it too
        while digest not in (http.get("/admin/verify").json().get("corrupt") or []):
            assert time.monotonic() < deadline, "the scheduled verification did not report the corrupt blob"
            time.sleep(0.2)
        client.artifacts.upload_blob("pre-a", src)  # the original bytes repair it
        assert client.artifacts.verify([digest])["corrupt"] == []
        assert http.get(f"/blobs/{digest}").content == data


def _tree(root: Path, count: int) -> None:
    for i in range(count):
        path = root / f"d{i % 7}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(512 + i) if i % 10 else b"duplicate content")


def _parallel_equals_sequential(gateway: str, token: str, seq_project: str, par_project: str,
                                tmp_path: Path) -> None:
    root = tmp_path / "many"
    _tree(root, 200)
    with Client(gateway, token=token) as client:
        seq = client.artifacts.push_dataset(seq_project, "seq", root, workers=1)
        seen: list[tuple[int, int]] = []
        par = client.artifacts.push_dataset(par_project, "par", root, workers=8,
                                            progress=lambda n, total: seen.append((n, total)))
        assert par.manifest.digest == seq.manifest.digest
        assert par.manifest.as_dict() == seq.manifest.as_dict()
        assert (par.uploaded_files, par.uploaded_bytes) == (seq.uploaded_files, seq.uploaded_bytes) == \
            (181, sum(512 + i for i in range(200) if i % 10) + len(b"duplicate content"))
        assert sum(n for n, _ in seen) == par.uploaded_bytes and {t for _, t in seen} == {par.uploaded_bytes}
        for project, name, workers in ((seq_project, "seq", 1), (par_project, "par", 8)):
            out = tmp_path / f"pulled-{name}"
            client.artifacts.pull_dataset(project, name, out, workers=workers)
            for path in root.rglob("*.bin"):
                assert (out / path.relative_to(root)).read_bytes() == path.read_bytes()


def test_parallel_push_of_200_files_equals_sequential_on_s3(s3_platform: tuple[Platform, SeaweedS3],
                                                            tmp_path: Path) -> None:
    plat, _ = s3_platform
    _parallel_equals_sequential(plat.gateway, plat.token, "pre-b", "pre-a", tmp_path)


def test_parallel_push_of_200_files_equals_sequential_on_fs(platform: Platform, tmp_path: Path) -> None:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as admin:
        for name in ("pool-seq", "pool-par"):
            admin.post("/registry/projects", json={"name": name}).raise_for_status()
        with Client(platform.gateway, token=platform.token) as client:
            plan = client.artifacts._call("POST", f"/projects/pool-seq/blobs/{'0' * 64}/upload-plan",
                                          json={"size": 1})
            assert plan == {"mode": "proxy"}  # the file system store takes the bytes through the gateway
    _parallel_equals_sequential(platform.gateway, platform.token, "pool-seq", "pool-par", tmp_path)


def test_small_files_come_straight_from_the_bucket_with_presigned_gets(
        s3_platform: tuple[Platform, SeaweedS3], tmp_path: Path) -> None:
    """On S3 the download plan of many small blobs is a presigned GET per blob (in the groups'
    shape), read many at once and verified by the client; a blob the bucket does not give is
    left for a request of its own, which answers with Cairn's error."""
    plat, server = s3_platform
    from cairn.sdk import bundles

    datas = [os.urandom(20_000 + i) for i in range(5)]
    digests = [blake3(d).hex() for d in datas]
    outsider = _user(plat, "pre-gus", "pre-b", "editor")
    with Client(plat.gateway, token=plat.token) as client:
        for i, data in enumerate(datas):
            (tmp_path / f"s{i}.bin").write_bytes(data)
        bundles.upload(client.artifacts, "pre-a", [(d, tmp_path / f"s{i}.bin", len(datas[i]))
                                                   for i, d in enumerate(digests)], None)
        plan = client.artifacts._call("POST", "/blobs/bundle-plan", json={"bundles": [digests[:3], digests[3:]]})
        assert plan["mode"] == "presigned" and [len(g) for g in plan["urls"]] == [3, 2]
        assert all(url.startswith(server.endpoint) for group in plan["urls"] for url in group)
        members = [(d, tmp_path / f"out{i}.bin", len(datas[i])) for i, d in enumerate(digests)]
        assert bundles.download(client.artifacts, members, None) == []
        assert [(tmp_path / f"out{i}.bin").read_bytes() for i in range(5)] == datas
        server.client().delete_object(Bucket="pre", Key=f"blobs/{digests[4]}")
        gone = [(d, tmp_path / f"again{i}.bin", len(datas[i])) for i, d in enumerate(digests)]
        assert bundles.download(client.artifacts, gone, None) == [gone[4]]
        assert not (tmp_path / "again4.bin").exists()
        with pytest.raises(Exception, match="not stored"):
            client.artifacts.download_blob(digests[4], tmp_path / "again4.bin", size=len(datas[4]))
    with httpx.Client(base_url=f"{plat.gateway}/api/v1/artifacts", headers={"Authorization": f"Bearer {outsider}"},
                      timeout=30) as oz:
        hidden = oz.post("/blobs/bundle-plan", json={"bundles": [digests[:1]]})
        assert hidden.status_code == 404 and "http" not in hidden.text
