"""Content-addressed blobs are readable only by projects that proved they hold the content (they
uploaded the bytes, or pushed a manifest of files they had uploaded); knowing a digest is not
enough, and answers never confirm that a blob exists elsewhere (404 for unknown and for
not-possessed alike). Storage is still shared: each blob is kept once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import cairn
from cairn.core import Manifest, blake3
from cairn.sdk.tls import tls_context

from platform_harness import Platform, read_all_events

NEVER_STORED = blake3(b"bytes nobody ever uploaded").hex()


@dataclass
class World:
    """Two teams (ann in vis-a, bea in vis-b), a viewer of vis-a (vic) and an outsider (oz) with a
    project of their own (vis-o); ann pushed a dataset with a secret file."""

    platform: Platform
    admin: httpx.Client
    tokens: dict[str, str]
    secret: bytes
    shared: bytes
    manifest_digest: str
    bea_pushed_files: int

    def as_user(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.platform.gateway}/api/v1/artifacts", timeout=30, verify=tls_context(),
                            headers={"Authorization": f"Bearer {self.tokens[user]}"})  # one TLS context (tests/loopback.py)

    def status(self, user: str, method: str, path: str) -> int:
        with self.as_user(user) as http:
            return http.request(method, path).status_code

    def missing(self, user: str, project: str, digests: list[str]) -> list[str]:
        with self.as_user(user) as http:
            resp = http.post(f"/projects/{project}/blobs/missing", json={"digests": digests})
            assert resp.status_code == 200, resp.text
            return resp.json()["missing"]


@pytest.fixture(scope="module")
def world(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    for name in ("vis-a", "vis-b", "vis-o"):
        admin.post("/registry/projects", json={"name": name}).raise_for_status()
    tokens = {user: admin.post("/tokens", json={"user": user}).json()["token"]
              for user in ("ann", "bea", "vic", "oz")}
    for project, user, role in (("vis-a", "ann", "editor"), ("vis-b", "bea", "editor"),
                                ("vis-a", "vic", "viewer"), ("vis-o", "oz", "editor")):
        admin.post(f"/projects/{project}/members", json={"user": user, "role": role}).raise_for_status()

    tmp = tmp_path_factory.mktemp("blob-visibility")
    secret, shared = os.urandom(4096), b"the same bytes in both projects"
    (tmp / "a").mkdir()
    (tmp / "a" / "secret.bin").write_bytes(secret)
    (tmp / "a" / "shared.txt").write_bytes(shared)
    (tmp / "b").mkdir()
    (tmp / "b" / "shared.txt").write_bytes(shared)
    with cairn.Client(platform.gateway, token=tokens["ann"]) as ann:
        pushed = ann.artifacts.push_dataset("vis-a", "private", tmp / "a")
    with cairn.Client(platform.gateway, token=tokens["bea"]) as bea:
        bea_push = bea.artifacts.push_dataset("vis-b", "mine", tmp / "b")
    yield World(platform, admin, tokens, secret, shared, pushed.manifest.digest, bea_push.uploaded_files)
    admin.close()


def test_blobs_and_manifests_are_scoped_to_the_projects_that_hold_them(world: World) -> None:
    secret, shared = blake3(world.secret).hex(), blake3(world.shared).hex()
    manifest = f"/manifests/{world.manifest_digest}"
    assert world.status("ann", "GET", f"/blobs/{secret}") == 200
    assert world.status("ann", "GET", manifest) == 200
    assert world.status("vic", "GET", f"/blobs/{secret}") == 200  # a viewer of the project
    assert world.status("bea", "GET", f"/blobs/{secret}") == 404
    assert world.status("bea", "GET", manifest) == 404
    # bea's push sent the shared file although vis-a had stored it: bandwidth is deduplicated
    # only within a project, and that upload is what lets vis-b read it
    assert world.bea_pushed_files == 1
    assert world.status("bea", "GET", f"/blobs/{shared}") == 200
    assert world.status("ann", "GET", f"/blobs/{NEVER_STORED}") == 404
    site_admin = world.admin.get(f"/artifacts/blobs/{secret}")
    assert site_admin.status_code == 200 and site_admin.content == world.secret


def test_head_and_missing_do_not_reveal_other_projects_blobs(world: World) -> None:
    secret = blake3(world.secret).hex()
    for path in (f"/blobs/{secret}", f"/blobs/{NEVER_STORED}"):
        assert world.status("oz", "HEAD", path) == 404
        assert world.status("bea", "HEAD", path) == 404
    assert world.status("ann", "HEAD", f"/blobs/{secret}") == 200
    # "missing" answers what the asking project has not uploaded: the same for a blob stored by
    # another project as for one that does not exist
    assert world.missing("oz", "vis-o", [secret, NEVER_STORED]) == [secret, NEVER_STORED]
    assert world.missing("ann", "vis-a", [secret, NEVER_STORED]) == [NEVER_STORED]
    assert world.status("oz", "POST", "/projects/vis-a/blobs/missing") == 404  # not oz's project


def test_an_outsider_who_knows_a_digest_cannot_record_it_nor_read_it(world: World) -> None:
    """The reproducer of issue 17: recording a known digest as an artifact in one's own project
    was accepted (201) and then served the other project's bytes."""
    secret = blake3(world.secret).hex()
    with world.as_user("oz") as oz:
        answers = {}
        for digest in (secret, NEVER_STORED):
            resp = oz.post("/projects/vis-o/runs/r1/artifacts", json={"name": "stolen", "digest": digest})
            assert resp.status_code == 422, resp.text
            error = resp.json()["error"]
            answers[digest] = (error["code"], error["message"].replace(digest, "D"), error["details"]["missing"])
        # the same refusal for another project's blob as for one never stored: nothing confirmed
        assert answers[secret] == (answers[NEVER_STORED][0], answers[NEVER_STORED][1], [secret])
        assert oz.get("/projects/vis-o/runs/r1/artifacts").json() == {"artifacts": []}
        manifest = Manifest.from_dict({"entries": [
            {"path": "s.bin", "kind": "file", "size": len(world.secret), "digest": secret}]}).as_dict()
        for url in ("/projects/vis-o/manifests", "/projects/vis-o/datasets/stolen/versions"):
            resp = oz.post(url, json={"manifest": manifest})
            assert resp.status_code == 422 and resp.json()["error"]["details"]["missing"] == [secret], resp.text
        assert oz.get("/projects/vis-o/datasets/stolen").status_code == 404
        # a dataset version of vis-a's manifest digest, or a directory artifact naming it: refused
        resp = oz.post("/projects/vis-o/runs/r1/artifacts",
                       json={"name": "dir", "digest": world.manifest_digest, "kind": "directory"})
        assert resp.status_code == 422
    # a model version naming the digest is refused as one never stored (nothing confirmed), and grants nothing
    with cairn.Client(world.platform.gateway, token=world.tokens["oz"]) as oz_sdk:
        run = oz_sdk.create_run("vis-o")
        oz_sdk.create_model("vis-o", "m")
        refusals = {}
        for digest in (secret, NEVER_STORED):
            with pytest.raises(cairn.ApiError) as refused:
                oz_sdk.create_model_version("vis-o", "m", run_id=run["id"], artifact_digest=digest)
            refusals[digest] = (refused.value.status, refused.value.message.replace(digest, "D"))
        assert refusals[secret] == refusals[NEVER_STORED] and refusals[secret][0] == 422
        assert oz_sdk.request("GET", "/api/v1/registry/projects/vis-o/models/m/versions")["versions"] == []
    for method in ("GET", "HEAD"):
        assert world.status("oz", method, f"/blobs/{secret}") == 404
    assert world.status("oz", "GET", f"/manifests/{world.manifest_digest}") == 404


def test_uploading_the_bytes_proves_possession_once(world: World) -> None:
    data = os.urandom(2048)
    digest = blake3(data).hex()
    with world.as_user("bea") as bea:
        assert bea.put(f"/projects/vis-b/blobs/{digest}", content=data).status_code == 201
    with world.as_user("oz") as oz:
        wrong = oz.put(f"/projects/vis-o/blobs/{digest}", content=data[:-1] + b"x")
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "digest_mismatch"
        assert oz.get(f"/blobs/{digest}").status_code == 404  # wrong bytes prove nothing
        # already stored by vis-b: still received and hashed, and vis-o now holds it; the answer
        # is about vis-o only (201: new to vis-o), so it does not tell that vis-b has these bytes
        for status in (201, 200):
            resp = oz.put(f"/projects/vis-o/blobs/{digest}", content=data)
            assert resp.status_code == status and resp.json()["created"] is (status == 201), resp.text
        got = oz.get(f"/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
        assert oz.head(f"/blobs/{digest}").status_code == 200
        logged = oz.post("/projects/vis-o/runs/r2/artifacts", json={"name": "mine", "digest": digest})
        assert logged.status_code == 201, logged.text
    assert world.missing("oz", "vis-o", [digest]) == []
    possessed = [(e["project"], e["data"]["proof"]) for e in read_all_events(world.platform.nats_url)
                 if e["type"] == "blob.possessed" and e["data"]["digest"] == digest]
    assert sorted(possessed) == [("vis-b", "upload"), ("vis-o", "upload")]  # one per project


def test_a_run_file_upload_is_its_own_proof(world: World) -> None:
    """What the MLflow artifact proxy uses: one request, one event (run.artifact_logged v2, which
    is appended only for a blob the project holds), and the project may read the file."""
    data = os.urandom(3000)
    digest = blake3(data).hex()
    with world.as_user("oz") as oz:
        resp = oz.put("/projects/vis-o/runs/r3/files/out/model.bin", content=data)
        assert resp.status_code == 201 and resp.json()["digest"] == digest, resp.text
        assert oz.get(f"/blobs/{digest}").content == data
    assert world.status("ann", "GET", f"/blobs/{digest}") == 404
    events = [(e["type"], e["version"]) for e in read_all_events(world.platform.nats_url)
              if e["data"].get("digest") == digest]
    assert events == [("run.artifact_logged", 2)]


def test_a_pushed_dataset_is_pulled_by_the_projects_members_only(world: World, tmp_path: Path) -> None:
    with cairn.Client(world.platform.gateway, token=world.tokens["vic"]) as vic:
        record = vic.artifacts.pull_dataset("vis-a", "private", tmp_path / "vic")
    assert record["manifest_digest"] == world.manifest_digest
    assert (tmp_path / "vic" / "secret.bin").read_bytes() == world.secret
    with cairn.Client(world.platform.gateway, token=world.tokens["oz"]) as oz, \
            pytest.raises(cairn.ApiError) as err:
        oz.artifacts.pull_dataset("vis-a", "private", tmp_path / "oz")
    assert err.value.status == 404


def test_a_rebuild_gives_the_same_possession_answers(world: World) -> None:
    digests = [blake3(world.secret).hex(), blake3(world.shared).hex(), world.manifest_digest, NEVER_STORED]

    def answers() -> list[object]:
        out: list[object] = []
        for user, project in (("ann", "vis-a"), ("bea", "vis-b"), ("vic", "vis-a"), ("oz", "vis-o")):
            out.append(world.missing(user, project, digests))
            out += [world.status(user, method, f"/blobs/{d}") for d in digests for method in ("GET", "HEAD")]
        return out

    before, content = answers(), world.admin.get("/artifacts/admin/content-hash").json()["content_hash"]
    rebuilt = world.admin.post("/artifacts/admin/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text
    assert rebuilt.json()["content_hash"] == content
    assert answers() == before
