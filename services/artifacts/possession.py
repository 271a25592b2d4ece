"""Possession: which blobs a project proved it holds, and the checks built on it.

A project comes to hold a blob by sending its bytes (the service hashes them, even when the blob
is already stored), or by pushing a manifest (dataset version, directory artifact) whose files it
holds: that manifest is content the request carried whole. A first proof appends
``blob.possessed`` once per project and blob (a run file's ``run.artifact_logged`` v2 and a
dataset version's event are proofs themselves), so the read model (``blob_possessions``) is
rebuilt by replay; a repeated proof is answered from the read model without an append. Many
blobs proved by one request (a bundle, a bundle plan's commit) are recorded together, one
``blobs.possessed`` per ``POSSESSIONS_PER_EVENT``: with the event log syncing each append to disk,
one append per blob was most of a bundle commit's time.
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


async def record_possessions(rt: Any, ctx: CommandContext, store: ArtifactsStore, project: str,
                             blobs: dict[str, int]) -> dict[str, bool]:
    """:func:`record_possession` for many uploaded blobs (digest -> size) at once; digest -> whether
    this appended its record. The ones not held yet are recorded ``POSSESSIONS_PER_EVENT`` to a
    ``blobs.possessed`` (one alone is a ``blob.possessed``), all of a project's on one subject
    (``possessions.uploads``): appends there are serialized by that subject's expected sequence,
    and each decides on the read model after the last one, so none records a blob twice. (A single
    upload racing a bundle with the same bytes may record it in both; that changes nothing.)"""
    held = await asyncio.to_thread(store.possessed_of, project, list(blobs))
    fresh = [d for d in blobs if d not in held]
    if len(fresh) == 1:  # one record: the single blob's own event (and subject)
        new = await record_possession(rt, ctx, store, project, fresh[0], blobs[fresh[0]], "upload")
        return {d: new and d == fresh[0] for d in blobs}
    created: set[str] = set()
    for start in range(0, len(fresh), domain.POSSESSIONS_PER_EVENT):
        part = {d: blobs[d] for d in fresh[start:start + domain.POSSESSIONS_PER_EVENT]}
        decided: list[str] = []

        def decide(_state: Any, part: dict[str, int] = part, decided: list[str] = decided) -> Any:
            # after the subject's state was read: a record projected since can only make the
            # append's expected sequence stale (a retry), never let a blob through twice
            decision = domain.possess_blobs(store.possessed_of(project, list(part)), part)
            decided[:] = [b["digest"] for b in decision[1]["blobs"]] if decision else []
            return decision

        outcome = await rt.commands.execute(
            replace(ctx, idempotency_key=None), project=project, aggregate=domain.POSSESSIONS,
            aggregate_id=domain.UPLOADS, decide=decide, wait=False)
        if outcome.type != "noop":
            created.update(decided)
    return {d: d in created for d in blobs}
