"""Two artifacts replicas over one S3 bucket (a real SeaweedFS) behind one gateway.

Why: blobs are content, not a read model, so the replicas share the bucket while each keeps its
own read model of references and possession. An upload through one replica must be readable
through the other, a dataset pushed through both alternately must pull whole, and garbage
collection (which deletes shared bytes) must run on one replica at a time: it takes the
``artifacts.gc`` lease (services/artifacts/gc.py), so a replica asked while another holds it
answers 409 and collects nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import loopback
import pytest
from artifacts.seaweed import SeaweedS3

from cairn.core import blake3
from cairn.kernel.eventlog import connect
from cairn.kernel.leader import JetStreamLeases, LeaseRecord
from cairn.up import SERVICES
from cluster.replica_harness import ReplicaSet

from platform_harness import Platform, running

BUCKET = "replicas"


class Replicated(ReplicaSet):
    """The platform plus the artifacts service's second replica (``artifacts-b``)."""

    def __init__(self, plat: Platform) -> None:
        super().__init__(plat, ("artifacts",))

    @property
    def urls(self) -> list[str]:
        return self.urls_of("artifacts")

    def start_b(self) -> None:
        self.start_replica("artifacts")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"), bucket=BUCKET).start()
    try:
        env = {"CAIRN_ARTIFACTS_BACKEND": "s3", "CAIRN_ARTIFACTS_S3_ENDPOINT": server.endpoint,
               "CAIRN_ARTIFACTS_S3_BUCKET": BUCKET, "CAIRN_ARTIFACTS_S3_ACCESS_KEY": "test",
               "CAIRN_ARTIFACTS_S3_SECRET_KEY": "test"}
        plat = Platform(tmp_path_factory.mktemp("replicas-artifacts"), extra_env=env)
        with running(plat):
            replicated = Replicated(plat)
            replicated.start_b()
            services: dict[str, Any] = {name: plat.service_url(name) for name in SERVICES}
            services["artifacts"] = replicated.urls
            plat.service_env["gateway"] = {"CAIRN_SERVICES": json.dumps(services)}
            plat.restart("gateway")
            plat.wait_healthy()
            yield replicated
    finally:
        server.stop()


def put_blob(url: str, headers: dict[str, str], project: str, data: bytes) -> str:
    digest = blake3(data).hex()
    resp = loopback.put(f"{url}/projects/{project}/blobs/{digest}", content=data, headers=headers, timeout=30)
    assert resp.status_code == 201, resp.text
    return digest


def test_a_blob_uploaded_through_one_replica_downloads_through_the_other(cluster: Replicated) -> None:
    project = f"art{os.getpid()}a"
    with cluster.client() as client:
        client.create_project(project)
    for writer, reader in (cluster.urls, cluster.urls[::-1]):
        data = os.urandom(70_000)
        digest = put_blob(writer, cluster.caught_up(), project, data)
        got = loopback.get(f"{reader}/blobs/{digest}", headers=cluster.caught_up(), timeout=30)
        assert got.status_code == 200, got.text
        assert got.content == data
        missing = loopback.post(f"{reader}/projects/{project}/blobs/missing", json={"digests": [digest]},
                                headers=cluster.caught_up(), timeout=30)
        assert missing.status_code == 200 and missing.json()["missing"] == [], missing.text


def test_datasets_pushed_and_pulled_through_the_sdk_over_both_replicas(cluster: Replicated, tmp_path: Path) -> None:
    project = f"art{os.getpid()}d"
    with cluster.client() as client:
        client.create_project(project)
        for version in range(1, 5):  # each push's requests are spread over both replicas
            root = tmp_path / f"v{version}"
            files = {f"f{i}.bin": os.urandom(5_000 + version) for i in range(4)}
            for name, data in files.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)
            client.artifacts.push_dataset(project, "ds", root)
            out = tmp_path / f"out{version}"
            client.artifacts.pull_dataset(project, f"ds@v{version}", out)
            assert {p.name: p.read_bytes() for p in out.iterdir()} == files


def hold_gc_lease(cluster: Replicated, holder: str, expires_at: float) -> None:
    """Write the ``artifacts.gc`` lease as another holder would (the bucket is the only truth)."""
    async def write() -> None:
        nc = await connect(cluster.plat.nats_url)
        try:
            leases = await JetStreamLeases.open(nc.jetstream())
            current = await leases.read("artifacts.gc")
            record = LeaseRecord(holder, (current[0].term if current else 0) + 1, expires_at)
            if current is None:
                await leases.create("artifacts.gc", record)
            else:
                await leases.update("artifacts.gc", record, current[1])
        finally:
            await nc.close()
    asyncio.run(write())


def test_gc_runs_on_one_replica_at_a_time_and_keeps_what_either_references(cluster: Replicated) -> None:
    project = f"art{os.getpid()}g"
    with cluster.client() as client:
        client.create_project(project)
        kept = client.create_run(project)["id"]
    a, b = cluster.urls
    orphans = [put_blob(url, cluster.caught_up(), project, os.urandom(3000)) for url in (a, b)]
    logged = put_blob(a, cluster.caught_up(), project, os.urandom(3000))
    resp = loopback.post(f"{b}/projects/{project}/runs/{kept}/artifacts", timeout=30, headers=cluster.caught_up(),
                         json={"name": "weights", "digest": logged, "kind": "file"})
    assert resp.status_code == 201, resp.text

    hold_gc_lease(cluster, "artifacts/elsewhere", time.time() + 60)  # another replica collects
    for url in (a, b):
        refused = loopback.post(f"{url}/admin/gc", params={"grace_seconds": 0}, headers=cluster.caught_up(),
                                timeout=60)
        assert refused.status_code == 409, refused.text
        assert "artifacts/elsewhere" in refused.json()["error"]["message"]
    assert all(loopback.get(f"{a}/blobs/{d}", headers=cluster.caught_up(), timeout=30).status_code == 200
               for d in orphans)

    hold_gc_lease(cluster, "artifacts/elsewhere", 0.0)  # it ended (released)
    done = loopback.post(f"{b}/admin/gc", params={"grace_seconds": 0}, headers=cluster.caught_up(), timeout=120)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert set(orphans) <= set(answer["removed"]) and logged not in answer["removed"]
    assert answer["referenced_after_removal"] == [] and answer["complete"]
    for url in (a, b):  # the referenced blob through either replica; the orphans gone for both
        assert loopback.get(f"{url}/blobs/{logged}", headers=cluster.caught_up(), timeout=30).status_code == 200
        missing = loopback.post(f"{url}/projects/{project}/blobs/missing", json={"digests": [*orphans, logged]},
                                headers=cluster.caught_up(), timeout=30)
        assert sorted(missing.json()["missing"]) == sorted(orphans), missing.text
    again = loopback.post(f"{a}/admin/gc", params={"grace_seconds": 0}, headers=cluster.caught_up(), timeout=120)
    assert again.status_code == 200, again.text  # b released the lease when it was done


def test_both_replicas_read_models_equal_a_rebuild(cluster: Replicated) -> None:
    headers = cluster.caught_up()
    hashes = [loopback.get(f"{url}/admin/content-hash", headers=headers, timeout=60) for url in cluster.urls]
    assert all(r.status_code == 200 for r in hashes), [r.text for r in hashes]
    assert hashes[0].json()["content_hash"] == hashes[1].json()["content_hash"]
    rebuilt = loopback.post(f"{cluster.urls[1]}/admin/rebuild", headers=cluster.plat.service_headers, timeout=120)
    assert rebuilt.status_code == 200, rebuilt.text
    assert rebuilt.json()["content_hash"] == hashes[0].json()["content_hash"]


