"""Who is calling a service, signed so that it cannot be forged, and the role each route needs.

The gateway authenticates a bearer token and passes the caller on to a service in one header,
``X-Cairn-Identity: <signer>.<claims>.<mac>`` (claims and MAC in unpadded base64url). The MAC is
HMAC-SHA256 under the signer's own key, derived from the site's service key (32 random bytes in
``<data dir>/secrets/service.key``, mode 0600, made by the first process that needs it). Services
that call each other sign as themselves, with the ``internal`` kind. A service answers 401 to any
request without a valid signature, from loopback too (only ``/healthz`` is open), so a local
process cannot reach a service around the gateway or forge who it is.

Each route declares the role it needs next to its decorator (``**requires(EDITOR)``); the
requirement is enforced on the signed caller and published in the OpenAPI document as
``x-cairn-role``, which the permission test reads to call every route with every kind of caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from cairn.kernel.asgi import send_json
from cairn.kernel.errors import Forbidden, NotFound, Unauthorized
from cairn.kernel.private_files import private_folder, write_private

IDENTITY_HEADER = "X-Cairn-Identity"
SERVICE_KEY_FILE = Path("secrets") / "service.key"
SIGNERS = frozenset({"gateway", "registry", "artifacts", "metrics", "scheduler", "lineage", "monitor",
                     "deployments", "pipelines"})
LIFETIME_S = 300  # a signature is good for this long: requests are answered in well under that
ROLES = ("viewer", "editor", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}

USER_KIND = "user"
SERVICE_ACCOUNT_KIND = "service"
JOB_KIND = "job"
INTERNAL_KIND = "internal"  # a service calling another service on its own behalf

# What a route needs (x-cairn-role). The first three are roles in the route's {project}.
VIEWER, EDITOR, ADMIN = "viewer", "editor", "admin"
SIGNED_IN = "signed-in"        # any caller; the route itself shows only the caller's projects
PERSON = "person"              # a user's own token: not a job, not a service account (e.g. create a project)
ACCOUNT = "account"            # a user's or service account's token, not a job's (e.g. manage tokens)
AGENT = "agent"                # a site admin or a service account (agents register with one)
SITE_ADMIN = "site-admin"
INTERNAL = "internal"          # only other services, never through the gateway
REQUIREMENTS = (VIEWER, EDITOR, ADMIN, SIGNED_IN, PERSON, ACCOUNT, AGENT, SITE_ADMIN, INTERNAL)
ADMIN_ONLY_ALIASES = frozenset({"production"})  # pointing these (any case) needs the admin role


@dataclass(frozen=True)
class Caller:
    """Who is calling: a user, service account or job through the gateway, or another service."""

    user: str
    token_id: str
    kind: str
    site_admin: bool
    roles: Mapping[str, str] = field(default_factory=dict)
    signer: str = "gateway"

    @property
    def actor(self) -> str:
        return f"{self.user}:{self.token_id}"

    @property
    def projects(self) -> list[str] | None:
        """The projects this caller may see; None for all of them (site admins, services)."""
        return None if self.site_admin else sorted(self.roles)

    def role_in(self, project: str) -> str | None:
        return "admin" if self.site_admin else self.roles.get(project)

    def require(self, project: str, role: str) -> None:
        """404 for non-members (ids are never confirmed), 403 for members without the role."""
        have = self.role_in(project)
        if have is None:
            raise NotFound(f"project {project!r} does not exist or you are not a member")
        if ROLE_RANK[have] < ROLE_RANK[role]:
            raise Forbidden(f"this needs the {role} role in project {project!r}; you are {have}")

    def require_site_admin(self) -> None:
        if not self.site_admin:
            raise Forbidden("this needs a site admin token")

    def claims(self) -> dict[str, Any]:
        return {"u": self.user, "t": self.token_id, "k": self.kind, "a": self.site_admin, "r": dict(self.roles)}


def load_service_key(data_dir: Path, path: Path | None = None) -> bytes:
    """The site's service key, made once (mode 0600, in the data dir's 0700 ``secrets`` folder)
    by whichever process comes first; the others read that one."""
    if path is None:
        path = private_folder(data_dir / SERVICE_KEY_FILE.parent) / SERVICE_KEY_FILE.name
    if not path.exists():
        write_private(path, os.urandom(32).hex() + "\n", keep_existing=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    text = path.read_text().strip()
    if len(text) != 64:
        raise ValueError(f"{path} does not hold a 32-byte hex key; remove it to have a new one made")
    return bytes.fromhex(text)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs callers as one service (``name``) with that service's key."""

    def __init__(self, site_key: bytes, name: str) -> None:
        if name not in SIGNERS:
            raise ValueError(f"unknown signer {name!r}")
        self.name = name
        self._key = signer_key(site_key, name)
        self._internal: tuple[float, str] | None = None

    def sign(self, caller: Caller, *, now: float | None = None) -> str:
        claims = {**caller.claims(), "x": int((now or time.time()) + LIFETIME_S)}
        body = _b64(orjson.dumps(claims))
        signed = f"{self.name}.{body}"
        mac = hmac.new(self._key, signed.encode(), hashlib.sha256).digest()
        return f"{signed}.{_b64(mac)}"

    def internal(self) -> dict[str, str]:
        """Headers for this service's own calls to another service (re-signed before expiry)."""
        now = time.time()
        if self._internal is None or self._internal[0] < now + LIFETIME_S / 2:
            caller = Caller(f"service:{self.name}", self.name, INTERNAL_KIND, True, {}, self.name)
            self._internal = (now + LIFETIME_S, self.sign(caller, now=now))
        return {IDENTITY_HEADER: self._internal[1]}


def signer_key(site_key: bytes, name: str) -> bytes:
    return hmac.new(site_key, f"cairn-signer:{name}".encode(), hashlib.sha256).digest()


class Verifier:
    """Checks ``X-Cairn-Identity`` headers signed by any known service."""

    def __init__(self, site_key: bytes) -> None:
        self._keys = {name: signer_key(site_key, name) for name in SIGNERS}

    def verify(self, header: str | None, *, now: float | None = None) -> Caller:
        if not header:
            raise Unauthorized("services answer only the gateway and each other: call Cairn through "
                               "the gateway with 'Authorization: Bearer cairn_...'")
        try:
            signer, body, mac = header.split(".")
            key = self._keys[signer]
            expected = hmac.new(key, f"{signer}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(mac)):
                raise ValueError("bad signature")
            claims = orjson.loads(_unb64(body))
            if claims["x"] < (now or time.time()):
                raise Unauthorized("the caller identity has expired")
            return Caller(str(claims["u"]), str(claims["t"]), str(claims["k"]), bool(claims["a"]),
                          {str(p): str(r) for p, r in claims["r"].items()}, signer)
        except Unauthorized:
            raise
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Unauthorized("the caller identity is not valid") from None


class ServiceAuth:
    """Pure ASGI middleware: every request but ``open_paths`` (and paths under ``open_prefixes``,
    whose routes check an authorization of their own, such as a signed URL) carries a valid signed
    caller, kept in ``scope["state"]["caller"]``; anything else is a 401 before routing."""

    def __init__(self, app: Any, verifier: Verifier, open_paths: frozenset[str] = frozenset({"/healthz"}),
                 open_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.verifier = verifier
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths or (
                self.open_prefixes and scope["path"].startswith(self.open_prefixes)):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers") or ():
            if name == b"x-cairn-identity":
                header = value.decode("latin-1")
                break
        try:
            caller = self.verifier.verify(header)
        except Unauthorized as err:
            await send_json(send, err.status, err.to_body())
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


def caller_of(request: Request) -> Caller:
    """The signed caller of this request (set by :class:`ServiceAuth`)."""
    caller = request.scope.get("state", {}).get("caller")
    if caller is None:  # an app without ServiceAuth: a wiring mistake, never an open door
        raise Unauthorized("this service was started without caller verification")
    return caller


async def current_caller(request: Request) -> Caller:
    """:func:`caller_of` as a FastAPI dependency (async: no thread-pool hop)."""
    return caller_of(request)


CallerDep = Annotated[Caller, Depends(current_caller)]


def check_requirement(caller: Caller, requirement: str, project: str | None) -> None:
    """Whether ``caller`` meets a route's ``requirement`` (see REQUIREMENTS). A project role is
    checked in the route's ``{project}`` (path, else query); without one, only site admins have it."""
    if caller.kind == INTERNAL_KIND:
        return  # another service: they trust each other
    if requirement == INTERNAL:
        raise Forbidden("this route is for Cairn's services only")
    if requirement in ROLE_RANK:
        if project is None:  # a project role over no project in particular: every project's
            caller.require_site_admin()
        else:
            caller.require(project, requirement)
    elif requirement == SITE_ADMIN:
        caller.require_site_admin()
    elif requirement == AGENT:
        if not (caller.site_admin or caller.kind == SERVICE_ACCOUNT_KIND):
            raise Forbidden("agents need a site-admin or service-account token "
                            "(cairn tokens create --service)")
    elif requirement in (PERSON, ACCOUNT):
        refused = (JOB_KIND, SERVICE_ACCOUNT_KIND) if requirement == PERSON else (JOB_KIND,)
        if caller.kind in refused and not caller.site_admin:
            who = "a job's token" if caller.kind == JOB_KIND else "a service account"
            raise Forbidden(f"{who} cannot do this; use a user's own token")
    elif requirement != SIGNED_IN:
        raise ValueError(f"unknown requirement {requirement!r}")


def requires(requirement: str) -> dict[str, Any]:
    """Route keyword arguments declaring what the route needs: enforced on the signed caller and
    published as ``x-cairn-role`` in the OpenAPI document.

    ``@router.post("/projects/{project}/runs", **requires(EDITOR))``
    """
    if requirement not in REQUIREMENTS:
        raise ValueError(f"unknown requirement {requirement!r}; one of {REQUIREMENTS}")

    async def enforce(request: Request) -> None:
        project = request.path_params.get("project") or request.query_params.get("project")
        check_requirement(caller_of(request), requirement, project)

    return {"dependencies": [Depends(enforce)], "openapi_extra": {"x-cairn-role": requirement}}
