"""Garbage collection: delete blobs that no event references any more, once they are older
than a grace period.

Live set = every digest in ``blob_refs`` (dataset manifests, run artifacts, model versions' artifact
digests), plus the files named by each of those that is a manifest. The projection is brought up
to the end of the log first, and GC holds the same lock as the commands that make new references,
so a blob cannot lose its last reference between "is it live?" and "delete".
A blob younger than the grace period is kept even if unreferenced: it may belong to a push whose
version is not created yet.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cairn.kernel.service import ServiceRuntime
from cairn.services.artifacts.blobs import BlobStore
from cairn.services.artifacts.manifests import decode_manifest, is_manifest
from cairn.services.artifacts.store import ArtifactsStore


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


async def collect_garbage(rt: ServiceRuntime, blobs: BlobStore, lock: asyncio.Lock, *,
                          grace_seconds: float, dry_run: bool = False) -> dict[str, Any]:
    """Delete unreferenced blobs older than ``grace_seconds``; returns what was done."""
    async with lock:
        await rt.runner.wait_for(await rt.log.last_sequence(), timeout=60)
        store = rt.store
        assert isinstance(store, ArtifactsStore)

        def sweep() -> dict[str, Any]:
            live = live_digests(store, blobs)
            now = time.time()
            removed: list[str] = []
            freed = kept_live = kept_young = 0
            for blob in list(blobs.backend.list()):
                if blob.digest in live:
                    kept_live += 1
                elif now - blob.modified < grace_seconds:
                    kept_young += 1
                else:
                    if not dry_run:
                        blobs.remove(blob.digest)
                    removed.append(blob.digest)
                    freed += blob.size
            return {"removed": removed, "removed_count": len(removed), "freed_bytes": freed,
                    "kept_referenced": kept_live, "kept_in_grace": kept_young,
                    "grace_seconds": grace_seconds, "dry_run": dry_run}

        return await asyncio.to_thread(sweep)
