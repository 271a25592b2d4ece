"""Blob bundles: many small blobs in one request each way.

A tree of small files costs one request per file through the gateway, and on two cores the
requests, not the bytes, bound the transfer. A bundle carries up to ``BUNDLE_MAX_FILES`` blobs of
at most ``BUNDLE_MEMBER_MAX`` bytes (frames: ``<digest> <size>\\n`` then the bytes, see
cairn.protocol); larger files travel alone.

- ``POST /projects/{p}/blobs/bundle`` (editor): every member is hashed and stored exactly as a
  ``PUT /projects/{p}/blobs/{digest}`` would store it (on the file system ``BATCH_BYTES`` of
  members at a time, their files synced together); possession is recorded only once every
  member has been verified, so a bundle with one bad member (422 naming it) gives the project
  nothing, and for all the new members at once (``blobs.possessed``, possession.py). Members
  already stored are received and hashed all the same: sending the bytes is what proves
  possession.
- ``POST /blobs/bundle`` with ``{"digests": [...]}`` (signed in): the blobs' frames in that order;
  every digest must be readable by one of the caller's projects (404 otherwise, before any byte is
  sent). Members are not hashed by the service: the reader checks each against the digest its
  frame names, and reads a member that does not match alone, which the service verifies. A blob that cannot be read once the
  answer has started ends the answer early: the client sees a short bundle and fetches the rest
  one by one (which answers with the blob's own error).
- With direct transfers on the file system (services/artifacts/direct.py), plans hand out URLs of
  this service for both ways, so bundle bytes skip the gateway: ``POST /projects/{p}/blobs/
  bundle-plan`` (a URL for any number of bundles, then ``.../bundle-commit`` with its token) and
  ``POST /blobs/bundle-plan`` (a URL per group of digests).
- On S3 with presigning, the download plan is a presigned GET per blob instead: the client reads
  them from the bucket many at once, which beats any bundle that goes through this service
  (benchmarks/README.md). Uploads stay bundles through the gateway: a presigned PUT per small file
  costs a staging copy and a commit each.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.identity import EDITOR, SIGNED_IN, requires
from cairn.kernel.service import Runtime
from cairn.protocol import (
    BUNDLE_MAX_BYTES,
    BUNDLE_MAX_FILES,
    BUNDLE_MEDIA_TYPE,
    BUNDLE_MEMBER_MAX,
    bundle_header,
    parse_bundle_header,
)
from cairn.services.artifacts.api_blobs import Blobs, Ctx, ProjectName, Store
from cairn.services.artifacts.api_presigned import PROXY
from cairn.services.artifacts.blobs import BlobCorrupt, BlobStore
from cairn.services.artifacts.direct import DIRECT_ROUTE, FsDirect, digest_list, direct_of
from cairn.services.artifacts.possession import record_possessions
from cairn.services.artifacts.presign import S3Presigner
from cairn.services.artifacts.store import ArtifactsStore
from cairn.services.artifacts.visibility import check_readable
from cairn.services.registry.project_check import project_exists_on_writes

log = logging.getLogger(__name__)
router = APIRouter(tags=["blobs"], dependencies=[Depends(project_exists_on_writes)])
direct_router = APIRouter(tags=["blobs"])  # signed URLs: no caller, the signature is the authorization
HEADER_MAX = 64 + 1 + 10 + 1  # digest, space, size, newline
BUNDLE_BODY = BUNDLE_MAX_BYTES + BUNDLE_MAX_FILES * HEADER_MAX  # the body limit of an upload
IN_FLIGHT = 4  # members (or batches of members) hashed and written at once, each in a worker thread
BATCH_BYTES = 4 << 20  # on the file system, members stored together (their files synced together)


class BundleFrames:
    """Reads a bundle body frame by frame: ``next()`` gives (digest, bytes) or None at the end.
    The body's chunks are kept as they arrive and a member's bytes are joined from them once (one
    copy of each byte in this process; gathering into one buffer first made it two)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks.__aiter__()
        self._pending: deque[memoryview] = deque()  # received, not yet taken
        self._held = 0  # bytes in _pending
        self.members = 0
        self.total = 0

    async def _more(self) -> bool:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            return False
        if chunk:
            self._pending.append(memoryview(chunk))
            self._held += len(chunk)
        return True

    def _peek(self, limit: int) -> bytes:
        """Up to ``limit`` of the next bytes, left in place."""
        out = bytearray()
        for piece in self._pending:
            out += piece[:limit - len(out)]
            if len(out) >= limit:
                break
        return bytes(out)

    def _take(self, size: int) -> bytes:
        """The next ``size`` bytes (all arrived), as one object."""
        pieces = []
        left = size
        while left:
            first = self._pending[0]
            if len(first) <= left:
                pieces.append(self._pending.popleft())
                left -= len(first)
            else:
                pieces.append(first[:left])
                self._pending[0] = first[left:]
                left = 0
        self._held -= size
        return b"".join(pieces)

    async def next(self) -> tuple[str, bytes] | None:
        while (end := (head := self._peek(HEADER_MAX)).find(b"\n")) < 0:
            if len(head) >= HEADER_MAX:
                raise self._bad(f"frame {self.members + 1} has no header line")
            if not await self._more():
                if self._held:
                    raise self._bad(f"the bundle ends inside frame {self.members + 1}'s header")
                return None
        try:
            digest, size = parse_bundle_header(head[:end + 1])
        except ValueError as err:
            raise self._bad(f"frame {self.members + 1}: {err}") from None
        if size > BUNDLE_MEMBER_MAX:
            raise self._bad(f"frame {self.members + 1} ({digest}) has {size} bytes; members may have at most "
                            f"{BUNDLE_MEMBER_MAX}: upload that file alone (PUT /projects/P/blobs/DIGEST)")
        self.members += 1
        self.total += size
        if self.members > BUNDLE_MAX_FILES or self.total > BUNDLE_MAX_BYTES:
            raise self._bad(f"a bundle holds at most {BUNDLE_MAX_FILES} files and {BUNDLE_MAX_BYTES} bytes; "
                            "split it into several bundles")
        self._take(end + 1)
        while self._held < size:
            if not await self._more():
                raise self._bad(f"the bundle ends inside frame {self.members} ({digest}): "
                                f"{self._held} of its {size} bytes arrived")
        return digest, self._take(size)

    @staticmethod
    def _bad(message: str) -> InvalidInput:
        return InvalidInput(f"{message}; nothing was recorded", details={"media_type": BUNDLE_MEDIA_TYPE})


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _reap(running: set[asyncio.Task[Any]], when: str) -> None:
    """Wait for some (or all) running members; the first failure among them is raised."""
    done, _ = await asyncio.wait(running, return_when=when)
    running -= done
    for task in done:
        task.result()


async def store_members(blobs: BlobStore, frames: BundleFrames) -> dict[str, int]:
    """Hash and store every member (``IN_FLIGHT`` at a time, in order of arrival; on the file
    system ``BATCH_BYTES`` of members to a task, stored together); digest -> size. The first
    failure cancels the rest and is raised."""
    stored: dict[str, int] = {}
    running: set[asyncio.Task[Any]] = set()
    batch: list[tuple[str, bytes]] = []
    batched = 0
    try:
        while (frame := await frames.next()) is not None:
            digest, data = frame
            stored[digest] = len(data)
            if blobs.batches:
                batch.append(frame)
                batched += len(data)
                if batched < BATCH_BYTES:
                    continue
                running.add(asyncio.create_task(blobs.receive_batch(batch)))
                batch, batched = [], 0
            else:
                running.add(asyncio.create_task(blobs.receive(digest, _one(data))))
            if len(running) >= IN_FLIGHT:
                await _reap(running, asyncio.FIRST_COMPLETED)
        if batch:
            running.add(asyncio.create_task(blobs.receive_batch(batch)))
        if running:
            await _reap(running, asyncio.ALL_COMPLETED)
        return stored
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


@router.post("/projects/{project}/blobs/bundle", **requires(EDITOR))
async def put_bundle(project: ProjectName, request: Request, rt: Runtime, blobs: Blobs, store: Store,
                     ctx: Ctx) -> dict[str, Any]:
    """Upload many small blobs into a project in one body of frames (see the module's docstring);
    ``created`` says, per blob, whether the project did not hold it before."""
    return await _possess(rt, ctx, store, project, await store_members(blobs, BundleFrames(request.stream())))


async def _possess(rt: Any, ctx: CommandContext, store: ArtifactsStore, project: str,
                   members: dict[str, int]) -> dict[str, Any]:
    created = await record_possessions(rt, ctx, store, project, members)
    return {"blobs": [{"digest": digest, "size": size, "created": created[digest]}
                      for digest, size in members.items()]}


class BundleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digests: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(min_length=1, max_length=BUNDLE_MAX_FILES)


def _frames(blobs: BlobStore, digests: list[str]) -> Iterator[bytes]:
    """A plain generator: Starlette runs it in its thread pool, so reads never block the loop.
    Members are sent as stored, not hashed here: a bundle's reader checks every member against its
    digest (the frame names it; the SDK does), so hashing here too would hash each byte twice. A
    member whose bytes do not match is corrupt in storage; read alone (``GET /blobs/{digest}``),
    it answers ``blob_corrupt`` and is never served."""
    for digest in digests:
        try:
            with blobs.open_verified(digest, always=False, reader_checks=True) as path:
                if path.stat().st_size > BUNDLE_MEMBER_MAX:
                    return  # a short bundle: the client fetches this one alone
                data = path.read_bytes()
        except (NotFound, BlobCorrupt) as err:  # a short bundle: alone, the blob answers with this error
            log.warning("bundle ends before blob %s: %s", digest, err)
            return
        yield bundle_header(digest, len(data))
        yield data


class BundlePlanQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundles: list[Annotated[list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]],
                            Field(min_length=1, max_length=BUNDLE_MAX_FILES)]] = Field(max_length=10_000)


class CommitQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=64)


@router.post("/projects/{project}/blobs/bundle-plan", **requires(EDITOR))
async def bundle_upload_plan(project: ProjectName, request: Request) -> dict[str, Any]:
    """Where to send bundles into ``project``: ``{"mode": "direct", "url", "token"}`` (the file
    system with direct transfers: POST any number of bundles to the URL, then commit them with
    the token) or ``{"mode": "proxy"}`` (POST them to ``/projects/{p}/blobs/bundle``)."""
    presigner = request.app.state.presigner
    return presigner.bundle_upload_plan(project) if isinstance(presigner, FsDirect) else PROXY


@router.post("/projects/{project}/blobs/bundle-commit", **requires(EDITOR))
async def bundle_commit(project: ProjectName, query: CommitQuery, request: Request, rt: Runtime,
                        store: Store, ctx: Ctx) -> dict[str, Any]:
    """Make ``project`` hold every blob received with a bundle plan's URL (409 if none was)."""
    members = direct_of(request).bundle_commit(project, query.token)
    return await _possess(rt, ctx, store, project, members)


@router.post("/blobs/bundle-plan", **requires(SIGNED_IN))
async def bundle_download_plan(query: BundlePlanQuery, request: Request, rt: Runtime,
                               store: Store) -> dict[str, Any]:
    """Where to read these groups of blobs: a direct URL per group (POST the group's
    ``{"digests": [...]}`` to it), a presigned GET per blob (S3: ``{"mode": "presigned", "urls":
    [[url, ...], ...]}``, in the groups' shape), or ``{"mode": "proxy"}``. Every blob must be readable by one
    of your projects (404 otherwise)."""
    await rt.commands.settled()
    for group in query.bundles:
        for digest in group:
            check_readable(request, store, digest)
    presigner = request.app.state.presigner
    if isinstance(presigner, S3Presigner):  # each blob straight from the bucket, many at once
        return await asyncio.to_thread(presigner.download_urls, query.bundles)
    if not isinstance(presigner, FsDirect):
        return PROXY
    return {"mode": "direct", "urls": presigner.bundle_download_urls(query.bundles)}


@direct_router.post("/direct/projects/{project}/blobs/bundle", openapi_extra=DIRECT_ROUTE)
async def direct_put_bundle(project: ProjectName, request: Request, blobs: Blobs, nonce: str | None = None,
                            exp: int | None = None, sig: str | None = None) -> dict[str, Any]:
    """Store a bundle sent to a plan's URL (members verified as by ``POST .../blobs/bundle``);
    the project holds them once the plan is committed."""
    direct = direct_of(request)
    direct.check(sig, exp, "POST-BUNDLE", project, nonce)
    assert sig is not None and exp is not None
    stored = await store_members(blobs, BundleFrames(request.stream()))
    direct.bundle_received(sig, project, stored, exp)
    return {"blobs": [{"digest": digest, "size": size} for digest, size in stored.items()]}


@direct_router.post("/direct/blobs/bundle", openapi_extra=DIRECT_ROUTE)
async def direct_get_bundle(request: Request, blobs: Blobs, exp: int | None = None,
                            sig: str | None = None) -> StreamingResponse:
    """The bundle of a plan's URL: exactly the digests it was signed for (the body
    ``{"digests": [...]}``), in that order. The signature is checked before the body is read."""
    direct = direct_of(request)
    if sig is None or exp is None:  # not a plan's URL: refused before the body is looked at
        direct.check(sig, exp)
    try:
        query = BundleQuery.model_validate_json(await request.body())
    except ValidationError as err:
        raise InvalidInput(f"the body must be {{\"digests\": [...]}}: {err.errors()[0]['msg']}") from None
    direct.check(sig, exp, "GET-BUNDLE", digest_list(query.digests))
    return StreamingResponse(_frames(blobs, query.digests), media_type=BUNDLE_MEDIA_TYPE)


@router.post("/blobs/bundle", **requires(SIGNED_IN))
async def get_bundle(query: BundleQuery, request: Request, rt: Runtime, blobs: Blobs,
                     store: Store) -> StreamingResponse:
    """Download many small blobs in one answer of frames, in the order asked (see the module's
    docstring); each must be readable by one of your projects (404 otherwise)."""
    await rt.commands.settled()  # a read: it sees every upload this service answered for
    for digest in query.digests:
        check_readable(request, store, digest)
    return StreamingResponse(_frames(blobs, query.digests), media_type=BUNDLE_MEDIA_TYPE)
