"""Blob bundles (services/artifacts/api_bundles.py, src/cairn/sdk/bundles.py): a tree of small
files travels in a few requests each way, with the guarantees of one-by-one transfers: every member
verified, a bad member gives the project nothing, reads only of blobs the caller's projects hold."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cairn.core import blake3, fingerprint_tree
from cairn.protocol import BUNDLE_MAX_FILES, BUNDLE_MEDIA_TYPE, BUNDLE_MEMBER_MAX, bundle_header
from cairn.sdk import Client
from cairn.sdk.artifacts import restore_tree
from cairn.sdk.bundles import groups
from cairn.sdk.client import ApiError

from platform_harness import Platform, read_all_events

pytestmark = pytest.mark.shared_stack


@pytest.fixture(scope="module")
def blobs(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/artifacts", timeout=30,
                      headers=platform.headers) as client:
        yield client


class Requests:
    """The SDK's requests, seen through httpx's event hooks: (method, path) of each."""

    def __init__(self, client: Client) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        client._http.event_hooks["request"].append(self._saw)

    def _saw(self, request: httpx.Request) -> None:
        path = request.url.path
        self.seen[(request.method, "/".join("D" if len(p) == 64 else p for p in path.split("/")))] += 1


def _tree(root: Path, count: int, size: int) -> dict[str, bytes]:
    files = {f"d{i % 3}/f{i:03d}.bin": os.urandom(size) for i in range(count)}
    files["d0/dup.bin"] = files["d0/f000.bin"]  # the same bytes twice: sent and fetched once
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _bundle(*members: tuple[str, bytes]) -> bytes:
    return b"".join(bundle_header(d, len(b)) + b for d, b in members)


def test_a_tree_of_small_files_travels_in_bundles_both_ways(platform: Platform, project: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cairn.sdk.bundles.BUNDLE_BYTES", 256 << 10)  # several bundles from a small tree
    files = _tree(tmp_path / "src", 60, 20_000)
    manifest = fingerprint_tree(tmp_path / "src")
    with Client(platform.gateway, token=platform.token) as client:
        seen = Requests(client)
        sent = client.artifacts.upload_tree(project, manifest, tmp_path / "src")
        assert sent == (60, 60 * 20_000)
        uploads = seen.seen[("POST", f"/api/v1/artifacts/projects/{project}/blobs/bundle")]
        assert uploads == 5  # 60 files of 20 kB in bundles of 256 KiB: 13 + 13 + 13 + 13 + 8
        assert not [k for k in seen.seen if k[0] == "PUT"]  # no file went alone
        assert client.artifacts.missing(project, [e.digest for e in manifest.entries]) == []

        restore_tree(client.artifacts, manifest, tmp_path / "out", None)
        assert seen.seen[("POST", "/api/v1/artifacts/blobs/bundle")] == 5
        assert not [k for k in seen.seen if k[0] == "GET" and k[1].startswith("/api/v1/artifacts/blobs/")]
    for rel, data in files.items():
        assert (tmp_path / "out" / rel).read_bytes() == data
    assert not list((tmp_path / "out").rglob(".cairn-*"))  # no temporary file left behind


def test_a_bundle_with_one_bad_member_gives_the_project_nothing(blobs: httpx.Client, project: str) -> None:
    good = os.urandom(5000)
    bad = os.urandom(5000)
    digests = [blake3(good).hex(), blake3(b"claimed").hex()]
    resp = blobs.post(f"/projects/{project}/blobs/bundle", content=_bundle((digests[0], good), (digests[1], bad)),
                      headers={"Content-Type": BUNDLE_MEDIA_TYPE})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "digest_mismatch"
    assert resp.json()["error"]["details"]["actual"] == blake3(bad).hex()
    # the good member was verified too, but possession needs the whole bundle
    assert blobs.post(f"/projects/{project}/blobs/missing", json={"digests": digests}).json()["missing"] == digests

    ok = blobs.post(f"/projects/{project}/blobs/bundle", content=_bundle((digests[0], good)))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"blobs": [{"digest": digests[0], "size": 5000, "created": True}]}
    again = blobs.post(f"/projects/{project}/blobs/bundle", content=_bundle((digests[0], good)))
    assert again.json()["blobs"][0]["created"] is False


def _possession_records(platform: Platform, project: str) -> list[tuple[str, list[str]]]:
    """The project's possession events in log order: (type, digests)."""
    return [(e["type"], [b["digest"] for b in e["data"]["blobs"]] if e["type"] == "blobs.possessed"
             else [e["data"]["digest"]])
            for e in read_all_events(platform.nats_url)
            if e["project"] == project and e["type"] in ("blob.possessed", "blobs.possessed")]


def test_a_bundle_is_recorded_in_one_event_and_each_blob_once(platform: Platform, blobs: httpx.Client,
                                                              project: str) -> None:
    bodies = [os.urandom(3000) for _ in range(7)]
    members = [(blake3(b).hex(), b) for b in bodies]
    first = blobs.post(f"/projects/{project}/blobs/bundle", content=_bundle(*members[:3]))
    assert [b["created"] for b in first.json()["blobs"]] == [True, True, True], first.text
    # two known and two new members: one record, of the new ones only
    second = blobs.post(f"/projects/{project}/blobs/bundle", content=_bundle(*members[1:5]))
    assert [b["created"] for b in second.json()["blobs"]] == [False, False, True, True], second.text
    digests = [d for d, _ in members]
    assert _possession_records(platform, project) == [("blobs.possessed", digests[:3]),
                                                      ("blobs.possessed", digests[3:5])]
    # the same new blobs in bundles sent at once: recorded by one of them
    last = _bundle(members[5], members[6], members[0])
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: blobs.post(f"/projects/{project}/blobs/bundle", content=last), range(4)))
    assert sorted(tuple(b["created"] for b in a.json()["blobs"]) for a in answers) == [
        (False, False, False)] * 3 + [(True, True, False)]
    records = _possession_records(platform, project)
    assert Counter(d for _, ds in records for d in ds) == Counter(digests)
    assert blobs.post(f"/projects/{project}/blobs/missing", json={"digests": digests}).json()["missing"] == []


def test_a_large_bundle_is_recorded_a_thousand_blobs_to_an_event(platform: Platform, blobs: httpx.Client,
                                                                 project: str) -> None:
    from cairn.services.artifacts.domain import POSSESSIONS_PER_EVENT

    members = [(blake3(b).hex(), b) for b in (b"blob %d" % i for i in range(POSSESSIONS_PER_EVENT + 1))]
    resp = blobs.post(f"/projects/{project}/blobs/bundle", content=_bundle(*members))
    assert resp.status_code == 200, resp.text
    assert all(b["created"] for b in resp.json()["blobs"])
    # 1,001 new blobs: an event of 1,000 and one of the last
    digests = [d for d, _ in members]
    assert _possession_records(platform, project) == [("blobs.possessed", digests[:POSSESSIONS_PER_EVENT]),
                                                      ("blobs.possessed", digests[POSSESSIONS_PER_EVENT:])]


@pytest.mark.parametrize("body, says", [
    (b"not a frame header at all, and much longer than one could be" * 3, "has no header line"),
    (b"abc 5\nhello", "a bundle frame starts with"),
    (bundle_header("a" * 64, 10) + b"short", "ends inside frame 1"),
    (bundle_header("a" * 64, BUNDLE_MEMBER_MAX + 1), "upload that file alone"),
    (bundle_header("a" * 64, 3) + b"abc" + b"b" * 30, "ends inside frame 2's header"),
])
def test_malformed_bundles_are_refused_with_what_to_fix(blobs: httpx.Client, project: str, body: bytes,
                                                        says: str) -> None:
    resp = blobs.post(f"/projects/{project}/blobs/bundle", content=body)
    assert resp.status_code == 422, resp.text
    assert says in resp.json()["error"]["message"]
    assert "nothing was recorded" in resp.json()["error"]["message"]


def test_bundle_reads_keep_the_access_rules(platform: Platform, blobs: httpx.Client, project: str,
                                            api: httpx.Client) -> None:
    mine = os.urandom(3000)
    digest = blake3(mine).hex()
    assert blobs.post(f"/projects/{project}/blobs/bundle", content=_bundle((digest, mine))).status_code == 200
    user = f"bundle-reader-{project}"
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as admin:
        token = admin.post("/tokens", json={"user": user}).json()["token"]
        other = f"{project}-other"
        admin.post("/registry/projects", json={"name": other}).raise_for_status()
        admin.post(f"/projects/{other}/members", json={"user": user, "role": "editor"}).raise_for_status()
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/artifacts", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as outsider:
        refused = outsider.post("/blobs/bundle", json={"digests": [digest]})
        assert refused.status_code == 404 and digest in refused.json()["error"]["message"]
        # not a member of the project: no upload into it (a 404, as for a project that does not exist)
        assert outsider.post(f"/projects/{project}/blobs/bundle", content=_bundle((digest, mine))).status_code == 404
        # sending the bytes into a project of its own is what lets it read them
        assert outsider.post(f"/projects/{other}/blobs/bundle", content=_bundle((digest, mine))).status_code == 200
        got = outsider.post("/blobs/bundle", json={"digests": [digest, digest]})
    assert got.status_code == 200 and got.headers["content-type"] == BUNDLE_MEDIA_TYPE
    assert got.content == _bundle((digest, mine), (digest, mine))
    too_many = blobs.post("/blobs/bundle", json={"digests": [digest] * (BUNDLE_MAX_FILES + 1)})
    assert too_many.status_code == 422


def test_a_blob_gone_from_storage_ends_the_bundle_and_is_reported_alone(platform: Platform, project: str,
                                                                         tmp_path: Path) -> None:
    files = _tree(tmp_path / "src", 4, 1000)
    manifest = fingerprint_tree(tmp_path / "src")
    with Client(platform.gateway, token=platform.token) as client:
        client.artifacts.upload_tree(project, manifest, tmp_path / "src")
        gone = blake3(files["d1/f001.bin"]).hex()
        (platform.data_dir / "artifacts" / "blobs" / gone[:2] / gone[2:4] / gone).unlink()
        with pytest.raises(ApiError) as err:
            restore_tree(client.artifacts, manifest, tmp_path / "out", None)
    assert err.value.status == 404 and gone in str(err.value)
    # what came before the missing blob in the bundle (in path order) arrived whole
    assert (tmp_path / "out" / "d0" / "f003.bin").read_bytes() == files["d0/f003.bin"]


def test_groups_cut_by_bytes_and_count() -> None:
    assert groups([5, 5, 5, 20, 1], lambda n: n, max_bytes=10, max_files=10) == [[5, 5], [5], [20], [1]]
    assert groups(list(range(5)), lambda n: 0, max_bytes=10, max_files=2) == [[0, 1], [2, 3], [4]]
    assert groups([], lambda n: n) == []


def test_a_blob_corrupt_in_storage_is_never_written_and_is_reported_alone(platform: Platform, project: str,
                                                                          tmp_path: Path) -> None:
    """The service sends bundle members as stored (their reader hashes each): a member whose bytes
    changed in storage is not written; the SDK reads it alone, and the service's own check says
    it is corrupt. Members before it in the bundle arrived whole."""
    files = _tree(tmp_path / "src", 4, 1000)
    manifest = fingerprint_tree(tmp_path / "src")
    with Client(platform.gateway, token=platform.token) as client:
        client.artifacts.upload_tree(project, manifest, tmp_path / "src")
        bad = blake3(files["d1/f001.bin"]).hex()
        stored = platform.data_dir / "artifacts" / "blobs" / bad[:2] / bad[2:4] / bad
        stored.write_bytes(b"rotten" + stored.read_bytes()[6:])
        with pytest.raises(ApiError) as err:
            restore_tree(client.artifacts, manifest, tmp_path / "out", None)
    assert err.value.status == 500 and err.value.code == "blob_corrupt" and bad in str(err.value)
    assert not (tmp_path / "out" / "d1" / "f001.bin").exists()
    assert (tmp_path / "out" / "d0" / "f003.bin").read_bytes() == files["d0/f003.bin"]
