"""Job tokens: minted and verified with one key; tampered, foreign, expired or malformed ones are refused;
the key is made once in NATS and every service reads the same one."""

from __future__ import annotations

import asyncio

import nats
import pytest

from cairn.kernel import jobtoken
from cairn.kernel.jobtoken import InvalidJobToken, JobClaims

KEY = b"k" * 32
CLAIMS = JobClaims(user="alice", project="vision", job_id="01abc", run_id="01def", attempt=2, expires_at=2_000)


def test_a_minted_token_verifies_to_its_claims() -> None:
    token = jobtoken.mint(KEY, CLAIMS)
    assert token.startswith(jobtoken.PREFIX)
    assert jobtoken.verify(KEY, token, now=1_999) == CLAIMS


@pytest.mark.parametrize("change", ["signature", "claims", "key", "expired", "garbled", "prefix"])
def test_altered_foreign_expired_or_garbled_tokens_are_refused(change: str) -> None:
    token = jobtoken.mint(KEY, CLAIMS)
    key, now = KEY, 1_000.0
    payload, signature = token[len(jobtoken.PREFIX):].split(".")
    if change == "signature":
        token = token[:-1] + ("0" if token[-1] != "0" else "1")
    elif change == "claims":  # another project's claims with the old signature
        other = jobtoken.mint(KEY, JobClaims(**{**CLAIMS.__dict__, "project": "audio"}))
        token = other.split(".")[0] + "." + signature
    elif change == "key":
        key = b"x" * 32
    elif change == "expired":
        now = 2_000.0
    elif change == "garbled":
        token = jobtoken.PREFIX + "not-base64!." + signature
    elif change == "prefix":
        token = "cairn_" + payload + "." + signature
    with pytest.raises(InvalidJobToken) as err:
        jobtoken.verify(key, token, now=now)
    assert ("expired" in str(err.value)) == (change == "expired")


def test_lifetime_follows_the_timeout() -> None:
    assert jobtoken.lifetime_s(600) == 600 + jobtoken.AFTER_TIMEOUT_S
    assert jobtoken.lifetime_s(None) == jobtoken.NO_TIMEOUT_TTL_S


def test_the_key_is_made_once_and_shared(nats_url: str) -> None:
    async def go() -> list[bytes]:
        clients = [await nats.connect(nats_url, max_reconnect_attempts=1) for _ in range(3)]
        try:
            return list(await asyncio.gather(*(jobtoken.shared_key(c.jetstream()) for c in clients)))
        finally:
            for c in clients:
                await c.close()

    first = asyncio.run(go())
    again = asyncio.run(go())
    assert len(first[0]) == 32 and first == [first[0]] * 3 and again == first
