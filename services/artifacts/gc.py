"""Garbage collection: delete blobs that no event references any more, once they are older
than a grace period.

Live set = every digest in ``blob_refs`` (dataset manifests, run artifacts, model versions' artifact
digests), plus the files named by each of those that is a manifest. The projection is brought up
to the end of the log first, and GC holds the same lock as the commands that make new references,
so a blob cannot lose its last reference between "is it live?" and "delete".
A blob younger than the grace period is kept even if unreferenced: it may belong to a push whose
version is not created yet.

Replicas (docs/cluster.md): the lock is one process's, so a collection takes the ``artifacts.gc``
lease first (one collection at a time across replicas; another replica's request is a 409 while
it runs) and holds it while it deletes, stopping when the lease is lost. A command on another
replica may still reference a blob that this one is collecting: the live set is computed again at
the log's end right before the deletions (only a reference appended in that last moment, to a
blob unreferenced and older than the grace period, can be lost), and once more after them, so the
answer names any removed blob that a reference reached in between (``referenced_after_removal``;
logged as an error) instead of keeping quiet about it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from typing import Any

from cairn.kernel.errors import Conflict
from cairn.kernel.leader import JetStreamLeases, Lease, holder_name
from cairn.kernel.service import ServiceRuntime
from cairn.kernel.tasks import stop_tasks
from cairn.services.artifacts.blobs import BlobStore
from cairn.services.artifacts.manifests import decode_manifest, is_manifest
from cairn.services.artifacts.store import ArtifactsStore

log = logging.getLogger(__name__)
GC_LEASE = "artifacts.gc"


def live_digests(store: ArtifactsStore, blobs: BlobStore) -> set[str]:
    """Every referenced digest, manifests expanded to their files (a manifest that cannot be read
    stops GC: without it we cannot know what it protects)."""
    roots, maybe_manifests = store.referenced_digests()
    live = set(roots)
    for digest in sorted(maybe_manifests):
        if not blobs.backend.exists(digest):
            continue
        with blobs.open_verified(digest) as path:
            with open(path, "rb") as f:
                head = f.read(64)
            if not is_manifest(head):
                continue
            manifest = decode_manifest(path.read_bytes())
        live.update(e.digest for e in manifest.entries if e.kind == "file")
    return live


async def gc_lease(rt: ServiceRuntime) -> Lease:
    """This replica's claim on ``artifacts.gc`` (made once; the bucket is shared with the other
    singletons' leases)."""
    lease = getattr(rt, "gc_lease", None)
    if lease is None:
        leases = getattr(rt, "lease_store", None)
        if leases is None:
            leases = rt.lease_store = await JetStreamLeases.open(rt.log.js, replicas=rt.log.replicas)
        lease = Lease(leases, GC_LEASE, holder_name(rt.name, rt.settings.replica))
        rt.gc_lease = lease  # type: ignore[attr-defined]
    return lease


async def _renewing(lease: Lease) -> None:
    """Keep the lease while a long sweep runs; a failed renewal leaves ``holds()`` false, which
    stops the deletions."""
    while lease.holds():
        await asyncio.sleep(lease.timing.renew_s)
        with suppress(Exception):  # NATS away: the lease runs out by its own clock
            await lease.renew()


async def _live_at_end(rt: ServiceRuntime, blobs: BlobStore) -> set[str]:
    await rt.runner.wait_for(await rt.log.last_sequence(), timeout=60)
    store = rt.store
    assert isinstance(store, ArtifactsStore)
    return await asyncio.to_thread(live_digests, store, blobs)


async def collect_garbage(rt: ServiceRuntime, blobs: BlobStore, lock: asyncio.Lock, *,
                          grace_seconds: float, dry_run: bool = False) -> dict[str, Any]:
    """Delete unreferenced blobs older than ``grace_seconds``; returns what was done. A 409
    while another replica collects."""
    lease = await gc_lease(rt)
    if not await lease.campaign():
        current = await lease.store.read(GC_LEASE)
        raise Conflict(f"garbage collection is running on {current[0].holder if current else 'another replica'}; "
                       "try again when it ends", details={"lease": GC_LEASE})
    renewer = asyncio.create_task(_renewing(lease))
    try:
        async with lock:
            return await _collect(rt, blobs, lease, grace_seconds=grace_seconds, dry_run=dry_run)
    finally:
        await stop_tasks(renewer)
        with suppress(Exception):  # NATS away: the lease expires by itself
            await lease.release()


async def _collect(rt: ServiceRuntime, blobs: BlobStore, lease: Lease, *, grace_seconds: float,
                   dry_run: bool) -> dict[str, Any]:
    live = await _live_at_end(rt, blobs)
    now = time.time()

    def candidates() -> tuple[list[Any], int, int]:
        old, kept_live, kept_young = [], 0, 0
        for blob in list(blobs.backend.list()):
            if blob.digest in live:
                kept_live += 1
            elif now - blob.modified < grace_seconds:
                kept_young += 1
            else:
                old.append(blob)
        return old, kept_live, kept_young

    old, kept_live, kept_young = await asyncio.to_thread(candidates)
    if old and not dry_run:  # references other replicas appended while the blobs were listed
        again = await _live_at_end(rt, blobs)
        kept_live += sum(1 for blob in old if blob.digest in again)
        old = [blob for blob in old if blob.digest not in again]

    def sweep() -> tuple[list[str], int]:
        removed: list[str] = []
        freed = 0
        for blob in old:
            if not dry_run:
                if not lease.holds():  # lost (a pause, NATS away): another replica may collect now
                    break
                blobs.remove(blob.digest)
            removed.append(blob.digest)
            freed += blob.size
        return removed, freed

    removed, freed = await asyncio.to_thread(sweep)
    late: list[str] = []
    if removed and not dry_run:
        late = sorted(set(removed) & await _live_at_end(rt, blobs))
        if late:
            log.error("gc removed blobs that a reference reached during the collection: %s", late)
    return {"removed": removed, "removed_count": len(removed), "freed_bytes": freed,
            "kept_referenced": kept_live, "kept_in_grace": kept_young,
            "grace_seconds": grace_seconds, "dry_run": dry_run, "referenced_after_removal": late,
            "complete": len(removed) == len(old)}
