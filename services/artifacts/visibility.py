"""Who may read a blob: blobs are shared by content across projects, so a read is allowed when
an event of one of the caller's projects points at the blob, directly or as a file of a
referenced manifest. Site admins and other services may read every blob."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from fastapi import Request

from cairn.kernel.errors import CairnError, NotFound
from cairn.kernel.identity import caller_of
from cairn.services.artifacts.manifests import decode_manifest
from cairn.services.artifacts.store import ArtifactsStore


def caller_projects(request: Request) -> list[str] | None:
    """The signed caller's projects; None for every project."""
    return caller_of(request).projects


_FILES: OrderedDict[str, frozenset[str]] = OrderedDict()  # content-addressed: the digest is the key


def _files_of(blobs: Any, manifest_digest: str) -> frozenset[str]:
    files = _FILES.get(manifest_digest)
    if files is None:
        try:
            manifest = decode_manifest(blobs.read_verified(manifest_digest))
            files = frozenset(e.digest for e in manifest.entries if e.kind == "file")
        except (CairnError, ValueError, OSError):
            files = frozenset()  # a plain file referenced as "may be a manifest"
        _FILES[manifest_digest] = files
        if len(_FILES) > 4096:
            _FILES.popitem(last=False)
    return files


def check_readable(request: Request, store: ArtifactsStore, blobs: Any, digest: str) -> None:
    """404 (never 403: digests are not confirmed) unless the caller may read ``digest``."""
    projects = caller_projects(request)
    if projects is None:
        return
    if projects and store.referenced_in(digest, projects):
        return
    if projects and any(digest in _files_of(blobs, m) for m in store.manifests_in(projects)):
        return
    raise NotFound(f"no blob {digest} in your projects")
