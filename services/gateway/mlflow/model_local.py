"""Model versions from a folder on the gateway's machine, copied into the content-addressed store.

MLflow's client registers a local path or ``file://`` URI as a version's ``source`` without sending
any file: only a server that reads its own disk can keep such a version. Cairn's gateway reads
one only where the site allowed it, ``CAIRN_MLFLOW_LOCAL_SOURCES`` (folders, separated by
``os.pathsep``; empty, the default: every local source is refused with MLflow's own message), and
only with a ``run_id``, as MLflow requires of a local source: reading any path a caller names
would let every editor read the gateway's files. The folder's real path (symbolic links resolved)
must lie in an allowed folder; a symbolic link inside it is refused, never followed. Its files
are uploaded as the project's blobs, and the version pins the digest of their manifest, so it
stays reproducible after the folder changes or goes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from cairn.core import Manifest, fingerprint_tree
from cairn.services.gateway.mlflow.calls import Call
from cairn.services.gateway.mlflow.errors import MlflowError

SETTING = "CAIRN_MLFLOW_LOCAL_SOURCES"


def allowed_folders() -> list[Path]:
    return [Path(os.path.realpath(p)) for p in os.environ.get(SETTING, "").split(os.pathsep) if p.strip()]


def local_folder(source: str, run_id: str) -> Path | None:
    """The real folder (or file) a local source names, if the site allows reading it; else None."""
    folders = allowed_folders()
    if not folders or not run_id:
        return None
    path = unquote(urlparse(source).path) if source.lower().startswith("file:") else source
    if not os.path.isabs(path):
        return None
    real = Path(os.path.realpath(path))
    if not real.exists() or not any(real == f or f in real.parents for f in folders):
        return None
    return real


async def copy_folder(call: Call, folder: Path) -> str:
    """Upload the files of ``folder`` as the project's blobs; the digest of their manifest,
    stored in the project."""
    if not folder.is_dir():
        raise MlflowError("INVALID_PARAMETER_VALUE", f"the model source {str(folder)!r} is a file; give its folder")
    manifest: Manifest = await asyncio.to_thread(fingerprint_tree, folder)
    entries = list(manifest.entries)
    if not entries:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"the model source {str(folder)!r} holds no files")
    links = [e.path for e in entries if e.kind != "file"]
    if links:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"the model source holds symbolic links ({', '.join(links[:5])}); "
                          "Cairn copies files only: replace the links with the files")
    for entry in entries:
        with open(folder / entry.path, "rb") as body:
            await call.artifacts("PUT", f"/projects/{call.project}/blobs/{entry.digest}", data=body)
    pinned = Manifest.from_entries(entries)
    answer = await call.artifacts("POST", f"/projects/{call.project}/manifests", body={"manifest": pinned.as_dict()})
    return str(answer["digest"])
