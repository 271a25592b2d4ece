"""Artifact store wiring: settings, backend choice, projection, routes."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import FastAPI

from cairn.kernel.bodylimit import MANIFEST_BODY
from cairn.kernel.identity import load_service_key
from cairn.kernel.service import create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.services.artifacts.api import router
from cairn.services.artifacts.api_blobs import router as blob_router
from cairn.services.artifacts.api_bundles import BUNDLE_BODY
from cairn.services.artifacts.api_bundles import direct_router as direct_bundle_router
from cairn.services.artifacts.api_bundles import router as bundle_router
from cairn.services.artifacts.api_media import router as media_router
from cairn.services.artifacts.api_presigned import router as presigned_router
from cairn.services.artifacts.api_preview import router as preview_router
from cairn.services.artifacts.backends import BlobBackend, FsBackend, S3Backend
from cairn.services.artifacts.blobs import BlobStore
from cairn.services.artifacts.commands_nats import serve_nats_commands
from cairn.services.artifacts.direct import DIRECT_PREFIX, FsDirect
from cairn.services.artifacts.direct import router as direct_router
from cairn.services.artifacts.presign import S3Presigner
from cairn.services.artifacts.projection import AGGREGATES, projection
from cairn.services.artifacts.store import ArtifactsStore
from cairn.services.artifacts.verify import start_verifier


class ArtifactsSettings(ServiceSettings):
    """Environment (CAIRN_ prefix): ARTIFACTS_BACKEND=fs|s3, ARTIFACTS_S3_ENDPOINT,
    ARTIFACTS_S3_BUCKET, ARTIFACTS_S3_ACCESS_KEY, ARTIFACTS_S3_SECRET_KEY, ARTIFACTS_S3_REGION,
    ARTIFACTS_S3_PREFIX, ARTIFACTS_S3_PUBLIC_ENDPOINT, ARTIFACTS_S3_PRESIGN,
    ARTIFACTS_S3_PRESIGN_SECONDS, ARTIFACTS_S3_STAGING_PREFIX, ARTIFACTS_S3_PART_BYTES,
    ARTIFACTS_MAX_BLOB_BYTES, ARTIFACTS_VERIFY_READS,
    ARTIFACTS_VERIFY_EVERY_SECONDS,
    ARTIFACTS_GC_GRACE_SECONDS, plus the common ones."""

    artifacts_backend: Literal["fs", "s3"] = "fs"
    artifacts_s3_endpoint: str | None = None
    artifacts_s3_bucket: str = "cairn"
    artifacts_s3_access_key: str | None = None
    artifacts_s3_secret_key: str | None = None
    artifacts_s3_region: str = "us-east-1"
    artifacts_s3_prefix: str = "blobs/"
    artifacts_s3_public_endpoint: str | None = None  # the bucket's address as clients reach it
    artifacts_s3_presign: bool = True  # transfer plans with presigned URLs (S3 only)
    # file system: this service's address as clients reach it; set, transfer plans hand out signed
    # URLs of this service (direct.py) so the bytes skip the gateway; empty: through the gateway
    artifacts_direct_url: str = ""
    artifacts_direct_seconds: int = 900  # how long a direct transfer URL is good for
    artifacts_s3_presign_seconds: int = 900
    artifacts_s3_staging_prefix: str = "uploads/"
    artifacts_s3_part_bytes: int = 64 << 20  # presigned multipart uploads: part size (>= 5 MiB)
    artifacts_max_blob_bytes: int = 1 << 40
    artifacts_verify_reads: bool = True  # hash a blob before each download (False: trust the storage)
    artifacts_verify_every_seconds: float = 0.0  # hash every stored blob this often (0: never)
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


def make_presigner(settings: ArtifactsSettings, backend: BlobBackend) -> S3Presigner | FsDirect | None:
    """Presigned transfer plans on S3 (unless turned off), signed URLs of this service on the
    file system (when it has a direct address); None: bytes go through the gateway."""
    if not isinstance(backend, S3Backend):
        if not settings.artifacts_direct_url:
            return None
        return FsDirect(settings.artifacts_direct_url, load_service_key(settings.data_dir, settings.service_key_file),
                        settings.artifacts_direct_seconds)
    if not settings.artifacts_s3_presign:
        return None
    return S3Presigner(backend, public_endpoint=settings.artifacts_s3_public_endpoint,
                       region=settings.artifacts_s3_region, access_key=settings.artifacts_s3_access_key,
                       secret_key=settings.artifacts_s3_secret_key,
                       expires=settings.artifacts_s3_presign_seconds,
                       staging_prefix=settings.artifacts_s3_staging_prefix,
                       part_size=settings.artifacts_s3_part_bytes)


def body_limits(settings: ArtifactsSettings) -> dict[str, int | None]:
    """Blob bodies stream to disk, so they may be as large as a blob; manifests are parsed in
    memory (JSON), so they get room for a million or so files, not more; the rest (``.../blobs/missing``
    is a JSON query too) the default."""
    return {"/projects/*/blobs": settings.artifacts_max_blob_bytes,
            "/projects/*/blobs/missing": None,
            "/projects/*/blobs/bundle": BUNDLE_BODY,
            "/projects/*/blobs/*/upload-plan": None,
            "/projects/*/blobs/*/commit": MANIFEST_BODY,
            "/projects/*/runs/*/files": settings.artifacts_max_blob_bytes,
            "/projects/*/manifests": MANIFEST_BODY,
            "/projects/*/datasets/*/versions": MANIFEST_BODY,
            "/direct/projects/*/blobs": settings.artifacts_max_blob_bytes,
            "/direct/projects/*/blobs/bundle": BUNDLE_BODY}


def create_app(settings: ArtifactsSettings | None = None) -> FastAPI:
    settings = settings or ArtifactsSettings()
    app = create_service_app(
        "artifacts",
        settings,
        make_store=lambda s: ArtifactsStore(s.read_model_dir("artifacts") / "artifacts.sqlite3"),
        handler=projection(),
        routers=[blob_router, bundle_router, presigned_router, preview_router, direct_router, direct_bundle_router, media_router,
                 router],
        description="Content-addressed blobs, dataset versions, run artifacts and GC.",
        projection_aggregates=AGGREGATES,
        body_limits=body_limits(settings),
        on_start=[serve_nats_commands, start_verifier],
        open_prefixes=(DIRECT_PREFIX,),
    )
    app.state.settings = settings
    backend = make_backend(settings)
    app.state.blobs = BlobStore(backend, settings.data_dir / "artifacts" / "tmp",
                                settings.artifacts_max_blob_bytes, settings.artifacts_verify_reads)
    app.state.presigner = make_presigner(settings, backend)
    app.state.gc_lock = asyncio.Lock()
    return app
