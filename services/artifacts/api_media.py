"""A run's media index: record an entry (the SDK's ``run.log_image`` & co.), list and filter a
run's media, and index the files MLflow clients upload to a run (``log_image``, ``log_figure``,
``log_table``) as they arrive. The bytes are ordinary blobs: a viewer of the run's project reads
them (and thumbnails) with ``GET /blobs/{digest}``, the usual download path, because the project
proved it holds them before any entry could name them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext, Outcome
from cairn.kernel.errors import CairnError, InvalidInput
from cairn.kernel.identity import EDITOR, VIEWER, requires
from cairn.kernel.ids import DIGEST_PATTERN, ID_PATTERN, check_token
from cairn.protocol import MEDIA_AGGREGATE, MEDIA_KINDS
from cairn.services.artifacts import media_domain
from cairn.services.artifacts.api_blobs import (
    Blobs,
    Ctx,
    ProjectName,
    Runtime,
    Store,
    settled_reads,
)
from cairn.services.artifacts.blobs import check_digest
from cairn.services.artifacts.possession import require_possessed
from cairn.services.registry.project_check import project_exists_on_writes

log = logging.getLogger("cairn.artifacts.media")
router = APIRouter(tags=["media"], dependencies=[Depends(settled_reads), Depends(project_exists_on_writes)])
RunId = Annotated[str, Path(pattern=ID_PATTERN)]
HEAD_BYTES = 64  # enough for a PNG's size and a table's first JSON key


class MediaLog(BaseModel):
    """One medium whose bytes (and thumbnail) the project uploaded as blobs first."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(max_length=400, examples=["samples/reconstruction"])
    step: int | None = Field(default=None, description="omitted: the key's next step (0 for a new key)")
    kind: str = Field(max_length=40, examples=list(MEDIA_KINDS))
    digest: str = Field(pattern=DIGEST_PATTERN)
    thumbnail_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN, description="a PNG")
    media_type: str = Field(max_length=120, examples=["image/png"])


def _head(blobs: Any, digest: str) -> tuple[int, bytes]:
    """(size, first bytes) of a stored blob, unverified: it was hashed when it was received, and
    only its header is read here (downloads are verified as usual)."""
    try:
        with blobs.backend.fetch(check_digest(digest)) as path, path.open("rb") as fh:
            return path.stat().st_size, fh.read(HEAD_BYTES)
    except FileNotFoundError:
        raise InvalidInput(f"blob {digest} is not stored; upload it again", details={"missing": [digest]}) from None


async def _append(rt: Any, ctx: CommandContext, project: str, run_id: str, decide: Any) -> Outcome:
    return await rt.commands.execute(ctx, project=project, aggregate=MEDIA_AGGREGATE,
                                     aggregate_id=check_token(run_id, "run id"), decide=decide)


@router.post("/projects/{project}/runs/{run_id}/media", status_code=201, **requires(EDITOR))
async def log_media(project: ProjectName, run_id: RunId, body: MediaLog, request: Request, rt: Runtime,
                    blobs: Blobs, store: Store, ctx: Ctx) -> dict[str, Any]:
    """Index a medium of the run under ``key`` at ``step``. The blob (and thumbnail) must have
    been uploaded into the project (422 with ``details.missing`` otherwise); a bad key, step,
    kind or media type is a 422 saying what to fix, and nothing is recorded. The same key and
    step again: the same bytes are a no-op (200 semantics, the entry answered), other bytes 409."""
    media_domain.check_media(key=body.key, step=body.step, kind=body.kind, media_type=body.media_type)
    digests = [body.digest, *([body.thumbnail_digest] if body.thumbnail_digest else [])]
    async with request.app.state.gc_lock:  # no GC between "held?" and the append
        await require_possessed(rt, store, blobs, project, digests, "media blob(s) are")
        size, head = await asyncio.to_thread(_head, blobs, body.digest)
        width, height = media_domain.png_size(head) or (None, None)
        outcome = await _append(rt, ctx, project, run_id, lambda s: media_domain.log_media(
            s, key=body.key, step=body.step, kind=body.kind, digest=body.digest,
            thumbnail_digest=body.thumbnail_digest, media_type=body.media_type, size=size,
            width=width, height=height))
    if outcome.type == "noop":  # only with a step: a step omitted is always the key's next
        found = store.run_media(project, run_id, key=body.key, step_min=body.step, step_max=body.step, limit=1)
        return {**found["media"][0], "logged": False}
    return {**store.media_by_seq(outcome.sequence), "logged": True}


@router.get("/projects/{project}/runs/{run_id}/media", **requires(VIEWER))
async def list_media(project: ProjectName, run_id: RunId, store: Store,
                     key: Annotated[str | None, Query(max_length=400)] = None,
                     kind: Annotated[str | None, Query(max_length=40)] = None,
                     step_min: Annotated[int | None, Query(ge=0, le=media_domain.MAX_STEP)] = None,
                     step_max: Annotated[int | None, Query(ge=0, le=media_domain.MAX_STEP)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Query(ge=0, le=media_domain.MAX_STEP)] = 0) -> dict[str, Any]:
    """A page of the run's media in (key, step) order, filtered by key, kind and step range;
    ``next_offset`` asks for the next page (null at the end). Bytes: ``GET /blobs/{digest}``
    (``thumbnail_digest`` for the small one)."""
    if kind is not None and kind not in MEDIA_KINDS:
        raise InvalidInput(f"media kind {kind!r} is not one of {', '.join(MEDIA_KINDS)}",
                                        details={"field": "kind"})
    return store.run_media(project, run_id, key=key, kind=kind, step_min=step_min, step_max=step_max,
                           limit=limit, offset=offset)


@router.get("/projects/{project}/runs/{run_id}/media/keys", **requires(VIEWER))
async def list_media_keys(project: ProjectName, run_id: RunId, store: Store) -> dict[str, Any]:
    """The run's media keys: kind, number of entries, first and last step (the web UI's sliders)."""
    return {"keys": store.run_media_keys(project, run_id)}


async def index_mlflow_file(rt: Any, ctx: CommandContext, project: str, run_id: str, name: str,
                            digest: str, size: int, blobs: Any) -> dict[str, Any] | None:
    """Index a run file an MLflow client uploaded when it is media (``images/<key>+step+<n>+...``,
    a figure, a table's JSON); returns the entry indexed (None: not media). Called once the file
    is logged as a run artifact, which is also the project's proof that it holds the bytes. A
    file that cannot be indexed (its key holds another kind) is still a logged artifact: the
    upload succeeds and the reason is logged and answered, rather than failing an MLflow call."""
    if not media_domain.may_be_media(name):  # most run files: no read at all
        return None
    _, head = await asyncio.to_thread(_head, blobs, digest)
    found = media_domain.mlflow_media(name, head)
    if found is None:
        return None
    mine = replace(ctx, idempotency_key=None)  # the request's key belongs to its artifact record
    try:
        if found["thumbnail"]:
            await _append(rt, mine, project, run_id, lambda s: media_domain.log_thumbnail(
                s, entry=found["entry"], thumbnail_digest=digest, media_type=found["media_type"]))
        else:
            width, height = media_domain.png_size(head) or (None, None)
            await _append(rt, mine, project, run_id, lambda s: media_domain.log_media(
                s, key=found["key"], step=found["step"], kind=found["kind"], digest=digest,
                thumbnail_digest=None, media_type=found["media_type"], size=size, width=width,
                height=height, entry=found["entry"], source="mlflow", name=name))
    except CairnError as err:
        log.warning("media_not_indexed project=%s run=%s name=%r reason=%s", project, run_id, name, err)
        return {"indexed": False, "reason": str(err)}
    return {"indexed": True, "key": found["key"], "step": found["step"], "kind": found["kind"],
            "thumbnail": found["thumbnail"]}
