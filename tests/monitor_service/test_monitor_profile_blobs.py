"""Registered profiles are blobs of their project in the artifacts service: the monitor uploads
the canonical bytes with its own identity on the project's behalf before it appends
``profile.registered``, so the project's members download the same bytes through the artifacts
API, other projects cannot, and garbage collection keeps them; with the artifacts service down, registering is a 503 that appends
nothing, and a profile stored by an older monitor as a local file is still read.

A module of its own platform (not the shared one): it kills the artifacts service and restarts
the monitor."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import cairn
from cairn.core import blake3
from cairn.monitor import profile as profile_lib
from cairn.sdk.client import ApiError

from platform_harness import Platform, read_all_events, stream_last_seq

TEAM, OTHER = "prof-team", "prof-other"


@pytest.fixture(scope="module")
def tokens(platform: Platform) -> Iterator[dict[str, str]]:
    """ann edits prof-team, vic views it, oz edits prof-other only."""
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as admin:
        for name in (TEAM, OTHER):
            admin.post("/registry/projects", json={"name": name}).raise_for_status()
        made = {user: admin.post("/tokens", json={"user": user}).json()["token"] for user in ("ann", "vic", "oz")}
        for project, user, role in ((TEAM, "ann", "editor"), (TEAM, "vic", "viewer"), (OTHER, "oz", "editor")):
            admin.post(f"/projects/{project}/members", json={"user": user, "role": role}).raise_for_status()
        yield made


def _as(platform: Platform, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{platform.gateway}/api/v1", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def _profile(seed: int) -> Any:
    rng = np.random.default_rng(seed)
    return profile_lib.profile_table(pd.DataFrame({"amount": rng.normal(0, 1, 200), "country": ["de"] * 200}))


def _body(profile: Any) -> dict[str, Any]:
    return {"profile": json.loads(profile.to_json()), "source": {"dataset": "fraud", "version": 1}}


def _wait_answering(url: str, headers: dict[str, str], timeout: float = 30.0) -> httpx.Response:
    """The first answer of a restarted service (connection refused until it listens)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, headers=headers, timeout=10)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_registered_profile_is_a_blob_its_project_can_download(platform: Platform, tokens: dict[str, str],
                                                                 tmp_path: Path) -> None:
    profile = _profile(1)
    with _as(platform, tokens["ann"]) as ann:
        created = ann.post(f"/monitor/projects/{TEAM}/profiles", json=_body(profile))
        assert created.status_code == 201, created.text
    digest = created.json()["digest"]
    assert digest == profile.digest()

    with cairn.Client(platform.gateway, token=tokens["vic"]) as vic:  # a viewer of the project
        path = vic.artifacts.download_blob(digest, tmp_path / "profile.json")
    assert path.read_bytes() == profile.to_json()
    with cairn.Client(platform.gateway, token=tokens["oz"]) as oz, pytest.raises(ApiError) as denied:
        oz.artifacts.download_blob(digest, tmp_path / "not-mine.json")
    assert denied.value.status == 404

    # garbage collection keeps it (profile.registered is a reference), and collects a blob nothing names
    with _as(platform, tokens["ann"]) as ann, httpx.Client(base_url=f"{platform.gateway}/api/v1",
                                                           headers=platform.headers, timeout=30) as admin:
        loose = b"bytes nothing refers to"
        loose_digest = blake3(loose).hex()
        assert ann.put(f"/artifacts/projects/{TEAM}/blobs/{loose_digest}", content=loose).status_code == 201
        swept = admin.post("/artifacts/admin/gc", params={"grace_seconds": 0})
        assert swept.status_code == 200, swept.text
        assert loose_digest in swept.json()["removed"] and digest not in swept.json()["removed"]
    with cairn.Client(platform.gateway, token=tokens["vic"]) as vic:
        assert vic.artifacts.download_blob(digest, tmp_path / "again.json").read_bytes() == profile.to_json()

    events = [e for e in read_all_events(platform.nats_url) if e["aggregate_id"] == digest]
    assert [(e["type"], e["project"]) for e in events] == [("blob.possessed", TEAM), ("profile.registered", TEAM)]
    assert events[0]["actor"].startswith("service:monitor")  # the monitor uploaded it, for the project


def test_without_the_artifacts_service_registering_is_a_503_that_appends_nothing(
        platform: Platform, tokens: dict[str, str]) -> None:
    profile = _profile(2)
    platform.kill("artifacts")
    try:
        before = stream_last_seq(platform)
        with _as(platform, tokens["ann"]) as ann:
            refused = ann.post(f"/monitor/projects/{TEAM}/profiles", json=_body(profile))
            assert refused.status_code == 503, refused.text
            assert "artifacts service" in refused.json()["error"]["message"]
            assert stream_last_seq(platform) == before
            listed = ann.get(f"/monitor/projects/{TEAM}/profiles").json()["profiles"]
            assert profile.digest() not in [p["digest"] for p in listed]
    finally:
        platform.start_service("artifacts")
    with _as(platform, tokens["ann"]) as ann:
        created = ann.post(f"/monitor/projects/{TEAM}/profiles", json=_body(profile))
        assert created.status_code == 201, created.text
        assert ann.get(f"/monitor/projects/{TEAM}/profiles/{profile.digest()}").content == profile.to_json()


def test_a_profile_file_from_an_older_monitor_is_still_read(platform: Platform, tokens: dict[str, str]) -> None:
    """A restarted monitor (empty cache) with the artifacts service down: the profile is a 503
    until the data dir has the old ``<digest>.json`` file, then that file is served."""
    profile = _profile(3)
    digest = profile.digest()
    with _as(platform, tokens["ann"]) as ann:
        assert ann.post(f"/monitor/projects/{TEAM}/profiles", json=_body(profile)).status_code == 201
    platform.kill("artifacts")
    try:
        platform.restart("monitor")
        url = f"{platform.service_url('monitor')}/projects/{TEAM}/profiles/{digest}"
        down = _wait_answering(url, platform.service_headers)
        assert down.status_code == 503 and "artifacts service" in down.json()["error"]["message"]
        legacy = platform.data_dir / "monitor" / "profiles"
        legacy.mkdir(parents=True, exist_ok=True)
        (legacy / f"{digest}.json").write_bytes(profile.to_json())
        read = httpx.get(url, headers=platform.service_headers, timeout=10)
        assert read.status_code == 200 and read.content == profile.to_json()
    finally:
        platform.start_service("artifacts")
