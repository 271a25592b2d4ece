"""Content-addressed blobs are readable only through the caller's projects (404 otherwise, so
digests are never confirmed), even though one blob may be shared by several projects."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

import cairn
from cairn.core import blake3

from platform_harness import Platform


def test_blobs_and_manifests_are_scoped_to_the_callers_projects(platform: Platform, tmp_path: Path) -> None:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    for name in ("vis-a", "vis-b"):
        admin.post("/registry/projects", json={"name": name}).raise_for_status()
    tokens = {user: admin.post("/tokens", json={"user": user}).json()["token"] for user in ("ann", "bea")}
    admin.post("/projects/vis-a/members", json={"user": "ann", "role": "editor"}).raise_for_status()
    admin.post("/projects/vis-b/members", json={"user": "bea", "role": "editor"}).raise_for_status()

    secret, shared = os.urandom(4096), b"the same bytes in both projects"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "secret.bin").write_bytes(secret)
    (tmp_path / "a" / "shared.txt").write_bytes(shared)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "shared.txt").write_bytes(shared)
    with cairn.Client(platform.gateway, token=tokens["ann"]) as ann:
        pushed = ann.artifacts.push_dataset("vis-a", "private", tmp_path / "a")
    with cairn.Client(platform.gateway, token=tokens["bea"]) as bea:
        bea.artifacts.push_dataset("vis-b", "mine", tmp_path / "b")

    def get(user: str, path: str) -> int:
        return httpx.get(f"{platform.gateway}/api/v1/artifacts{path}",
                         headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=30).status_code

    secret_digest, shared_digest = blake3(secret).hex(), blake3(shared).hex()
    manifest = f"/manifests/{pushed.manifest.digest}"
    assert get("ann", f"/blobs/{secret_digest}") == 200
    assert get("ann", manifest) == 200
    assert get("bea", f"/blobs/{secret_digest}") == 404
    assert get("bea", manifest) == 404
    assert get("bea", f"/blobs/{shared_digest}") == 200  # referenced by bea's own dataset too
    never_referenced = "0" * 64
    assert get("ann", f"/blobs/{never_referenced}") == 404
    site_admin = admin.get(f"/artifacts/blobs/{secret_digest}")
    assert site_admin.status_code == 200 and site_admin.content == secret
