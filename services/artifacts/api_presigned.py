"""Transfer plans: how a client moves a blob's bytes (services/artifacts/presign.py).

On the S3 backend (with presigning on) a plan hands out short-lived presigned URLs, so the bytes
go between the client and the bucket directly; a commit then verifies the staged upload before
the blob is stored and the project holds it. On the file system a plan says ``"mode": "proxy"``:
upload with ``PUT /projects/{p}/blobs/{digest}`` and download with ``GET /blobs/{digest}``. The
role checks are the same as those routes' (editor to upload, possession to download)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.errors import Conflict, PayloadTooLarge
from cairn.kernel.identity import EDITOR, SIGNED_IN, requires
from cairn.kernel.service import Runtime
from cairn.services.artifacts.api_blobs import Blobs, Ctx, Digest, ProjectName, Store, settled_reads
from cairn.services.artifacts.direct import FsDirect
from cairn.services.artifacts.possession import record_possession
from cairn.services.artifacts.presign import S3Presigner, StagedPart
from cairn.services.artifacts.visibility import check_readable
from cairn.services.registry.project_check import project_exists_on_writes

router = APIRouter(tags=["blobs"], dependencies=[Depends(settled_reads), Depends(project_exists_on_writes)])
PROXY = {"mode": "proxy"}


async def _presigner(request: Request) -> S3Presigner | FsDirect | None:
    return request.app.state.presigner


Presigner = Annotated[S3Presigner | FsDirect | None, Depends(_presigner)]


class UploadPlanQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=0, description="the blob's size in bytes")


class CommittedPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200)


class CommitQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=64)
    upload_id: str | None = Field(default=None, max_length=1024)
    parts: list[CommittedPart] = Field(default_factory=list, max_length=10_000)


@router.post("/projects/{project}/blobs/{digest}/upload-plan", **requires(EDITOR))
async def upload_plan(project: ProjectName, digest: Digest, query: UploadPlanQuery, request: Request,
                      presigner: Presigner) -> dict[str, Any]:
    """How to send a blob's bytes into ``project``: presigned URL(s) to a staging object (S3),
    then ``.../commit``; or ``{"mode": "proxy"}``: PUT the body to ``/projects/{p}/blobs/{digest}``."""
    limit = request.app.state.blobs.max_blob_bytes
    if query.size > limit:
        raise PayloadTooLarge(f"blob is larger than the limit of {limit} bytes; "
                              "raise CAIRN_ARTIFACTS_MAX_BLOB_BYTES or split the file")
    if presigner is None:
        return PROXY
    return await asyncio.to_thread(presigner.upload_plan, project, digest, query.size)


@router.post("/projects/{project}/blobs/{digest}/commit", **requires(EDITOR))
async def commit_upload(project: ProjectName, digest: Digest, query: CommitQuery, rt: Runtime,
                        blobs: Blobs, store: Store, ctx: Ctx, presigner: Presigner) -> dict[str, Any]:
    """Verify a presigned upload and store it: the staged bytes are hashed once; a wrong digest is
    422 ``digest_mismatch`` and stores nothing. Then ``project`` holds the blob, as after a PUT."""
    if presigner is None:
        raise Conflict("this store has no presigned uploads (file system backend); "
                       f"PUT the bytes to /projects/{project}/blobs/{digest}")
    parts = [StagedPart(p.number, p.etag) for p in query.parts]
    size = await asyncio.to_thread(presigner.commit, project, digest, query.token, query.upload_id, parts,
                                   blobs.max_blob_bytes)
    new = await record_possession(rt, ctx, store, project, digest, size, "upload")
    return {"digest": digest, "size": size, "created": new}


@router.get("/blobs/{digest}/download-plan", **requires(SIGNED_IN))
async def download_plan(digest: Digest, request: Request, store: Store, presigner: Presigner) -> dict[str, Any]:
    """A presigned GET for a blob one of the caller's projects holds (404 otherwise, as for
    ``GET /blobs/{digest}``), or ``{"mode": "proxy"}``. The client verifies the bytes it gets."""
    check_readable(request, store, digest)
    if presigner is None:
        return PROXY
    return await asyncio.to_thread(presigner.download_url, digest)
