"""Job tokens: the ``CAIRN_TOKEN`` a job's process gets, instead of its agent's own token.

The scheduler mints one per assignment; the gateway accepts it as the job's submitter with the
editor role in the job's project and nothing else (no other project, no token, member, webhook or
audit routes, no site admin), until it expires. A job token is ``cairnjob_<claims>.<signature>``:
the claims are base64url JSON (user, project, job, run, attempt, expiry), the signature their
HMAC-SHA256 under a key both hold. The key is made once, by whichever of them starts first, in the
NATS key-value bucket ``cairn-keys``, which only the services' NATS users may read (agents' may
not; see cairn.kernel.natsauth). Tokens are not stored, so one cannot be revoked before it expires: a job's token
lives for the job's timeout plus an hour, or a week for jobs without a timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from cairn.kernel.keybucket import bucket_key

PREFIX = "cairnjob_"
KEY_NAME = "job-token"
_DOMAIN = b"cairn job token v1\n"
NO_TIMEOUT_TTL_S = 7 * 86400
AFTER_TIMEOUT_S = 3600


class InvalidJobToken(ValueError):
    """The token is malformed, was not signed with this key, or has expired (the message says which)."""


@dataclass(frozen=True)
class JobClaims:
    user: str
    project: str
    job_id: str
    run_id: str
    attempt: int
    expires_at: int  # unix seconds


def lifetime_s(timeout_s: float | None) -> float:
    """How long a job's token lives: its timeout plus an hour, or a week without a timeout."""
    return (timeout_s + AFTER_TIMEOUT_S) if timeout_s else NO_TIMEOUT_TTL_S


def _sign(key: bytes, payload: bytes) -> str:
    return hmac.new(key, _DOMAIN + payload, hashlib.sha256).hexdigest()


def mint(key: bytes, claims: JobClaims) -> str:
    body = {"u": claims.user, "p": claims.project, "j": claims.job_id, "r": claims.run_id,
            "a": claims.attempt, "x": claims.expires_at}
    payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).rstrip(b"=")
    return f"{PREFIX}{payload.decode()}.{_sign(key, payload)}"


def verify(key: bytes, token: str, *, now: float | None = None) -> JobClaims:
    if not token.startswith(PREFIX) or token.count(".") != 1:
        raise InvalidJobToken("the token is not a Cairn job token")
    payload, signature = token[len(PREFIX):].encode().split(b".")
    if not hmac.compare_digest(_sign(key, payload), signature.decode("ascii", "replace")):
        raise InvalidJobToken("the job token is not valid")
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        claims = JobClaims(user=str(body["u"]), project=str(body["p"]), job_id=str(body["j"]),
                           run_id=str(body["r"]), attempt=int(body["a"]), expires_at=int(body["x"]))
    except (ValueError, KeyError, TypeError):
        raise InvalidJobToken("the job token is not valid") from None
    if claims.expires_at <= (time.time() if now is None else now):
        raise InvalidJobToken("the job token has expired (it lives for the job's timeout plus an hour)")
    return claims


async def shared_key(js: Any, *, replicas: int = 1) -> bytes:
    """The signing key from NATS (``cairn-keys``, made on first use)."""
    return await bucket_key(js, KEY_NAME, replicas=replicas)
