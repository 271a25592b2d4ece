"""Blob routes: streaming upload checked against its digest, existence, dedup query, and
verified (optionally ranged) streaming download."""

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

from cairn.kernel.errors import CairnError
from cairn.kernel.identity import SIGNED_IN, requires
from cairn.kernel.service import ServiceRuntime
from cairn.services.artifacts.blobs import BlobStore, check_digest
from cairn.services.artifacts.visibility import check_readable


async def settled_reads(request: Request) -> None:
    """A read sees every artifact this service has answered for: run files are answered once
    their event is durable in the log (``wait=False``), so reads wait for the projection here."""
    if request.method in ("GET", "HEAD"):
        await request.app.state.runtime.commands.settled()


router = APIRouter(tags=["blobs"], dependencies=[Depends(settled_reads)])
READ_CHUNK = 1 << 20
Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="BLAKE3 digest, hex")]
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(CairnError):
    status = 416
    code = "range_not_satisfiable"


async def blob_store(request: Request) -> BlobStore:
    return request.app.state.blobs


async def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


Blobs = Annotated[BlobStore, Depends(blob_store)]
Runtime = Annotated[ServiceRuntime, Depends(_runtime)]


class MissingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digests: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(max_length=100_000)


@router.put("/blobs/{digest}", status_code=201, **requires(SIGNED_IN))
async def put_blob(digest: Digest, request: Request, blobs: Blobs) -> JSONResponse:
    """Upload a blob's bytes as the raw request body; stored only if they hash to ``digest``
    (201 stored, 200 already present; 422 ``digest_mismatch`` stores nothing)."""
    size, created = await blobs.receive(digest, request.stream())
    return JSONResponse({"digest": digest, "size": size, "created": created},
                        status_code=201 if created else 200)


@router.head("/blobs/{digest}", **requires(SIGNED_IN))
async def head_blob(digest: Digest, blobs: Blobs) -> Response:
    """200 if the blob is stored, 404 if not (no body either way)."""
    present = await asyncio.to_thread(blobs.exists, digest)
    return Response(status_code=200 if present else 404)


@router.post("/blobs/missing", **requires(SIGNED_IN))
async def missing_blobs(query: MissingQuery, blobs: Blobs) -> dict[str, Any]:
    """Which of these digests are not stored: upload only those (dedup)."""
    return {"missing": await asyncio.to_thread(blobs.missing, query.digests)}


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


def _file_chunks(path: FsPath, start: int, end: int, stack: ExitStack) -> Iterator[bytes]:
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
async def get_blob(digest: Digest, blobs: Blobs, request: Request, rt: Runtime,
                   range_header: Annotated[str | None, Header(alias="Range")] = None) -> StreamingResponse:
    """Stream a blob, verified in full before the first byte; ``Range: bytes=a-b`` gives 206.
    A corrupted blob is a 500 ``blob_corrupt``, never served. Only blobs that the caller's
    projects reference can be read (404 otherwise)."""
    check_digest(digest)
    await asyncio.to_thread(check_readable, request, rt.store, blobs, digest)
    stack = ExitStack()
    try:
        path: FsPath = await asyncio.to_thread(stack.enter_context, blobs.open_verified(digest))
        size = path.stat().st_size
        span = _parse_range(range_header, size) if range_header else None
    except BaseException:
        stack.close()
        raise
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{digest}"',
               "Cache-Control": "public, max-age=31536000, immutable"}
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_file_chunks(path, 0, size, stack), headers=headers,
                                 media_type="application/octet-stream")
    start, end = span
    headers["Content-Length"] = str(end - start)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(_file_chunks(path, start, end, stack), status_code=206,
                             headers=headers, media_type="application/octet-stream")



