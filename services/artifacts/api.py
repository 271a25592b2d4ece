"""Dataset, run-artifact and GC routes: thin, over the domain (commands) and the read model."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cairn.core import Manifest
from cairn.kernel.commands import CommandContext, Outcome
from cairn.kernel.errors import InvalidInput
from cairn.kernel.identity import EDITOR, SIGNED_IN, SITE_ADMIN, VIEWER, requires
from cairn.kernel.ids import (
    DATASET_NAME,
    DATASET_NAME_PATTERN,
    DIGEST_PATTERN,
    FREE_TEXT_PATTERN,
    ID_PATTERN,
    anchored,
    check_token,
)
from cairn.services.artifacts import domain
from cairn.services.artifacts.api_blobs import (
    Blobs,
    Ctx,
    ProjectName,
    Runtime,
    Store,
    settled_reads,
)
from cairn.services.artifacts.api_media import index_mlflow_file
from cairn.services.artifacts.diff import diff_manifests
from cairn.services.artifacts.gc import collect_garbage
from cairn.services.artifacts.manifests import decode_manifest, manifest_from_request
from cairn.services.artifacts.possession import record_possession, require_possessed
from cairn.services.artifacts.store import ArtifactsStore
from cairn.services.artifacts.visibility import check_readable
from cairn.services.registry.project_check import project_exists_on_writes

router = APIRouter(dependencies=[Depends(settled_reads), Depends(project_exists_on_writes)])
DatasetName = Annotated[str, Path(pattern=DATASET_NAME_PATTERN, description="dataset name")]
RunId = Annotated[str, Path(pattern=ID_PATTERN)]
DIGEST = DIGEST_PATTERN
REF_RE = anchored(rf"(?P<name>{DATASET_NAME})(?:@v?(?P<version>\d+|latest))?")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionCreate(Strict):
    manifest: dict[str, Any] = Field(description="Manifest.as_dict(): digest, entries, skipped")
    description: str = Field(default="", max_length=8000, pattern=FREE_TEXT_PATTERN)


class ManifestPut(Strict):
    manifest: dict[str, Any]


class ArtifactLog(Strict):
    name: str = Field(min_length=1, max_length=250)
    digest: str = Field(pattern=DIGEST)
    kind: Literal["file", "directory", "model"] = "file"


class DatasetUse(Strict):
    dataset: str = Field(min_length=1, max_length=140, examples=["mnist@v3", "mnist"])


def _gc_lock(request: Request) -> asyncio.Lock:
    return request.app.state.gc_lock


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name``, ``name@v3``, ``name@3`` or ``name@latest`` -> (name, version or None)."""
    match = REF_RE.match(ref)
    if match is None:
        raise InvalidInput(f"dataset reference {ref!r} is not valid: use NAME or NAME@vN",
                           details={"field": "dataset"})
    version = match.group("version")
    return match.group("name"), None if version in (None, "latest") else int(version)


async def _store_manifest(rt: Any, store: ArtifactsStore, blobs: Any, project: str, manifest: Manifest) -> None:
    """Refuse a manifest naming files the project has not uploaded (whoever else did); store it
    as a blob."""
    files = sorted({e.digest for e in manifest.entries if e.kind == "file"})
    await require_possessed(rt, store, blobs, project, files, "file blob(s) of the manifest are")
    await blobs.put_bytes(manifest.encode())


def _manifest_of(blobs: Any, digest: str) -> Manifest:
    return decode_manifest(blobs.read_verified(digest))


# --- manifests ----------------------------------------------------------------------------------

@router.post("/projects/{project}/manifests", status_code=201, tags=["blobs"], **requires(EDITOR))
async def put_manifest(project: ProjectName, body: ManifestPut, request: Request, rt: Runtime,
                       blobs: Blobs, store: Store, ctx: Ctx) -> dict[str, Any]:
    """Store a directory manifest whose files the project uploaded; the project then holds the
    manifest (it sent it whole), so a run may log it as a directory or model. Returns its digest."""
    manifest = manifest_from_request(body.manifest)
    async with _gc_lock(request):
        await _store_manifest(rt, store, blobs, project, manifest)
    encoded = manifest.encode()
    await record_possession(rt, ctx, store, project, manifest.digest, len(encoded), "manifest")
    return {"digest": manifest.digest, "files": len(manifest), "total_size": manifest.total_size}


@router.get("/manifests/{digest}", tags=["blobs"], **requires(SIGNED_IN))
async def get_manifest(digest: Annotated[str, Path(pattern=DIGEST)], blobs: Blobs, store: Store,
                       request: Request) -> dict[str, Any]:
    """A stored manifest's entries (verified); only manifests one of the caller's projects holds."""
    check_readable(request, store, digest)
    return (await asyncio.to_thread(_manifest_of, blobs, digest)).as_dict()


# --- datasets -----------------------------------------------------------------------------------

@router.post("/projects/{project}/datasets/{name}/versions", status_code=201, tags=["datasets"], **requires(EDITOR))
async def create_version(project: ProjectName, name: DatasetName, body: VersionCreate,
                         request: Request, rt: Runtime, blobs: Blobs, store: Store,
                         ctx: Ctx) -> JSONResponse:
    """A new dataset version from a manifest whose file blobs the project uploaded (200 and the
    latest version when it is identical to the latest). The version gives the project the
    manifest: the request carried it whole."""
    manifest = manifest_from_request(body.manifest)
    async with _gc_lock(request):
        await _store_manifest(rt, store, blobs, project, manifest)
        outcome = await rt.commands.execute(
            ctx, project=project, aggregate="dataset", aggregate_id=name,
            decide=lambda s: domain.create_dataset_version(
                s, manifest_digest=manifest.digest, files=len(manifest),
                total_size=manifest.total_size, description=body.description))
    if outcome.type == "noop":
        return JSONResponse(store.dataset_version(project, name, None), status_code=200)
    return JSONResponse(store.version_by_seq(outcome.sequence), status_code=201)


@router.get("/projects/{project}/datasets", tags=["datasets"], **requires(VIEWER))
async def list_datasets(project: ProjectName, store: Store) -> dict[str, Any]:
    return {"datasets": store.datasets(project)}


@router.get("/projects/{project}/datasets/{name}", tags=["datasets"], **requires(VIEWER))
async def show_dataset(project: ProjectName, name: DatasetName, store: Store) -> dict[str, Any]:
    return {"name": name, "versions": store.dataset_versions(project, name)}


@router.get("/projects/{project}/datasets/{name}/versions/{version}", tags=["datasets"], **requires(VIEWER))
async def get_version(project: ProjectName, name: DatasetName, store: Store, blobs: Blobs,
                      version: Annotated[str, Path(pattern=r"^(v?\d+|latest)$")]) -> dict[str, Any]:
    """One version with its manifest (``latest`` or a number)."""
    number = None if version == "latest" else int(version.lstrip("v"))
    record = store.dataset_version(project, name, number)
    manifest = await asyncio.to_thread(_manifest_of, blobs, record["manifest_digest"])
    return {**record, "manifest": manifest.as_dict()}


@router.get("/projects/{project}/datasets/{name}/diff", tags=["datasets"], **requires(VIEWER))
async def diff_versions(project: ProjectName, name: DatasetName, store: Store, blobs: Blobs,
                        from_version: Annotated[int, Query(alias="from", ge=1)],
                        to_version: Annotated[int | None, Query(alias="to", ge=1)] = None,
                        ) -> dict[str, Any]:
    """Files added, removed and changed between two versions; schema and row-count changes of
    tabular files."""
    old = store.dataset_version(project, name, from_version)
    new = store.dataset_version(project, name, to_version)

    def compute() -> dict[str, Any]:
        return diff_manifests(blobs, _manifest_of(blobs, old["manifest_digest"]),
                              _manifest_of(blobs, new["manifest_digest"]))

    result = await asyncio.to_thread(compute)
    return {"dataset": name, "from": old["version"], "to": new["version"], **result}


# --- runs: artifacts and inputs -----------------------------------------------------------------

@router.post("/projects/{project}/runs/{run_id}/artifacts", status_code=201, tags=["runs"], **requires(EDITOR))
async def log_artifact(project: ProjectName, run_id: RunId, body: ArtifactLog, request: Request,
                       rt: Runtime, blobs: Blobs, store: Store, ctx: Ctx) -> dict[str, Any]:
    """Record a blob (file) or manifest (directory, model) that the project uploaded under a
    name. A digest the project has not uploaded is refused the same way whether or not another
    project stored it: naming a digest proves nothing."""
    async with _gc_lock(request):
        await require_possessed(rt, store, blobs, project, [body.digest], f"blob {body.digest} is")
        size, files = await asyncio.to_thread(_measure, blobs, body.digest, body.kind)
        await _record(rt, ctx, project, run_id, body.name, body.digest, body.kind, size, files)
    return store.run_artifact(project, run_id, body.name)


@router.put("/projects/{project}/runs/{run_id}/files/{name:path}", status_code=201, tags=["runs"], **requires(EDITOR))
async def upload_run_file(project: ProjectName, run_id: RunId, name: str, request: Request,
                          rt: Runtime, blobs: Blobs, store: Store, ctx: Ctx,
                          digest: Annotated[str | None, Header(alias="X-Cairn-Digest", pattern=DIGEST)] = None,
                          ) -> dict[str, Any]:
    """Upload one file as the raw body and log it on the run under ``name``, in one request:
    the bytes are hashed here once (checked against ``X-Cairn-Digest`` when sent) and stored
    durably before ``run.artifact_logged`` refers to them; the answer comes once that event is
    durable in the log (reads of this service wait for it to be projected). That event (v2) is
    also the project's proof that it holds the blob: no ``blob.possessed`` is appended, which
    keeps a run file to one event."""
    domain.check_artifact_name(name)
    check_token(run_id, "run id")
    removals = blobs.removals
    digest, size = await blobs.receive_any(request.stream(), expected=digest)
    async with _gc_lock(request):
        if blobs.removals != removals and not await asyncio.to_thread(blobs.exists, digest):  # collected since
            raise InvalidInput(f"blob {digest} was removed while it was being logged; upload it again",
                               details={"missing": [digest]})
        outcome = await _record(rt, ctx, project, run_id, name, digest, "file", size, 1, wait=False)
    if outcome.type == "noop":  # logged before (by a v1 event, the project may not hold it yet)
        await record_possession(rt, ctx, store, project, digest, size, "upload")
    media = await index_mlflow_file(rt, ctx, project, run_id, name, digest, size, blobs)  # docs/media.md
    return {"project": project, "run_id": run_id, "name": name, "digest": digest, "kind": "file",
            "size": size, "files": 1, "logged": outcome.type != "noop", **({"media": media} if media else {})}


async def _record(rt: Any, ctx: CommandContext, project: str, run_id: str, name: str, digest: str,
                  kind: str, size: int, files: int, *, wait: bool = True) -> Outcome:
    """Append ``run.artifact_logged`` (a no-op when the run has this name with these bytes)."""
    return await rt.commands.execute(
        ctx, project=project, aggregate="artifact_set", aggregate_id=check_token(run_id, "run id"),
        decide=lambda s: domain.log_artifact(s, name=name, digest=digest, kind=kind, size=size, files=files),
        wait=wait)


def _measure(blobs: Any, digest: str, kind: str) -> tuple[int, int]:
    """(size, files) of an artifact; a directory or model must be a manifest."""
    with blobs.open_verified(digest) as path:
        data = path.read_bytes() if kind != "file" else b""
        if kind == "file":
            return path.stat().st_size, 1
    try:
        manifest = decode_manifest(data)
    except ValueError:
        raise InvalidInput(f"a {kind} artifact must point at a manifest (POST /projects/PROJECT/manifests); "
                           f"blob {digest} is not one", details={"field": "digest"}) from None
    return manifest.total_size, len(manifest)


@router.get("/projects/{project}/runs/{run_id}/artifacts", tags=["runs"], **requires(VIEWER))
async def list_artifacts(project: ProjectName, run_id: RunId, store: Store) -> dict[str, Any]:
    return {"artifacts": store.run_artifacts(project, run_id)}


@router.post("/projects/{project}/runs/{run_id}/datasets", status_code=201, tags=["runs"], **requires(EDITOR))
async def use_dataset(project: ProjectName, run_id: RunId, body: DatasetUse, rt: Runtime,
                      store: Store, ctx: Ctx) -> dict[str, Any]:
    """Declare a dataset version (``NAME@vN``, or NAME for the latest) as an input of a run."""
    name, version = parse_ref(body.dataset)
    record = store.dataset_version(project, name, version)
    await rt.commands.execute(
        ctx, project=project, aggregate="dataset_use", aggregate_id=check_token(run_id, "run id"),
        decide=lambda s: domain.use_dataset(s, dataset=name, version=record["version"],
                                            manifest_digest=record["manifest_digest"]))
    return {"run_id": run_id, "dataset": name, "version": record["version"],
            "manifest_digest": record["manifest_digest"]}


@router.get("/projects/{project}/runs/{run_id}/datasets", tags=["runs"], **requires(VIEWER))
async def list_dataset_uses(project: ProjectName, run_id: RunId, store: Store) -> dict[str, Any]:
    return {"datasets": store.dataset_uses(project, run_id)}


# --- admin --------------------------------------------------------------------------------------

@router.post("/admin/gc", tags=["ops"], **requires(SITE_ADMIN))
async def gc(request: Request, rt: Runtime, blobs: Blobs,
             grace_seconds: Annotated[float | None, Query(ge=0)] = None,
             dry_run: bool = False) -> dict[str, Any]:
    """Delete blobs no event references, older than ``grace_seconds`` (default from settings)."""
    grace = request.app.state.settings.artifacts_gc_grace_seconds if grace_seconds is None else grace_seconds
    return await collect_garbage(rt, blobs, _gc_lock(request), grace_seconds=grace, dry_run=dry_run)


@router.post("/admin/verify", tags=["ops"], **requires(SITE_ADMIN))
async def verify(blobs: Blobs, digest: Annotated[list[str] | None, Query(max_length=1000)] = None) -> dict[str, Any]:
    """Hash stored blobs (every one, or ``?digest=``...) and list those whose bytes no longer match
    (``corrupt``; re-upload the originals to repair) or are gone (``missing``). Run it on a schedule
    when downloads are not verified (``CAIRN_ARTIFACTS_VERIFY_READS=false``)."""
    return await asyncio.to_thread(blobs.verify_stored, digest)


@router.get("/admin/verify", tags=["ops"], **requires(SITE_ADMIN))
async def last_verify(request: Request) -> dict[str, Any]:
    """The last scheduled verification (``CAIRN_ARTIFACTS_VERIFY_EVERY_SECONDS``): ``{checked,
    bytes, corrupt, missing, started_at, finished_at}``; ``{"finished_at": null}`` before the first."""
    return request.app.state.last_verify or {"finished_at": None}
