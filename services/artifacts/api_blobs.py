"""Blob routes: streaming upload into a project (checked against its digest; the project then
holds the blob), what a project still has to upload, and existence and verified (optionally
ranged) streaming download of blobs the caller's projects hold (services/artifacts/possession.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import CairnError
from cairn.kernel.http import command_context
from cairn.kernel.identity import EDITOR, SIGNED_IN, VIEWER, requires
from cairn.kernel.ids import PROJECT_NAME_PATTERN
from cairn.kernel.service import Runtime
from cairn.services.artifacts.blobs import BlobStore, check_digest
from cairn.services.artifacts.possession import missing_for, record_possession
from cairn.services.artifacts.store import ArtifactsStore
from cairn.services.artifacts.visibility import check_readable, may_read
from cairn.services.registry.project_check import project_exists_on_writes


async def settled_reads(request: Request) -> None:
    """A read sees every artifact this service has answered for: run files are answered once
    their event is durable in the log (``wait=False``), so reads wait for the projection here."""
    if request.method in ("GET", "HEAD"):
        await request.app.state.runtime.commands.settled()


router = APIRouter(tags=["blobs"], dependencies=[Depends(settled_reads), Depends(project_exists_on_writes)])
READ_CHUNK = 1 << 20
Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="BLAKE3 digest, hex")]
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(CairnError):
    status = 416
    code = "range_not_satisfiable"


async def blob_store(request: Request) -> BlobStore:
    return request.app.state.blobs


async def _store(request: Request) -> ArtifactsStore:
    store = request.app.state.runtime.store
    assert isinstance(store, ArtifactsStore)
    return store


Blobs = Annotated[BlobStore, Depends(blob_store)]
Store = Annotated[ArtifactsStore, Depends(_store)]
Ctx = Annotated[CommandContext, Depends(command_context)]


class MissingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digests: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(max_length=100_000)


@router.put("/projects/{project}/blobs/{digest}", status_code=201, **requires(EDITOR))
async def put_blob(project: ProjectName, digest: Digest, request: Request, rt: Runtime, blobs: Blobs,
                   store: Store, ctx: Ctx) -> JSONResponse:
    """Upload a blob's bytes into a project as the raw request body; stored only if they hash to
    ``digest`` (422 ``digest_mismatch`` stores nothing). The bytes are always received, hashed and
    stored, even when the blob is stored already: that proves the project holds them
    (``blob.possessed``, the first time), which is what lets it read the blob. 201 when the
    project did not hold the blob before, 200 when it did: whether another project stored the
    same bytes is not told (storage is shared, the answer is the project's own)."""
    size = await blobs.receive(digest, request.stream())
    new = await record_possession(rt, ctx, store, project, digest, size, "upload")
    return JSONResponse({"digest": digest, "size": size, "created": new}, status_code=201 if new else 200)


@router.head("/blobs/{digest}", **requires(SIGNED_IN))
async def head_blob(digest: Digest, request: Request, blobs: Blobs, store: Store) -> Response:
    """200 if one of the caller's projects holds the blob and it is stored; 404 otherwise, the
    same for blobs that exist only in other projects (no body either way)."""
    present = may_read(request, store, digest) and await asyncio.to_thread(blobs.exists, digest)
    return Response(status_code=200 if present else 404)


@router.post("/projects/{project}/blobs/missing", **requires(VIEWER))
async def missing_blobs(project: ProjectName, query: MissingQuery, rt: Runtime, blobs: Blobs,
                        store: Store) -> dict[str, Any]:
    """Which of these digests the project has to upload: those it has not proved it holds (by
    uploading them), whatever other projects stored. Storage still keeps each blob once."""
    return {"missing": await missing_for(rt, store, blobs, project, query.digests)}


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for a single ``bytes=`` range; None means the whole blob."""
    match = RANGE_RE.match(header.strip())
    if match is None:
        return None  # multi-range or another unit: serve the whole blob (allowed by RFC 9110)
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise RangeNotSatisfiable(f"range {header!r} is outside the blob's {size} bytes",
                                  details={"size": size})
    return start, end


def file_chunks(path: FsPath, start: int, end: int, stack: ExitStack) -> Iterator[bytes]:
    """A plain generator: Starlette runs it in its thread pool, so reads never block the loop."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = f.read(min(READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
    finally:
        stack.close()


@router.get("/blobs/{digest}", **requires(SIGNED_IN))
async def get_blob(digest: Digest, blobs: Blobs, request: Request, store: Store,
                   range_header: Annotated[str | None, Header(alias="Range")] = None) -> StreamingResponse:
    """Stream a blob, verified in full before the first byte (unless reads are trusted:
    ``CAIRN_ARTIFACTS_VERIFY_READS=false``); ``Range: bytes=a-b`` gives 206.
    A corrupted blob is a 500 ``blob_corrupt``, never served. Only blobs that one of the caller's
    projects holds can be read (404 otherwise, as for a blob that does not exist)."""
    check_digest(digest)
    check_readable(request, store, digest)
    stack = ExitStack()
    try:
        path: FsPath = await asyncio.to_thread(stack.enter_context, blobs.open_verified(digest, always=False))
        size = path.stat().st_size
        span = _parse_range(range_header, size) if range_header else None
    except BaseException:
        stack.close()
        raise
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{digest}"',
               "Cache-Control": "public, max-age=31536000, immutable"}
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(file_chunks(path, 0, size, stack), headers=headers,
                                 media_type="application/octet-stream")
    start, end = span
    headers["Content-Length"] = str(end - start)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(file_chunks(path, start, end, stack), status_code=206,
                             headers=headers, media_type="application/octet-stream")


