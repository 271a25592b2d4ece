"""A pipeline definition's push-hook secret and commit-status token, sealed in its event of record.

``pipeline.registered`` is on the project's subject, which outside event subscribers may read
(docs/cluster.md, "Event subscriptions from other systems"), so both travel sealed with the key in
``cairn-keys`` (cairn.kernel.sealing), the project and pipeline name as associated data. The read
model keeps them sealed too; they are opened only where they are used: checking a push, calling
the code host. Definitions registered before sealing hold plaintext, which opens as it is.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from cairn.kernel.sealing import seal, seal_key, unseal
from cairn.kernel.service import ServiceRuntime


async def key_of(app: FastAPI, runtime: ServiceRuntime) -> bytes:
    """The sealing key, fetched (or made) once per app."""
    key: bytes | None = getattr(app.state, "seal_key", None)
    if key is None:
        key = app.state.seal_key = await seal_key(runtime.log.js, replicas=runtime.log.replicas)
    return key


def _context(project: str, name: str, part: str) -> str:
    return f"pipeline:{project}/{name}:{part}"


def sealed_parts(key: bytes, project: str, name: str, hook: dict[str, Any] | None,
                 status: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``hook`` and ``status`` as the event records them: the secret and the token sealed."""
    if hook is not None:
        hook = {**hook, "secret": seal(key, hook["secret"], _context(project, name, "hook"))}
    if status is not None:
        status = {**status, "token": seal(key, status["token"], _context(project, name, "status"))}
    return hook, status


def hook_secret(key: bytes, definition: dict[str, Any]) -> str:
    return unseal(key, definition["hook"]["secret"], _context(definition["project"], definition["name"], "hook"))


def status_token(key: bytes, definition: dict[str, Any]) -> str:
    return unseal(key, definition["status"]["token"],
                  _context(definition["project"], definition["name"], "status"))
