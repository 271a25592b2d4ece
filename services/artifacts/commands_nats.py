"""The artifact store's commands over NATS (``cairn.cmd.artifacts.<name>``), asked by the other
services (see cairn.kernel.service_commands).

``digest_held``: the registry asks it before a model version is created, so that a version (and
then an alias, a deployment) can never point at content no project stored. It answers from the
possession table (``blob_possessions``: a blob the project uploaded, a manifest it pushed, a run
file or dataset version it logged) and checks that the bytes are still stored (not collected)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput
from cairn.kernel.ids import check_project_name
from cairn.kernel.service import ServiceRuntime
from cairn.kernel.service_commands import CommandServer, ServiceCommand
from cairn.services.artifacts.blobs import check_digest
from cairn.services.artifacts.store import ArtifactsStore

MAX_PROJECTS = 1000


def _projects(payload: dict[str, Any]) -> list[str]:
    projects = payload.get("projects")
    if not isinstance(projects, list) or not projects or len(projects) > MAX_PROJECTS:
        raise InvalidInput(f"projects: a list of 1 to {MAX_PROJECTS} project names is required")
    for project in projects:
        if not isinstance(project, str):
            raise InvalidInput("projects: project names are strings")
        check_project_name(project)
    return list(dict.fromkeys(projects))


def artifacts_commands(rt: ServiceRuntime, app: FastAPI) -> dict[str, ServiceCommand]:
    """Command name -> handler."""

    async def digest_held(payload: dict[str, Any], ctx: CommandContext) -> Any:
        """``{projects, digest}`` -> ``{"held_by": [the projects that hold it, bytes still stored]}``."""
        digest = payload.get("digest")
        if not isinstance(digest, str):
            raise InvalidInput("digest: a BLAKE3 digest (64 lowercase hex characters) is required")
        digest = check_digest(digest)
        store = rt.store
        assert isinstance(store, ArtifactsStore)
        projects = _projects(payload)
        await rt.commands.settled()  # proofs this service answered for are in the read model

        def held_by() -> list[str]:
            holders = [p for p in projects if store.possessed_of(p, [digest])]
            return holders if holders and not app.state.blobs.missing([digest]) else []

        return {"held_by": await asyncio.to_thread(held_by)}

    return {"digest_held": digest_held}


async def serve_nats_commands(app: FastAPI, runtime: ServiceRuntime) -> None:
    commands = CommandServer(runtime.log.nc, "artifacts", artifacts_commands(runtime, app))
    await commands.start()
    runtime.defer(commands.stop)
