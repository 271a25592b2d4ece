"""Possession: which blobs a project proved it holds, and the checks built on it.

A project comes to hold a blob by sending its bytes (the service hashes them, even when the blob
is already stored), or by pushing a manifest (dataset version, directory artifact) whose files it
holds: that manifest is content the request carried whole. A first proof appends
``blob.possessed`` once per project and blob (a run file's ``run.artifact_logged`` v2 and a
dataset version's event are proofs themselves), so the read model (``blob_possessions``) is
rebuilt by replay; a repeated proof is answered from the read model without an append.
Storage is shared across projects, so bytes are kept once; a project that has not proved a blob
uploads it anyway, which is what keeps a known digest from being a key to another project's
bytes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput
from cairn.services.artifacts import domain
from cairn.services.artifacts.blobs import check_digest
from cairn.services.artifacts.store import ArtifactsStore


async def missing_for(rt: Any, store: ArtifactsStore, blobs: Any, project: str, digests: list[str]) -> list[str]:
    """The digests (checked, deduplicated, in order) that ``project`` must upload: those it has
    not proved, and those it proved whose bytes are no longer stored (collected since)."""
    await rt.commands.settled()  # proofs this service answered for are in the read model

    def compute() -> list[str]:
        unique = list(dict.fromkeys(check_digest(d) for d in digests))
        held = store.possessed_of(project, unique)
        gone = set(blobs.missing([d for d in unique if d in held]))
        return [d for d in unique if d not in held or d in gone]

    return await asyncio.to_thread(compute)


def not_uploaded(project: str, missing: list[str], what: str) -> InvalidInput:
    """The same answer whether or not another project stored these bytes (digests are not
    confirmed): the caller's project has to send them."""
    return InvalidInput(
        f"{what} not uploaded to project {project!r}; upload the bytes first "
        f"(PUT /projects/{project}/blobs/DIGEST; POST /projects/{project}/blobs/missing lists them)",
        details={"missing": missing[:100], "missing_count": len(missing)})


async def require_possessed(rt: Any, store: ArtifactsStore, blobs: Any, project: str,
                            digests: list[str], what: str) -> None:
    """422 naming the digests ``project`` has not proved (or whose bytes are gone)."""
    missing = await missing_for(rt, store, blobs, project, digests)
    if missing:
        raise not_uploaded(project, missing, what)


async def record_possession(rt: Any, ctx: CommandContext, store: ArtifactsStore, project: str,
                            digest: str, size: int, proof: str) -> bool:
    """Append ``blob.possessed`` unless ``project`` holds ``digest`` already; True if appended.
    Called once the proof was checked. The common case (already held) is one indexed read: no
    lock, no append. The answer comes once the event is durable; reads wait for the projection."""
    if store.possessed_by_any(digest, [project]):
        return False
    outcome = await rt.commands.execute(
        replace(ctx, idempotency_key=None),  # the request's key belongs to its own record, if any
        project=project, aggregate="blob", aggregate_id=digest,
        decide=lambda s: domain.possess_blob(s, digest=digest, size=size, proof=proof), wait=False)
    return outcome.type != "noop"
