"""Who may read a blob. Blobs are shared by content across projects, so reading one is allowed
when one of the caller's projects proved it holds the content (``blob_possessions``: it uploaded
the bytes, or pushed a manifest of files it had proved); naming a digest in a record proves
nothing. Everything else is a 404 that does not say whether the blob exists elsewhere. Site
admins and other services may read every blob."""

from __future__ import annotations

from fastapi import Request

from cairn.kernel.errors import NotFound
from cairn.kernel.identity import caller_of
from cairn.services.artifacts.store import ArtifactsStore


def caller_projects(request: Request) -> list[str] | None:
    """The signed caller's projects; None for every project (site admins, other services)."""
    return caller_of(request).projects


def may_read(request: Request, store: ArtifactsStore, digest: str) -> bool:
    """Whether one of the caller's projects proved it holds ``digest`` (site admins: always)."""
    projects = caller_projects(request)
    return projects is None or store.possessed_by_any(digest, projects)


def check_readable(request: Request, store: ArtifactsStore, digest: str) -> None:
    """404 (never 403: digests are not confirmed) unless the caller may read ``digest``."""
    if not may_read(request, store, digest):
        raise NotFound(f"no blob {digest} in your projects")
