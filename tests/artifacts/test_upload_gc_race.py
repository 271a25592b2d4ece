"""An upload stores its blob, then records it under the GC lock. A collection that ran in between
(and removed the blob) is noticed: the upload is refused and records nothing. Without a removal
in between, the upload does not re-check the store."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

from cairn.core import blake3
from cairn.services.artifacts.app import ArtifactsSettings, create_app
from cairn.services.registry.project_check import ProjectCheck

from platform_harness import signed_headers


async def _scenario(nats_url: str, data_dir: Path, *, collect: bool) -> tuple[httpx.Response, list[dict]]:
    app = create_app(ArtifactsSettings(nats_url=nats_url, data_dir=data_dir))
    project, run = "gcrace", os.urandom(6).hex()
    body = os.urandom(200_000)
    digest = blake3(body).hex()
    async with app.router.lifespan_context(app):
        blobs, lock = app.state.blobs, app.state.gc_lock
        # no registry runs here to say the project exists (services/artifacts/projects.py): known
        app.state.project_check = ProjectCheck(known=[project])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://artifacts",
                                     headers=signed_headers(data_dir)) as client:
            await lock.acquire()  # a collection is running
            upload = asyncio.create_task(client.put(f"/projects/{project}/runs/{run}/files/model.bin",
                                                    content=body))
            for _ in range(500):  # the blob is stored; the upload now waits for the lock
                if await asyncio.to_thread(blobs.exists, digest):
                    break
                await asyncio.sleep(0.01)
            assert blobs.exists(digest)
            if collect:
                blobs.remove(digest)  # what the collection does to an unreferenced blob
            lock.release()
            answer = await upload
            listed = (await client.get(f"/projects/{project}/runs/{run}/artifacts")).json()["artifacts"]
    return answer, listed


def test_an_upload_whose_blob_was_collected_meanwhile_records_nothing(nats_url: str, tmp_path: Path) -> None:
    answer, listed = asyncio.run(_scenario(nats_url, tmp_path / "data", collect=True))
    assert answer.status_code == 422, answer.text
    assert "removed while it was being logged" in answer.json()["error"]["message"]
    assert listed == []


def test_an_upload_with_no_collection_meanwhile_is_recorded(nats_url: str, tmp_path: Path) -> None:
    answer, listed = asyncio.run(_scenario(nats_url, tmp_path / "data", collect=False))
    assert answer.status_code == 201, answer.text
    assert [(a["name"], a["size"]) for a in listed] == [("model.bin", 200_000)]
