"""The SDK's retry waits (cairn.sdk.retry): what a 429 asks for, with jitter, and bounded."""

from __future__ import annotations

import random

import httpx

from cairn.sdk.retry import JITTER, MAX_WAIT_S, retry_after, wait_for


def _refusal(status: int = 429, *, header: str | None = "1", precise: float | None = 0.25) -> httpx.Response:
    details = {} if precise is None else {"retry_after_s": precise}
    headers = {} if header is None else {"Retry-After": header}
    return httpx.Response(status, json={"error": {"code": "rate_limited", "message": "slow down",
                                                  "details": details}}, headers=headers)


def test_the_precise_wait_in_the_body_wins_over_the_whole_seconds_header() -> None:
    assert retry_after(_refusal()) == 0.25
    assert retry_after(_refusal(precise=None, header="3")) == 3.0
    assert retry_after(_refusal(precise=None, header="Wed, 21 Oct 2015 07:28:00 GMT")) is None
    assert retry_after(httpx.Response(429, text="not json", headers={"Retry-After": "2"})) == 2.0


def test_a_429_waits_what_it_asks_plus_jitter_and_never_less() -> None:
    rng = random.Random(7)
    waits = [wait_for(_refusal(), backoff=0.1, rng=rng) for _ in range(200)]
    assert all(w is not None and 0.25 <= w <= 0.25 * (1 + JITTER) + 0.001 for w in waits)
    assert len({round(w, 6) for w in waits if w is not None}) > 100  # spread, so clients do not return together


def test_other_failures_back_off_with_jitter_and_long_asks_are_not_retried() -> None:
    rng = random.Random(3)
    for resp in (None, httpx.Response(502), _refusal(503, header=None, precise=None)):
        wait = wait_for(resp, backoff=0.4, rng=rng)
        assert wait is not None and 0.4 <= wait <= 0.4 * (1 + JITTER)
    assert wait_for(_refusal(precise=MAX_WAIT_S + 1), backoff=0.1, rng=rng) is None
    assert wait_for(_refusal(503, precise=2.0), backoff=0.1, rng=rng) >= 2.0  # a 503 that names a wait
