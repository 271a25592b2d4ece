"""Web sessions: a browser signs in once with a Cairn token and then sends an HttpOnly cookie.

Why server-side: signing out, revoking the token behind a session, and the idle and absolute
expiries must end a session at once, which a self-contained signed cookie cannot do. Sessions live
in the JetStream key-value bucket ``cairn-sessions`` (replicated like every bucket), not in the
gateway's read model (a rebuild replays the log, and sessions are not events) and not on the
gateway's disk: any gateway replica finds a session another one made, a sign-out on one ends it on
all at once, and a gateway restart keeps them. Only a hash of the session id is stored, and never
the token: a session names the token id it was made from and borrows that token's identity, so a
revoked or expired token ends its sessions.

A cookie is an ambient credential (the browser sends it with any request to the site), so every
request made with one that is not GET/HEAD/OPTIONS needs ``X-CSRF-Token``: a value derived from
the session id that the sign-in answer hands to the app's script and no other site can read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from nats.js import JetStreamContext
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.errors import Forbidden, Unauthorized
from cairn.kernel.identity import JOB_KIND
from cairn.protocol import SESSIONS_BUCKET
from cairn.services.gateway.auth import Principal, authenticate, token_principal

log = logging.getLogger(__name__)
SESSION_COOKIE = "cairn_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOUCH_EVERY_S = 30.0  # last use is written at most this often: idle expiry is judged to within it
SESSION_ROUTE = {"x-cairn-role": "session"}  # needs the cookie: a bearer token is not a session
OPEN_ROUTE = {"x-cairn-role": "open"}  # the body's token proves who signs in
LIST_TIMEOUT_S = 5.0  # listing a token's sessions (a watch over its index keys) gives up after this


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _session_key(id_hash: str) -> str:
    return f"s.{id_hash}"


def _index_prefix(token_id: str) -> str:
    """Where a token's sessions are listed: ``t.<hash of token id>.<session id hash>`` (hashed so
    that any token id is a valid key, and so that a revoked token's sessions are found without
    reading every session)."""
    return f"t.{hashlib.sha256(token_id.encode()).hexdigest()[:32]}"


def csrf_of(session_id: str) -> str:
    """The session's CSRF value: derived from the secret id (so nothing more is stored), and by a
    different function than the stored hash, so the bucket does not hold it either."""
    return hmac.new(session_id.encode(), b"cairn-csrf", hashlib.sha256).hexdigest()


async def sessions_bucket(js: JetStreamContext, *, replicas: int, max_s: float) -> KeyValue:
    """The ``cairn-sessions`` bucket, made on first use: one value per key (no history), and a
    TTL of the sessions' absolute lifetime, so a session nobody ended is gone by then anyway (a
    live one is rewritten at least every ``TOUCH_EVERY_S`` of use; ``find`` enforces both expiries
    to the second). Two gateways starting at once may both try to make it: the loser opens it."""
    try:
        return await js.key_value(SESSIONS_BUCKET)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(bucket=SESSIONS_BUCKET, history=1, ttl=max_s, replicas=replicas,
                                         description="web sessions of the gateway (hashes of session ids)")
    except BadRequestError:  # made meanwhile by another replica (perhaps with another lifetime)
        return await js.key_value(SESSIONS_BUCKET)


class SessionStore:
    """Sessions by the hash of their id, with idle and absolute expiry on ``clock`` (seconds).

    Every method is one or two key-value round trips, shared by all gateway replicas. The last use
    is rewritten with an optimistic update (expected revision), so a touch that races a sign-out
    on another replica fails instead of bringing the ended session back."""

    def __init__(self, kv: KeyValue, *, idle_s: float, max_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.idle_s = idle_s
        self.max_s = max_s
        self.clock = clock

    @classmethod
    async def open(cls, js: JetStreamContext, *, replicas: int = 1, idle_s: float, max_s: float,
                   clock: Callable[[], float] = time.time) -> "SessionStore":
        return cls(await sessions_bucket(js, replicas=replicas, max_s=max_s), idle_s=idle_s, max_s=max_s, clock=clock)

    async def create(self, token_id: str, user: str) -> str:
        """A new session for ``token_id``; returns its id (shown once, in the cookie). The token's
        index entry is written first, so that ending the token's sessions never misses it."""
        session_id = secrets.token_urlsafe(32)
        id_hash = _hash(session_id)
        now = self.clock()
        await self.kv.put(f"{_index_prefix(token_id)}.{id_hash}", b"1")
        record = {"token_id": token_id, "user": user, "created_at": now, "last_used": now}
        await self.kv.put(_session_key(id_hash), json.dumps(record).encode())
        return session_id

    async def find(self, session_id: str) -> dict[str, Any] | None:
        """The live session with this id (its use recorded), or None: unknown, ended or expired
        (an expired one is deleted here)."""
        id_hash = _hash(session_id)
        try:
            entry = await self.kv.get(_session_key(id_hash))
        except KeyNotFoundError:  # never made, ended (deleted) or gone with the bucket's TTL
            return None
        record: dict[str, Any] = json.loads(entry.value or b"{}")
        now = self.clock()
        if now - record["last_used"] >= self.idle_s or now - record["created_at"] >= self.max_s:
            await self._delete(id_hash, record["token_id"])
            return None
        if now - record["last_used"] >= TOUCH_EVERY_S:
            touched = {**record, "last_used": now}
            try:
                await self.kv.update(_session_key(id_hash), json.dumps(touched).encode(), last=entry.revision)
            except KeyWrongLastSequenceError:  # touched by another replica, or ended meanwhile
                pass
        return {"id_hash": id_hash, **record}

    async def end(self, session_id: str) -> None:
        id_hash = _hash(session_id)
        try:
            entry = await self.kv.get(_session_key(id_hash))
        except KeyNotFoundError:
            return
        await self._delete(id_hash, json.loads(entry.value or b"{}").get("token_id", ""))

    async def end_token(self, token_id: str) -> int:
        """End every session made from ``token_id``; how many were live."""
        ended = 0
        for index_key in await self._index_keys(token_id):
            id_hash = index_key.rsplit(".", 1)[1]
            try:
                await self.kv.get(_session_key(id_hash))
                ended += 1
            except KeyNotFoundError:
                pass
            await self._delete(id_hash, token_id)
        return ended

    async def count(self, token_id: str) -> int:
        """How many of ``token_id``'s sessions are stored (not yet ended or expired by TTL)."""
        live = 0
        for index_key in await self._index_keys(token_id):
            try:
                await self.kv.get(_session_key(index_key.rsplit(".", 1)[1]))
                live += 1
            except KeyNotFoundError:
                pass
        return live

    async def _delete(self, id_hash: str, token_id: str) -> None:
        await self.kv.delete(_session_key(id_hash))
        if token_id:
            await self.kv.delete(f"{_index_prefix(token_id)}.{id_hash}")

    async def _index_keys(self, token_id: str) -> list[str]:
        """The token's index keys, read with a watch filtered on the server to the token's
        prefix (nats-py's ``keys()`` would read every key of the bucket)."""
        watcher = await self.kv.watch(f"{_index_prefix(token_id)}.*", ignore_deletes=True, meta_only=True)
        keys: list[str] = []
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                while (entry := await watcher.updates(timeout=LIST_TIMEOUT_S)) is not None:
                    keys.append(entry.key)
        finally:
            await watcher.stop()
        return keys


async def session_principal(request: Request, session_id: str) -> Principal:
    """Who sends this cookie: the identity of the session's token as it is now (roles read
    fresh), counted against the token's and the user's rates like a bearer request. A write
    needs the CSRF header (compared in constant time)."""
    state = request.app.state
    sessions: SessionStore = state.sessions
    found = await sessions.find(session_id)
    if found is None:
        raise Unauthorized("your session has ended or expired; sign in again (POST /api/v1/session)")
    record = state.runtime.store.token(found["token_id"])
    if record is None:  # e.g. the read model is being rebuilt: refuse, but keep the session
        raise Unauthorized("the session's token is not known (yet); retry shortly or sign in again")
    try:
        principal = token_principal(state.runtime.store, record)
    except Unauthorized as err:  # revoked or expired: its sessions end with it
        await sessions.end_token(found["token_id"])
        raise Unauthorized(f"{err.message}; your session has ended") from None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_of(session_id).encode()):
            raise Forbidden(f"missing or wrong {CSRF_HEADER}: send the csrf value from the sign-in "
                            "(POST or GET /api/v1/session) with every write made with the session cookie")
    state.buckets.take_for(principal)
    request.state.caller = principal
    return principal


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(min_length=1, max_length=1000, description="a Cairn token (cairn_...)")]


def _body(principal: Principal, session_id: str) -> dict[str, Any]:
    return {"user": principal.user, "kind": principal.kind, "site_admin": principal.site_admin,
            "projects": dict(principal.roles), "csrf": csrf_of(session_id)}


def _cookie_session(request: Request) -> str:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        raise Unauthorized("no session: sign in with POST /api/v1/session and a token")
    return session_id


router = APIRouter(prefix="/api/v1/session", tags=["access"])


@router.post("", openapi_extra=OPEN_ROUTE)
async def sign_in(body: SessionCreate, request: Request) -> JSONResponse:
    """Exchange a token for a cookie session (the web UI's sign-in). A bad, expired or revoked
    token is a 401 like any bearer request with it; a job's token may not sign in (403)."""
    state = request.app.state
    try:
        principal = authenticate(state.runtime.store, f"Bearer {body.token.strip()}", state.job_key)
    except Unauthorized as err:
        log.warning("sign-in refused reason=%r client=%s request_id=%s", err.message,
                    request.client.host if request.client else "-", request.state.request_id)
        raise
    if principal.kind == JOB_KIND:
        raise Forbidden("a job's token cannot sign in to the web UI; use a user or service account token")
    state.buckets.take_for(principal)
    session_id = await state.sessions.create(principal.token_id, principal.user)
    response = JSONResponse(_body(principal, session_id))
    response.set_cookie(SESSION_COOKIE, session_id, max_age=int(state.sessions.max_s), path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("", openapi_extra=SESSION_ROUTE)
async def current_session(request: Request) -> dict[str, Any]:
    """The signed-in caller with their projects and roles as they are now, and the CSRF value."""
    session_id = _cookie_session(request)
    return _body(await session_principal(request, session_id), session_id)


@router.delete("", status_code=204, openapi_extra=SESSION_ROUTE)
async def sign_out(request: Request) -> Response:
    """End the session on the server (the CSRF header is needed) and clear the cookie."""
    session_id = _cookie_session(request)
    await session_principal(request, session_id)
    await request.app.state.sessions.end(session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
