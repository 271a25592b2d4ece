"""Direct transfers on the file system backend (services/artifacts/direct.py): the SDK's bytes go
between it and the artifacts service without the gateway, under a signed URL; a forged, altered
or expired URL is refused and stores nothing; a commit needs an upload made with its plan; and
the plans keep the access rules of the proxied routes. Bundles of small files take the same
direct route, under URLs that allow only what they were signed for."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cairn.core import blake3, fingerprint_tree
from cairn.kernel.errors import Forbidden
from cairn.protocol import bundle_header
from cairn.sdk import Client
from cairn.sdk.artifacts import restore_tree
from cairn.services.artifacts.direct import FsDirect

from platform_harness import Platform, running

PROJECTS = ("direct-a", "direct-b")


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running(Platform(tmp_path_factory.mktemp("platform-direct"), direct_artifacts=True,
                          service_env={"artifacts": {"CAIRN_ARTIFACTS_DIRECT_SECONDS": "60"}})) as plat:
        with httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30) as admin:
            for name in PROJECTS:
                admin.post("/registry/projects", json={"name": name}).raise_for_status()
        yield plat


@pytest.fixture(autouse=True)
def direct_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sends files under 8 MiB through the gateway; these tests move small files directly."""
    monkeypatch.setattr("cairn.sdk.artifacts.DIRECT_UPLOAD_MIN", 0)


def _blob_stored(plat: Platform, digest: str) -> bool:
    return (plat.data_dir / "artifacts" / "blobs" / digest[:2] / digest[2:4] / digest).is_file()


def test_sdk_round_trip_goes_to_the_artifacts_service(plat: Platform, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    digest = blake3(data).hex()
    with Client(plat.gateway, token=plat.token) as client:
        plan = client.artifacts._call("POST", f"/projects/direct-a/blobs/{digest}/upload-plan",
                                      json={"size": len(data)})
        assert plan["mode"] == "presigned" and plan["url"].startswith(plat.service_url("artifacts") + "/direct/")
        assert client.artifacts.upload_blob("direct-a", src) == {"digest": digest, "size": len(data), "created": True}
        down = client.artifacts._call("GET", f"/blobs/{digest}/download-plan")
        assert down["url"].startswith(plat.service_url("artifacts") + "/direct/blobs/")
        out = client.artifacts.download_blob(digest, tmp_path / "out.bin")
        assert Path(out).read_bytes() == data
    # the URL alone (no token, no gateway) reads the blob: its signature is the authorization
    assert httpx.get(down["url"]).content == data


def test_altered_forged_and_expired_urls_are_refused(plat: Platform, tmp_path: Path) -> None:
    data = b"signed bytes" * 1000
    digest = blake3(data).hex()
    with Client(plat.gateway, token=plat.token) as client:
        plan = client.artifacts._call("POST", f"/projects/direct-a/blobs/{digest}/upload-plan",
                                      json={"size": len(data)})
    url = plan["url"]
    other = blake3(b"other").hex()
    for bad in (url.replace(digest, other), url.replace("direct-a", "direct-b"),
                url.replace(f"size={len(data)}", f"size={len(data) + 1}"), url.split("&sig=")[0] + "&sig=AAAA",
                url.split("?")[0]):
        resp = httpx.put(bad, content=data)
        assert resp.status_code == 403, (bad, resp.text)
        assert "signature" in resp.json()["error"]["message"]
    assert not _blob_stored(plat, digest)
    exp = int(url.split("exp=")[1].split("&")[0])
    resp = httpx.put(url.replace(f"exp={exp}", f"exp={exp + 3600}"), content=data)
    assert resp.status_code == 403  # a later expiry is not what was signed
    # wrong bytes under a valid URL: 422, nothing stored
    resp = httpx.put(url, content=b"x" * len(data))
    assert resp.status_code == 422 and not _blob_stored(plat, digest)


def test_a_commit_needs_an_upload_made_with_its_plan(plat: Platform, tmp_path: Path) -> None:
    """Possession is proved by sending the bytes: a project cannot commit a plan whose upload this
    service never received, even for a blob that another project stored."""
    data = b"held by direct-a only" * 500
    digest = blake3(data).hex()
    src = tmp_path / "a.bin"
    src.write_bytes(data)
    with Client(plat.gateway, token=plat.token) as client:
        client.artifacts.upload_blob("direct-a", src)
        plan = client.artifacts._call("POST", f"/projects/direct-b/blobs/{digest}/upload-plan",
                                      json={"size": len(data)})
        with httpx.Client(base_url=f"{plat.gateway}/api/v1/artifacts", headers=plat.headers, timeout=30) as http:
            resp = http.post(f"/projects/direct-b/blobs/{digest}/commit", json={"token": plan["token"]})
            assert resp.status_code == 409, resp.text
            missing = http.post("/projects/direct-b/blobs/missing", json={"digests": [digest]}).json()
            assert missing["missing"] == [digest]
            assert httpx.put(plan["url"], content=data).status_code == 201
            resp = http.post(f"/projects/direct-b/blobs/{digest}/commit", json={"token": plan["token"]})
            assert resp.status_code == 200 and resp.json()["created"] is True
            again = http.post(f"/projects/direct-b/blobs/{digest}/commit", json={"token": plan["token"]})
            assert again.status_code == 409  # a plan's upload is committed once


def test_plans_keep_the_access_rules(plat: Platform) -> None:
    with httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30) as admin:
        token = admin.post("/tokens", json={"user": "dora"}).json()["token"]
        admin.post("/projects/direct-a/members", json={"user": "dora", "role": "viewer"}).raise_for_status()
    digest = blake3(b"rules").hex()
    with httpx.Client(base_url=f"{plat.gateway}/api/v1/artifacts", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as viewer:
        assert viewer.post(f"/projects/direct-a/blobs/{digest}/upload-plan", json={"size": 5}).status_code == 403
        assert viewer.get(f"/blobs/{digest}/download-plan").status_code == 404


def test_a_url_past_its_expiry_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The expiry is checked against the service's clock (time mocked here: the rule, in process)."""
    now = [1_000_000.0]
    monkeypatch.setattr("cairn.services.artifacts.direct.time.time", lambda: now[0])
    direct = FsDirect("http://127.0.0.1:1", b"k" * 32, expires=60)
    plan = direct.upload_plan("p", "0" * 64, 5)
    exp = int(plan["url"].split("exp=")[1].split("&")[0])
    assert exp == 1_000_060
    direct.check(plan["token"], exp, "PUT", "p", "0" * 64, 5)  # good until then
    now[0] += 61
    with pytest.raises(Forbidden, match="expired"):
        direct.check(plan["token"], exp, "PUT", "p", "0" * 64, 5)
    with pytest.raises(Forbidden, match="signature"):
        FsDirect("http://127.0.0.1:1", b"j" * 32, expires=60).check(plan["token"], exp, "PUT", "p", "0" * 64, 5)


def _bundle(*members: bytes) -> bytes:
    return b"".join(bundle_header(blake3(b).hex(), len(b)) + b for b in members)


def test_bundles_skip_the_gateway_both_ways(plat: Platform, tmp_path: Path) -> None:
    files = {f"d/f{i}.bin": os.urandom(10_000 + i) for i in range(30)}
    for rel, data in files.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(data)
    manifest = fingerprint_tree(tmp_path / "src")
    service = httpx.URL(plat.service_url("artifacts"))
    with Client(plat.gateway, token=plat.token) as client:
        bytes_to: dict[str, int] = {"service": 0, "gateway": 0}

        def saw(request: httpx.Request) -> None:
            side = "service" if request.url.port == service.port else "gateway"
            bytes_to[side] += int(request.headers.get("content-length", 0) or 0)

        client.artifacts._plain_http().event_hooks["request"].append(saw)
        client._http.event_hooks["request"].append(saw)
        assert client.artifacts.upload_tree("direct-b", manifest, tmp_path / "src") == (30, sum(map(len, files.values())))
        assert client.artifacts.missing("direct-b", [blake3(b).hex() for b in files.values()]) == []
        restore_tree(client.artifacts, manifest, tmp_path / "out", None)
    assert all((tmp_path / "out" / rel).read_bytes() == data for rel, data in files.items())
    assert bytes_to["gateway"] < 20_000  # plans, the commit and the missing query: no file's bytes


def test_bundle_urls_allow_only_what_they_were_signed_for(plat: Platform) -> None:
    data, other = os.urandom(2000), os.urandom(2000)
    digest = blake3(data).hex()
    with httpx.Client(base_url=f"{plat.gateway}/api/v1/artifacts", headers=plat.headers, timeout=30) as http:
        plan = http.post("/projects/direct-a/blobs/bundle-plan", json={}).json()
        assert plan["mode"] == "direct" and plan["url"].startswith(plat.service_url("artifacts") + "/direct/")
        for bad in (plan["url"].replace("direct-a", "direct-b"), plan["url"].split("&sig=")[0] + "&sig=AAAA",
                    plan["url"].replace("nonce=", "nonce=x")):
            assert httpx.post(bad, content=_bundle(data)).status_code == 403
        assert not _blob_stored(plat, digest)
        # sent, but not committed: the project does not hold it
        assert httpx.post(plan["url"], content=_bundle(data)).status_code == 200
        assert http.post("/projects/direct-a/blobs/missing", json={"digests": [digest]}).json()["missing"] == [digest]
        assert http.post("/projects/direct-b/blobs/bundle-commit", json={"token": plan["token"]}).status_code == 409
        done = http.post("/projects/direct-a/blobs/bundle-commit", json={"token": plan["token"]})
        assert done.status_code == 200 and done.json()["blobs"] == [{"digest": digest, "size": 2000, "created": True}]
        assert http.post("/projects/direct-a/blobs/bundle-commit", json={"token": plan["token"]}).status_code == 409
        # a download URL reads exactly the list it was signed for
        other_digest = blake3(other).hex()
        http.put(f"/projects/direct-a/blobs/{other_digest}", content=other).raise_for_status()
        urls = http.post("/blobs/bundle-plan", json={"bundles": [[digest]]}).json()["urls"]
    assert httpx.post(urls[0], json={"digests": [digest]}).content == _bundle(data)
    assert httpx.post(urls[0], json={"digests": [other_digest]}).status_code == 403
    assert httpx.post(urls[0], json={"digests": [digest, other_digest]}).status_code == 403
