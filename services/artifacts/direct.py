"""Direct transfers on the file system backend: the bytes take one hop, client <-> this service.

Through the gateway a blob's bytes cross two Python processes. With ``CAIRN_ARTIFACTS_DIRECT_URL``
set (this service's address as clients reach it), transfer plans on the file system work like
presigned S3 URLs (presign.py): the gateway-authorized plan route hands out a URL of this service
that carries its own authorization, an HMAC over what it allows (method, project, digest, size,
expiry) with a key derived from the site's service key, and the client sends or fetches the bytes
there without the gateway.

- ``PUT /direct/projects/{p}/blobs/{digest}?size&exp&sig``: the body is hashed while it is written
  and stored only if it hashes to ``digest`` (422 otherwise), exactly as a proxied PUT. It does not
  make the project hold the blob: the client then commits through the gateway
  (``POST .../commit`` with the plan's token, as on S3), and the commit records possession only for
  a token whose upload this service received (kept in memory for the URL's lifetime: a restart in
  between means uploading again).
- ``GET /direct/blobs/{digest}?exp&sig``: the blob, read as ``GET /blobs/{digest}`` reads it
  (verified first unless ``CAIRN_ARTIFACTS_VERIFY_READS=false``); the plan route has already
  checked that one of the caller's projects holds it.
- Bundles of small blobs (api_bundles.py) the same way: an upload URL takes any number of bundles
  into one project until it expires (a leaked URL can fill storage until then, never give a
  project a blob: possession needs the commit, through the gateway, with the plan's token); a
  download URL reads exactly the list of digests it was signed for.

A URL without a valid signature, or past its expiry, is a 403 and touches nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from cairn.kernel.errors import Conflict, Forbidden, InvalidInput
from cairn.services.artifacts.api_blobs import Blobs, Digest, ProjectName, file_chunks

DIRECT_PREFIX = "/direct/"
DIRECT_ROUTE = {"x-cairn-role": "signed-url"}  # the URL's signature is the authorization
BUNDLE_PLAN_MEMBERS = 1_000_000  # files one bundle plan may take before its commit
router = APIRouter(tags=["blobs"])


class FsDirect:
    """Transfer plans pointing at this service's ``/direct/`` routes (the presigner of the file
    system backend: the same three calls as presign.S3Presigner)."""

    def __init__(self, base_url: str, service_key: bytes, expires: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = hmac.new(service_key, b"cairn artifacts direct transfers v1", hashlib.sha256).digest()
        self.expires = expires
        self.received: dict[str, tuple[str, str, int, float]] = {}  # token -> project, digest, size, expiry
        self.bundles: dict[str, tuple[str, dict[str, int], float]] = {}  # token -> project, members, expiry

    def sign(self, *parts: object) -> str:
        text = "\n".join(str(p) for p in parts).encode()
        return base64.urlsafe_b64encode(hmac.new(self.key, text, hashlib.sha256).digest()).rstrip(b"=").decode()

    def check(self, sig: str | None, exp: int | None, *parts: object) -> None:
        if sig is None or exp is None or not hmac.compare_digest(sig, self.sign(exp, *parts)):
            raise Forbidden("this transfer URL's signature is missing or does not match: ask for a new plan")
        if exp < time.time():
            raise Forbidden("this transfer URL has expired: ask for a new plan")

    def upload_plan(self, project: str, digest: str, size: int) -> dict[str, Any]:
        exp = int(time.time()) + self.expires
        sig = self.sign(exp, "PUT", project, digest, size)
        url = f"{self.base_url}/direct/projects/{project}/blobs/{digest}?size={size}&exp={exp}&sig={sig}"
        return {"mode": "presigned", "token": sig, "expires_in": self.expires, "part_size": max(size, 1), "url": url}

    def upload_received(self, token: str, project: str, digest: str, size: int, exp: int) -> None:
        now = time.time()
        for old in [t for t, (*_, until) in self.received.items() if until < now]:
            del self.received[old]
        self.received[token] = (project, digest, size, exp)

    def commit(self, project: str, digest: str, token: str, upload_id: str | None, parts: list[Any],
               max_bytes: int) -> int:
        """The size of the upload made with ``token``'s URL for this project and digest; a token
        whose upload this service has not received is a 409 (nothing is recorded)."""
        got = self.received.get(token)
        if got is None or got[:2] != (project, digest):
            raise Conflict("no upload was received for this plan (or the service restarted since): "
                           "ask for a new plan and send the bytes again")
        del self.received[token]
        return got[2]

    # --- bundles (services/artifacts/api_bundles.py) ---------------------------------------------

    def bundle_upload_plan(self, project: str) -> dict[str, Any]:
        """One URL for any number of bundle uploads into ``project`` until it expires; the
        members it received are committed together with the plan's token."""
        exp = int(time.time()) + self.expires
        nonce = secrets.token_urlsafe(12)
        sig = self.sign(exp, "POST-BUNDLE", project, nonce)
        return {"mode": "direct", "token": sig, "expires_in": self.expires,
                "url": f"{self.base_url}/direct/projects/{project}/blobs/bundle?nonce={nonce}&exp={exp}&sig={sig}"}

    def bundle_received(self, token: str, project: str, members: dict[str, int], exp: int) -> None:
        now = time.time()
        for old in [t for t, (_, _, until) in self.bundles.items() if until < now]:
            del self.bundles[old]
        held = self.bundles.setdefault(token, (project, {}, exp))[1]
        if len(held) + len(members) > BUNDLE_PLAN_MEMBERS:
            raise InvalidInput(f"one plan takes at most {BUNDLE_PLAN_MEMBERS} files: commit, then ask for a new plan")
        held.update(members)

    def bundle_commit(self, project: str, token: str) -> dict[str, int]:
        """The members received with ``token``'s URL for this project (409 if none: nothing is recorded)."""
        got = self.bundles.get(token)
        if got is None or got[0] != project:
            raise Conflict("no bundle was received for this plan (or the service restarted since): "
                           "ask for a new plan and send the bundles again")
        del self.bundles[token]
        return got[1]

    def bundle_download_urls(self, groups: list[list[str]]) -> list[str]:
        """A URL per group of digests; each URL reads exactly its group (sent as the body)."""
        exp = int(time.time()) + self.expires
        return [f"{self.base_url}/direct/blobs/bundle?exp={exp}&sig={self.sign(exp, 'GET-BUNDLE', digest_list(g))}"
                for g in groups]

    def download_url(self, digest: str) -> dict[str, Any]:
        exp = int(time.time()) + self.expires
        sig = self.sign(exp, "GET", digest)
        return {"mode": "presigned", "url": f"{self.base_url}/direct/blobs/{digest}?exp={exp}&sig={sig}",
                "expires_in": self.expires}


def digest_list(digests: list[str]) -> str:
    """What a bundle download URL signs: the exact list of digests, in order."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def direct_of(request: Request) -> FsDirect:
    direct = request.app.state.presigner
    if not isinstance(direct, FsDirect):
        raise Forbidden("direct transfers are off here (CAIRN_ARTIFACTS_DIRECT_URL): go through the gateway")
    return direct


@router.put("/direct/projects/{project}/blobs/{digest}", openapi_extra=DIRECT_ROUTE)
async def direct_put(project: ProjectName, digest: Digest, request: Request, blobs: Blobs,
                     size: int | None = None, exp: int | None = None, sig: str | None = None) -> JSONResponse:
    """Store an upload made with a plan's URL (see the module's docstring); 422 if the bytes do
    not hash to ``digest`` or differ from the planned size."""
    direct = direct_of(request)
    direct.check(sig, exp, "PUT", project, digest, size)
    assert sig is not None and exp is not None and size is not None
    got = await blobs.receive(digest, request.stream())
    if got != size:
        raise InvalidInput(f"the plan was for {size} bytes; {got} arrived", details={"size": got})
    direct.upload_received(sig, project, digest, size, exp)
    return JSONResponse({"digest": digest, "size": size}, status_code=201)


@router.get("/direct/blobs/{digest}", openapi_extra=DIRECT_ROUTE)
async def direct_get(digest: Digest, request: Request, blobs: Blobs, exp: int | None = None,
                     sig: str | None = None) -> Response:
    """The blob's bytes for a plan's URL (see the module's docstring)."""
    direct_of(request).check(sig, exp, "GET", digest)
    stack = ExitStack()
    try:
        path: Path = await asyncio.to_thread(stack.enter_context, blobs.open_verified(digest, always=False))
        size = path.stat().st_size
    except BaseException:
        stack.close()
        raise
    return StreamingResponse(file_chunks(path, 0, size, stack), media_type="application/octet-stream",
                             headers={"Content-Length": str(size), "ETag": f'"{digest}"'})
