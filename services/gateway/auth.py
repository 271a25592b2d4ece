"""Authentication: bearer tokens, stored only as hashes.

Tokens look like ``cairn_<token id>_<secret>``; the gateway keeps SHA-256 of the secret. Roles are
viewer < editor < admin per project, and site admins who may do everything. The gateway checks
roles only on its own routes (tokens, members, audit, webhooks, events); a request it forwards
carries the caller, signed, and the service checks the role its route declares.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from typing import Any

from cairn.kernel import jobtoken
from cairn.kernel.errors import Unauthorized
from cairn.kernel.identity import JOB_KIND, Caller
from cairn.services.gateway.store import GatewayStore

TOKEN_PREFIX = "cairn_"


def new_token() -> tuple[str, str, str]:
    """A fresh token: (token id, full token shown once, hash of its secret)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


Principal = Caller  # the gateway's name for who calls; it signs it for the services


def authenticate_request(request: Any, authorization: str | None) -> Principal:
    """Who sends this request (its bearer token), counted against the token's and the user's
    rates; kept on ``request.state.caller``, where ``requires(...)`` and
    ``cairn.kernel.identity.current_caller`` read it. The gateway's own routes and the MLflow
    routes both come here."""
    state = request.app.state
    principal = authenticate(state.runtime.store, authorization, state.job_key)
    state.buckets.take_for(principal)  # and the user's: limits.RequestLimits
    request.state.caller = principal
    return principal


def authenticate(store: GatewayStore, authorization: str | None, job_key: bytes) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("send a token: 'Authorization: Bearer cairn_...' (see `cairn tokens create`)")
    token = authorization[7:].strip()
    if token.startswith(jobtoken.PREFIX):
        return _job_principal(job_key, token)
    parts = token.split("_", 2)
    if len(parts) != 3 or f"{parts[0]}_" != TOKEN_PREFIX:
        raise Unauthorized("the token is not a Cairn token (they start with 'cairn_')")
    record = store.token(parts[1])
    if record is None or not hmac.compare_digest(record["secret_hash"], hash_secret(parts[2])):
        raise Unauthorized("the token is not valid")
    return token_principal(store, record)


def token_principal(store: GatewayStore, record: dict[str, Any]) -> Principal:
    """The identity of a stored token, with its user's roles as they are now; 401 when it was
    revoked or has expired. Bearer requests and web sessions (made from a token) both end here."""
    if record["revoked"]:
        raise Unauthorized("the token was revoked")
    expires = record["expires_at"]
    if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= datetime.now(timezone.utc):
        raise Unauthorized("the token has expired; create a new one")
    return Principal(record["user"], record["token_id"], record["kind"], bool(record["site_admin"]),
                     store.roles_of(record["user"]))


def _job_principal(job_key: bytes, token: str) -> Principal:
    """A job's token: its submitter, with the editor role in the job's project and nothing else."""
    try:
        claims = jobtoken.verify(job_key, token)
    except jobtoken.InvalidJobToken as err:
        raise Unauthorized(str(err)) from None
    return Principal(claims.user, f"job-{claims.job_id}", JOB_KIND, False, {claims.project: "editor"})
