"""Bounds: body size (413), rate per token and per user (429 with Retry-After), event visibility
per project."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import loopback
import nats
import pytest

import cairn
from cairn.kernel import jobtoken
from cairn.kernel.identity import JOB_KIND, Caller
from cairn.sdk import client as sdk_client
from cairn.services.gateway.limits import (
    RateLimited,
    RequestLimits,
    TokenBuckets,
    request_limits,
    tier_of,
    tiered_limits,
)

from platform_harness import Platform, running

# Per token 2/s (bursts of 5), per user 1/s (bursts of 8): three tokens of one user could make 15
# requests at once, their user only 8, so the user's limit is always the first to refuse them.
# The site admin (the harness's token) gets the same per token, set explicitly: admins have a tier
# of their own (five times the users' unless set).
LIMITS = {"CAIRN_RATE_LIMIT": "2", "CAIRN_RATE_BURST": "5", "CAIRN_RATE_LIMIT_USER": "1",
          "CAIRN_RATE_BURST_USER": "8", "CAIRN_RATE_LIMIT_ADMIN": "2", "CAIRN_RATE_BURST_ADMIN": "5"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running(Platform(tmp_path_factory.mktemp("limited"), env=LIMITS)) as plat:
        yield plat


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _patient(call: Callable[[], httpx.Response], deadline_s: float = 60) -> httpx.Response:
    """``call`` again after each 429's Retry-After (the admin's own buckets are drained by other tests)."""
    deadline = time.monotonic() + deadline_s
    while True:
        resp = call()
        if resp.status_code != 429:
            return resp
        assert time.monotonic() < deadline, resp.text
        time.sleep(int(resp.headers["Retry-After"]))


def _first_refusal(gateway: str, tokens: list[str], deadline_s: float = 60) -> tuple[int, httpx.Response]:
    """Requests from ``tokens`` in turn until one is refused: (how many passed, the refusal)."""
    deadline = time.monotonic() + deadline_s
    with httpx.Client(base_url=f"{gateway}/api/v1", timeout=30) as http:
        passed = 0
        while True:
            token = tokens[passed % len(tokens)]
            resp = http.get("/whoami", headers={"Authorization": f"Bearer {token}"})
            if resp.status_code == 429:
                return passed, resp
            assert resp.status_code == 200, resp.text
            passed += 1
            assert time.monotonic() < deadline, f"{passed} requests and no 429"


def test_rate_limit_answers_429_with_retry_after(limited: Platform) -> None:
    codes = [loopback.get(f"{limited.gateway}/api/v1/whoami", headers=limited.headers) for _ in range(12)]
    refused = [r for r in codes if r.status_code == 429]
    assert refused, [r.status_code for r in codes]
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].json()["error"]["code"] == "rate_limited"


def test_token_bucket_refills() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=2, clock=clock)
    buckets.take("a")
    buckets.take("a")
    with pytest.raises(RateLimited) as err:
        buckets.take("a")
    assert err.value.details["retry_after"] == 1
    buckets.take("b")  # other keys have buckets of their own
    clock.now += 0.5  # one request's worth at 2/s
    buckets.take("a")
    with pytest.raises(RateLimited):
        buckets.take("a")
    clock.now += 60
    buckets.take("a")
    buckets.take("a")  # refilled to the burst, not beyond it
    with pytest.raises(RateLimited):
        buckets.take("a")
    TokenBuckets(rate=0, burst=0).take("off")  # rate 0 means no limit


def test_full_buckets_are_dropped_so_memory_stays_bounded() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=10.0, burst=5, clock=clock, sweep_at=100)
    for i in range(10_000):  # a new token every 10 ms; each bucket is full again after 0.1 s
        buckets.take(f"token-{i}")
        clock.now += 0.01
        assert len(buckets) <= 100 + 1
    buckets.take("busy")
    buckets.take("busy")
    for i in range(200):
        buckets.take(f"idle-{i}")  # forces a sweep at the same instant: busy's bucket is not full
    assert buckets.level("busy", clock.now) == 3  # kept: dropping it would give busy a full burst again


def test_a_request_takes_from_its_token_and_its_user() -> None:
    clock = FakeClock()
    limits = RequestLimits(TokenBuckets(2, 3, clock=clock), TokenBuckets(1, 4, clock=clock))
    for token in ("t1", "t1", "t2", "t2"):
        limits.take(token, "alice")
    with pytest.raises(RateLimited) as err:
        limits.take("t3", "alice")  # a fresh token: its bucket is full, alice's is empty
    assert err.value.details == {"retry_after": 1, "retry_after_s": 1.0, "limits": ["user"]}
    assert "per user" in err.value.message and "alice" in err.value.message
    limits.take("job-7", "bob")  # another user (here through a job token) is unaffected
    for _ in range(3):
        limits.take("t9", "bob")
    with pytest.raises(RateLimited) as err:
        limits.take("t9", "bob")  # t9's 3 and bob's 4 are both used up
    assert err.value.details["limits"] == ["token", "user"]
    # a refused request costs nothing: after one request's worth of time alice may make one
    clock.now += 1.0
    limits.take("t3", "alice")
    with pytest.raises(RateLimited):
        limits.take("t3", "alice")


def test_the_user_limit_defaults_to_twice_the_token_limit() -> None:
    limits = request_limits(200, 400, None, None)
    assert (limits.per_user.rate, limits.per_user.burst) == (400, 800)
    off = request_limits(0, 400, None, None)
    assert not off.per_token.enabled and not off.per_user.enabled
    only_users = request_limits(0, 0, 5, 10)
    assert not only_users.per_token.enabled and only_users.per_user.rate == 5


def test_service_accounts_and_site_admins_have_tiers_of_their_own() -> None:
    settings = SimpleNamespace(rate_limit=100.0, rate_burst=200.0, rate_limit_user=None, rate_burst_user=None,
                               rate_limit_service=None, rate_burst_service=None, rate_limit_admin=3.0,
                               rate_burst_admin=2.0)
    limits = tiered_limits(settings)
    assert (limits["user"].per_token.rate, limits["user"].per_user.rate) == (100, 200)
    assert (limits["service"].per_token.rate, limits["service"].per_token.burst) == (500, 1000)  # 5x by default
    assert (limits["admin"].per_token.rate, limits["admin"].per_token.burst) == (3, 2)  # as set
    root = Caller("root", "adm1", "user", True)
    assert tier_of(root) == "admin" and tier_of(Caller("ci", "svc1", "service", False)) == "service"
    assert tier_of(Caller("jo", "job-1", JOB_KIND, False)) == "user"
    limits.take_for(root)
    limits.take_for(root)
    with pytest.raises(RateLimited, match="bursts of 2"):  # the admin tier's burst is its own
        limits.take_for(root)
    limits.take("t1", "root", "user")  # the same user through a plain token: the user tier's buckets
    off = tiered_limits(SimpleNamespace(**{**vars(settings), "rate_limit": 0.0, "rate_burst": 0.0,
                                           "rate_limit_admin": None, "rate_burst_admin": None}))
    assert not off["service"].per_token.enabled and not off["admin"].per_user.enabled  # 0 = off follows


def test_the_sdk_waits_out_a_429_for_as_long_as_retry_after_says(limited: Platform,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The token's burst is 5 at 2/s: the 6th and later calls are refused once each and the SDK
    sleeps what the answer asks (plus jitter) before trying again, so every call succeeds."""
    admin = httpx.Client(base_url=f"{limited.gateway}/api/v1", headers=limited.headers, timeout=30)
    token = _patient(lambda: admin.post("/tokens", json={"user": "sam"})).json()["token"]
    sleeps: list[float] = []
    asked: list[float] = []

    class RecordingTime:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            sleeps.append(seconds)
            time.sleep(seconds)

    def record(resp: httpx.Response) -> None:
        if resp.status_code == 429:
            resp.read()
            asked.append(float(resp.json()["error"]["details"]["retry_after_s"]))
            assert int(resp.headers["Retry-After"]) >= 1

    monkeypatch.setattr(sdk_client, "time", RecordingTime())
    with cairn.Client(limited.gateway, token) as client:
        client._http.event_hooks["response"].append(record)
        users = [client.whoami()["user"] for _ in range(8)]
    assert users == ["sam"] * 8
    assert asked, "no call was refused: the limits were not reached"
    assert len(sleeps) == len(asked)
    assert all(slept >= want for slept, want in zip(sleeps, asked, strict=True)), (sleeps, asked)


def test_a_users_tokens_share_the_user_limit(limited: Platform) -> None:
    admin = httpx.Client(base_url=f"{limited.gateway}/api/v1", headers=limited.headers, timeout=30)
    una = [_patient(lambda: admin.post("/tokens", json={"user": "una"})).json()["token"] for _ in range(3)]
    otto = _patient(lambda: admin.post("/tokens", json={"user": "otto"})).json()["token"]
    passed, refused = _first_refusal(limited.gateway, una)
    assert passed >= 8  # the user's burst
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["limits"] == ["user"]
    assert "per user" in error["message"] and "una" in error["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    resp = loopback.get(f"{limited.gateway}/api/v1/whoami", headers={"Authorization": f"Bearer {otto}"})
    assert resp.status_code == 200 and resp.json()["user"] == "otto"


def test_job_tokens_count_against_their_submitter(limited: Platform) -> None:
    async def key() -> bytes:
        conn = await nats.connect(limited.nats_url)
        try:
            return await jobtoken.shared_key(conn.jetstream())
        finally:
            await conn.close()

    signing_key = asyncio.run(key())
    expires = int(time.time()) + 3600
    jobs = [jobtoken.mint(signing_key, jobtoken.JobClaims(user="jo", project="p", job_id=f"job{i}",
                                                          run_id=f"run{i}", attempt=1, expires_at=expires))
            for i in range(3)]
    passed, refused = _first_refusal(limited.gateway, jobs)
    assert passed >= 8
    assert refused.json()["error"]["details"]["limits"] == ["user"]
    assert "jo's tokens and jobs" in refused.json()["error"]["message"]


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
    with loopback.stream("GET", f"{platform.gateway}/api/v1/events/stream", params={"since": 0, "types": "run.*"},
                      headers=headers, timeout=20) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["project"] == "seen"
                break
    assert loopback.get(f"{platform.gateway}/api/v1/events/stream", params={"project": "unseen"},
                     headers=headers).status_code == 404
