"""Web sessions: a browser signs in once with a Cairn token and then sends an HttpOnly cookie.

Why server-side: signing out, revoking the token behind a session, and the idle and absolute
expiries must end a session at once, which a self-contained signed cookie cannot do. The sessions
live in a SQLite file of their own next to the gateway's read model (not in it: a rebuild of the
read model replays the log, and sessions are not events), so a gateway restart keeps them. Only a
hash of the session id is stored, and never the token: a session names the token id it was made
from and borrows that token's identity, so a revoked or expired token ends its sessions.

A cookie is an ambient credential (the browser sends it with any request to the site), so every
request made with one that is not GET/HEAD/OPTIONS needs ``X-CSRF-Token``: a value derived from
the session id that the sign-in answer hands to the app's script and no other site can read.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.errors import Forbidden, Unauthorized
from cairn.kernel.identity import JOB_KIND
from cairn.services.gateway.auth import Principal, authenticate, token_principal

log = logging.getLogger(__name__)
SESSION_COOKIE = "cairn_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOUCH_EVERY_S = 30.0  # last use is written at most this often: idle expiry is judged to within it
SESSION_ROUTE = {"x-cairn-role": "session"}  # needs the cookie: a bearer token is not a session
OPEN_ROUTE = {"x-cairn-role": "open"}  # the body's token proves who signs in

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY, token_id TEXT NOT NULL, user TEXT NOT NULL,
    created_at REAL NOT NULL, last_used REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_by_token ON sessions(token_id);
"""


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_of(session_id: str) -> str:
    """The session's CSRF value: derived from the secret id (so nothing more is stored), and by a
    different function than the stored hash, so the database does not hold it either."""
    return hmac.new(session_id.encode(), b"cairn-csrf", hashlib.sha256).hexdigest()


class SessionStore:
    """Sessions by the hash of their id, with idle and absolute expiry on ``clock`` (seconds)."""

    def __init__(self, path: str | Path, *, idle_s: float, max_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self.clock = clock
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def create(self, token_id: str, user: str) -> str:
        """A new session for ``token_id``; returns its id (shown once, in the cookie)."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE last_used <= ? OR created_at <= ?",
                             (now - self.idle_s, now - self.max_s))  # the expired ones, now and then
            self._db.execute("INSERT INTO sessions VALUES(?, ?, ?, ?, ?)",
                             (_hash(session_id), token_id, user, now, now))
        return session_id

    def find(self, session_id: str) -> dict[str, Any] | None:
        """The live session with this id (its use recorded), or None: unknown, ended or expired
        (an expired one is deleted here)."""
        key = _hash(session_id)
        now = self.clock()
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE id_hash=?", (key,)).fetchone()
            if row is None:
                return None
            if now - row["last_used"] >= self.idle_s or now - row["created_at"] >= self.max_s:
                self._db.execute("DELETE FROM sessions WHERE id_hash=?", (key,))
                return None
            if now - row["last_used"] >= TOUCH_EVERY_S:
                self._db.execute("UPDATE sessions SET last_used=? WHERE id_hash=?", (now, key))
        return dict(row)

    def end(self, session_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id_hash=?", (_hash(session_id),))

    def end_token(self, token_id: str) -> int:
        """End every session made from ``token_id``; how many there were."""
        with self._lock:
            return self._db.execute("DELETE FROM sessions WHERE token_id=?", (token_id,)).rowcount

    def count(self, token_id: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM sessions WHERE token_id=?", (token_id,)).fetchone()[0])


def session_principal(request: Request, session_id: str) -> Principal:
    """Who sends this cookie: the identity of the session's token as it is now (roles read
    fresh), counted against the token's and the user's rates like a bearer request. A write
    needs the CSRF header (compared in constant time)."""
    state = request.app.state
    sessions: SessionStore = state.sessions
    found = sessions.find(session_id)
    if found is None:
        raise Unauthorized("your session has ended or expired; sign in again (POST /api/v1/session)")
    record = state.runtime.store.token(found["token_id"])
    if record is None:  # e.g. the read model is being rebuilt: refuse, but keep the session
        raise Unauthorized("the session's token is not known (yet); retry shortly or sign in again")
    try:
        principal = token_principal(state.runtime.store, record)
    except Unauthorized as err:  # revoked or expired: its sessions end with it
        sessions.end_token(found["token_id"])
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
    session_id = state.sessions.create(principal.token_id, principal.user)
    response = JSONResponse(_body(principal, session_id))
    response.set_cookie(SESSION_COOKIE, session_id, max_age=int(state.sessions.max_s), path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("", openapi_extra=SESSION_ROUTE)
async def current_session(request: Request) -> dict[str, Any]:
    """The signed-in caller with their projects and roles as they are now, and the CSRF value."""
    session_id = _cookie_session(request)
    return _body(session_principal(request, session_id), session_id)


@router.delete("", status_code=204, openapi_extra=SESSION_ROUTE)
async def sign_out(request: Request) -> Response:
    """End the session on the server (the CSRF header is needed) and clear the cookie."""
    session_id = _cookie_session(request)
    session_principal(request, session_id)
    request.app.state.sessions.end(session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
