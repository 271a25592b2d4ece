"""Bounds: body size (413), rate per token (429 with Retry-After), event visibility per project."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from cairn.services.gateway.limits import RateLimited, TokenBuckets

from platform_harness import Platform


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    plat = Platform(tmp_path_factory.mktemp("limited"), env={"CAIRN_RATE_LIMIT": "2", "CAIRN_RATE_BURST": "5"})
    plat.start()
    yield plat
    plat.stop()


def test_rate_limit_answers_429_with_retry_after(limited: Platform) -> None:
    codes = [httpx.get(f"{limited.gateway}/api/v1/whoami", headers=limited.headers) for _ in range(12)]
    refused = [r for r in codes if r.status_code == 429]
    assert refused, [r.status_code for r in codes]
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].json()["error"]["code"] == "rate_limited"


def test_token_bucket_refills() -> None:
    buckets = TokenBuckets(rate=1000.0, burst=2)
    buckets.take("a")
    buckets.take("a")
    with pytest.raises(RateLimited):
        for _ in range(5):
            buckets.take("a")
    TokenBuckets(rate=0, burst=0).take("off")  # rate 0 means no limit


def test_oversized_body_is_413_and_writes_nothing(platform: Platform) -> None:
    api = httpx.Client(base_url=f"{platform.gateway}/api/v1/registry", headers=platform.headers, timeout=30)
    api.post("/projects", json={"name": "big"}).raise_for_status()
    body = json.dumps({"params": {"x": "y" * (17 << 20)}})
    resp = api.post("/projects/big/runs", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"


def test_event_stream_shows_only_my_projects(platform: Platform) -> None:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    token = admin.post("/tokens", json={"user": "vera"}).json()["token"]
    for name in ("seen", "unseen"):
        admin.post("/registry/projects", json={"name": name}).raise_for_status()
    admin.post("/projects/seen/members", json={"user": "vera", "role": "viewer"}).raise_for_status()
    admin.post("/registry/projects/unseen/runs", json={}).raise_for_status()
    admin.post("/registry/projects/seen/runs", json={}).raise_for_status()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{platform.gateway}/api/v1/events/stream", params={"since": 0, "types": "run.*"},
                      headers=headers, timeout=20) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["project"] == "seen"
                break
    assert httpx.get(f"{platform.gateway}/api/v1/events/stream", params={"project": "unseen"},
                     headers=headers).status_code == 404
