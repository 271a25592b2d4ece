"""Authentication (bearer tokens, stored only as hashes) and authorization (roles per project).

Tokens look like ``cairn_<token id>_<secret>``; the gateway keeps SHA-256 of the secret. Roles:
viewer < editor < admin per project, and site admins who may do everything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cairn.kernel import jobtoken
from cairn.kernel.errors import Forbidden, NotFound, Unauthorized
from cairn.services.gateway.domain import role_rank
from cairn.services.gateway.store import GatewayStore

TOKEN_PREFIX = "cairn_"
JOB_KIND = "job"  # a job token's principal (cairn.kernel.jobtoken)
ADMIN_ONLY_ALIASES = {"production"}
READ_ONLY_POSTS = {"search", "missing"}  # POSTs that only read (queries with a body)


def new_token() -> tuple[str, str, str]:
    """A fresh token: (token id, full token shown once, hash of its secret)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (or service account) through one of their tokens."""

    user: str
    token_id: str
    kind: str
    site_admin: bool
    roles: dict[str, str] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return f"{self.user}:{self.token_id}"

    def role_in(self, project: str) -> str | None:
        return "admin" if self.site_admin else self.roles.get(project)

    def require(self, project: str, role: str) -> None:
        """404 for non-members (ids are never confirmed), 403 for members without the role."""
        have = self.role_in(project)
        if have is None:
            raise NotFound(f"project {project!r} does not exist or you are not a member")
        if role_rank(have) < role_rank(role):
            raise Forbidden(f"this needs the {role} role in project {project!r}; you are {have}")

    def require_site_admin(self) -> None:
        if not self.site_admin:
            raise Forbidden("this needs a site admin token")


def authenticate_request(request: Any, authorization: str | None) -> Principal:
    """Who sends this request (its bearer token), counted against the token's rate; kept on
    ``request.state.principal``. The gateway's own routes and the MLflow routes both come here."""
    state = request.app.state
    principal = authenticate(state.rt.store, authorization, state.job_key)
    state.buckets.take(principal.token_id, principal.user)  # and the user's: limits.RequestLimits
    request.state.principal = principal
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


def refuse_job_tokens(principal: Principal, what: str) -> None:
    if principal.kind == JOB_KIND:
        raise Forbidden(f"a job's token cannot {what}; use a user or service-account token")


def authorize_service_route(principal: Principal, method: str, rest: list[str]) -> str | None:
    """Check a request to ``/api/v1/<service>/<rest...>``; returns the project it is scoped to."""
    if rest and rest[0] == "admin":
        principal.require_site_admin()
        return None
    if rest[:1] == ["projects"] and len(rest) >= 2 and rest[1]:
        project = rest[1]
        principal.require(project, _project_role(method, rest[2:]))
        return project
    if rest == ["projects"] or rest[:1] == ["projects"] and len(rest) == 2 and not rest[1]:
        if method != "GET" and principal.kind in ("service", JOB_KIND) and not principal.site_admin:
            raise Forbidden(f"{'jobs' if principal.kind == JOB_KIND else 'service accounts'} cannot create projects")
        return None
    if method in ("GET", "HEAD"):
        return None
    if not principal.site_admin and not any(role_rank(r) >= role_rank("editor") for r in principal.roles.values()):
        raise Forbidden("this needs the editor role in some project")
    return None


def is_agent_route(service: str, rest: list[str]) -> bool:
    return service == "scheduler" and rest[:1] == ["agents"]


def authorize_agent_route(principal: Principal, method: str) -> None:
    """Scheduler agents (``/api/v1/scheduler/agents...``): anyone signed in may list them;
    registering needs a site-admin or a service-account token."""
    if method not in ("GET", "HEAD") and not (principal.site_admin or principal.kind == "service"):
        raise Forbidden("agents need a site-admin or service-account token (cairn tokens create --kind service)")


def _project_role(method: str, rest: list[str]) -> str:
    if method in ("GET", "HEAD") or (method == "POST" and rest and rest[-1] in READ_ONLY_POSTS):
        return "viewer"
    if method == "DELETE" or (rest and rest[-1] in ("archive", "restore")):
        return "admin"
    if len(rest) >= 4 and rest[0] == "models" and rest[2] == "aliases" and rest[3] in ADMIN_ONLY_ALIASES:
        return "admin"
    return "editor"
