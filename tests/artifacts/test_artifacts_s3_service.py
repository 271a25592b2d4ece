"""The artifact service itself on the S3 backend (a real SeaweedFS), end to end through the
gateway: the same guarantees as on the file system."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cairn.core import blake3
from cairn.sdk import Client

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from seaweed import SeaweedS3  # noqa: E402

from platform_harness import Platform, running  # noqa: E402


@pytest.fixture(scope="module")
def s3_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, SeaweedS3]]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"), bucket="svc").start()
    env = {"CAIRN_ARTIFACTS_BACKEND": "s3", "CAIRN_ARTIFACTS_S3_ENDPOINT": server.endpoint,
           "CAIRN_ARTIFACTS_S3_BUCKET": "svc", "CAIRN_ARTIFACTS_S3_ACCESS_KEY": "test",
           "CAIRN_ARTIFACTS_S3_SECRET_KEY": "test"}
    try:
        with running(Platform(tmp_path_factory.mktemp("platform-s3"), extra_env=env)) as plat:
            yield plat, server
    finally:
        server.stop()


def test_s3_backed_service_keeps_every_guarantee(s3_platform: tuple[Platform, SeaweedS3],
                                                 tmp_path: Path) -> None:
    plat, server = s3_platform
    s3 = server.client()
    with Client(plat.gateway, token=plat.token) as client, httpx.Client(base_url=f"{plat.gateway}/api/v1/artifacts",
                                                      timeout=30, headers=plat.headers) as blobs:
        client.create_project("s3proj")
        root = tmp_path / "data"
        (root / "sub").mkdir(parents=True)
        files = {"big.bin": os.urandom(3 << 20), "sub/small.txt": b"small"}
        for rel, data in files.items():
            (root / rel).write_bytes(data)
        first = client.artifacts.push_dataset("s3proj", "ds", root)
        assert first.uploaded_bytes == sum(map(len, files.values()))
        assert client.artifacts.push_dataset("s3proj", "ds", root).uploaded_bytes == 0
        out = tmp_path / "out"
        client.artifacts.pull_dataset("s3proj", "ds@v1", out)
        for rel, data in files.items():
            assert (out / rel).read_bytes() == data

        wrong = blake3(b"other").hex()
        assert blobs.put(f"/projects/s3proj/blobs/{wrong}", content=b"payload").status_code == 422
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="svc").get("Contents", [])]
        assert f"blobs/{wrong}" not in keys

        big = blake3(files["big.bin"]).hex()
        part = blobs.get(f"/blobs/{big}", headers={"Range": "bytes=5-14"})
        assert part.status_code == 206 and part.content == files["big.bin"][5:15]
        s3.put_object(Bucket="svc", Key=f"blobs/{big}", Body=b"rotten" + files["big.bin"][6:])
        resp = blobs.get(f"/blobs/{big}")
        assert resp.status_code == 500 and resp.json()["error"]["code"] == "blob_corrupt"

        orphan_data = os.urandom(1000)
        orphan = blake3(orphan_data).hex()
        blobs.put(f"/projects/s3proj/blobs/{orphan}", content=orphan_data).raise_for_status()
        assert client.artifacts.gc(grace_seconds=0)["removed"] == [orphan]
        small = blake3(files["sub/small.txt"]).hex()
        # s3proj uploaded both; the collected one is to be sent again
        assert client.artifacts.missing("s3proj", [small, orphan]) == [orphan]
