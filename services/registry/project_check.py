"""Writes name a project that exists: asked of the registry, which owns projects. Used by the
artifact store and the scheduler (a router dependency each), answered by the registry's
``project_exists`` command (services/registry/commands_nats.py).

Membership checks cannot catch a write into a project that does not exist when the caller is a
site admin (who passes every membership check): such a dataset or blob would be stored in a
project that is listed nowhere. So every write route asks the registry
(``cairn.cmd.registry.project_exists`` over NATS, see cairn.kernel.service_commands) before it
appends anything. Projects are never deleted, so a yes is remembered for the process's life and
the hot path (a run logging many files) asks once per project; a no is asked again next time,
since the project may be created meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import NotFound
from cairn.kernel.identity import caller_of
from cairn.kernel.service_commands import CommandClient

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ProjectCheck:
    """The registry's answer to "does project P exist", a yes remembered."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        """``known``: projects taken as existing without asking (a service tested without a
        registry sets ``app.state.project_check = ProjectCheck(known=...)``)."""
        self.known: set[str] = set(known)

    async def require(self, request: Request, project: str) -> None:
        if project in self.known:
            return
        runtime = request.app.state.runtime
        client = CommandClient(runtime.log.nc, "registry")
        answer = await client.call("project_exists", {"project": project},
                                   CommandContext(actor=f"service:{runtime.name}"))
        if not answer["exists"]:
            raise NotFound(f"project {project!r} does not exist; create it first: cairn projects create {project}")
        self.known.add(project)


async def project_exists_on_writes(request: Request) -> None:
    """Router dependency: a write under ``/projects/{project}/`` needs the project to exist.
    ``/blobs/missing`` is a question (POST only for its body), not a write."""
    project = request.path_params.get("project")
    if project is None or request.method not in WRITES or request.url.path.endswith("/blobs/missing"):
        return
    visible = caller_of(request).projects
    if visible is not None and project not in visible:
        return  # not a member: the route's own role check answers 404 without saying whether P exists
    check: ProjectCheck | None = getattr(request.app.state, "project_check", None)
    if check is None:
        check = request.app.state.project_check = ProjectCheck()
    await check.require(request, project)
