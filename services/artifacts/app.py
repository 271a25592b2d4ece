"""Artifact store wiring: settings, backend choice, projection, routes."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import FastAPI

from cairn.kernel.bodylimit import MANIFEST_BODY
from cairn.kernel.service import create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.services.artifacts.api import router
from cairn.services.artifacts.api_blobs import router as blob_router
from cairn.services.artifacts.api_preview import router as preview_router
from cairn.services.artifacts.backends import BlobBackend, FsBackend, S3Backend
from cairn.services.artifacts.blobs import BlobStore
from cairn.services.artifacts.commands_nats import serve_nats_commands
from cairn.services.artifacts.projection import AGGREGATES, projection
from cairn.services.artifacts.store import ArtifactsStore


class ArtifactsSettings(ServiceSettings):
    """Environment (CAIRN_ prefix): ARTIFACTS_BACKEND=fs|s3, ARTIFACTS_S3_ENDPOINT,
    ARTIFACTS_S3_BUCKET, ARTIFACTS_S3_ACCESS_KEY, ARTIFACTS_S3_SECRET_KEY, ARTIFACTS_S3_REGION,
    ARTIFACTS_S3_PREFIX, ARTIFACTS_MAX_BLOB_BYTES, ARTIFACTS_GC_GRACE_SECONDS, plus the common ones."""

    artifacts_backend: Literal["fs", "s3"] = "fs"
    artifacts_s3_endpoint: str | None = None
    artifacts_s3_bucket: str = "cairn"
    artifacts_s3_access_key: str | None = None
    artifacts_s3_secret_key: str | None = None
    artifacts_s3_region: str = "us-east-1"
    artifacts_s3_prefix: str = "blobs/"
    artifacts_max_blob_bytes: int = 1 << 40
    artifacts_gc_grace_seconds: float = 86400.0


def make_backend(settings: ArtifactsSettings) -> BlobBackend:
    root = settings.data_dir / "artifacts"
    if settings.artifacts_backend == "s3":
        return S3Backend(endpoint=settings.artifacts_s3_endpoint, bucket=settings.artifacts_s3_bucket,
                         access_key=settings.artifacts_s3_access_key,
                         secret_key=settings.artifacts_s3_secret_key,
                         region=settings.artifacts_s3_region, prefix=settings.artifacts_s3_prefix,
                         spool_dir=root / "tmp")
    return FsBackend(root / "blobs")


def body_limits(settings: ArtifactsSettings) -> dict[str, int | None]:
    """Blob bodies stream to disk, so they may be as large as a blob; manifests are parsed in
    memory (JSON), so they get room for a million or so files, not more; the rest (``.../blobs/missing``
    is a JSON query too) the default."""
    return {"/projects/*/blobs": settings.artifacts_max_blob_bytes,
            "/projects/*/blobs/missing": None,
            "/projects/*/runs/*/files": settings.artifacts_max_blob_bytes,
            "/projects/*/manifests": MANIFEST_BODY,
            "/projects/*/datasets/*/versions": MANIFEST_BODY}


def create_app(settings: ArtifactsSettings | None = None) -> FastAPI:
    settings = settings or ArtifactsSettings()
    app = create_service_app(
        "artifacts",
        settings,
        make_store=lambda s: ArtifactsStore(s.data_dir / "artifacts" / "artifacts.sqlite3"),
        handler=projection(),
        routers=[blob_router, preview_router, router],
        description="Content-addressed blobs, dataset versions, run artifacts and GC.",
        projection_aggregates=AGGREGATES,
        body_limits=body_limits(settings),
        on_start=[serve_nats_commands],
    )
    app.state.settings = settings
    app.state.blobs = BlobStore(make_backend(settings), settings.data_dir / "artifacts" / "tmp",
                                settings.artifacts_max_blob_bytes)
    app.state.gc_lock = asyncio.Lock()
    return app
