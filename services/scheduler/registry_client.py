"""The scheduler's calls to the registry, as the caller who submitted: create the job's run, start
it when the job starts, finish it when the job ends. Over NATS request/reply
(``cairn.cmd.registry.*``, see cairn.kernel.service_commands): three per job, so an HTTP
request's cost on both sides showed in the dispatch benchmark."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NATS

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import CairnError, InvalidInput, NotFound
from cairn.kernel.service_commands import CommandClient

# job outcome -> registry run status
RUN_STATUS = {"job.succeeded": "finished", "job.failed": "failed", "job.cancelled": "killed"}


class RegistryClient:
    """The registry's run commands the scheduler needs."""

    def __init__(self, nc: NATS) -> None:
        self.commands = CommandClient(nc, "registry")

    async def close(self) -> None:
        return None

    async def create_run(self, project: str, *, experiment: str, name: str, params: dict[str, Any],
                         tags: dict[str, str], record: dict[str, Any] | None = None, actor: str,
                         key: str) -> dict[str, Any]:
        """Create the job's run (scheduled); ``record`` (code, command, seeds) is appended with it
        in one atomic batch: its reproducibility record, to which the job's own
        ``cairn.start_run`` then adds only the environment it ran in."""
        body: dict[str, Any] = {"experiment": experiment, "name": name, "params": params, "tags": tags,
                                "start": False}
        if record is not None:
            body["record"] = record
        ctx = CommandContext(actor=actor, idempotency_key=key)
        try:
            try:
                run: dict[str, Any] = await self.commands.call("create_run", {"project": project, "body": body}, ctx)
                return run
            except NotFound:
                if experiment == "default":
                    raise
            try:  # the job names an experiment the project does not have yet
                await self.commands.call("create_experiment",
                                         {"project": project, "body": {"name": experiment, "description": ""}},
                                         CommandContext(actor=actor, idempotency_key=f"{key}:experiment"))
            except CairnError as err:
                if err.status != 409:
                    raise
            run = await self.commands.call("create_run", {"project": project, "body": body}, ctx)
            return run
        except InvalidInput as err:
            raise InvalidInput(f"creating the job's run: {err.message}", details=err.details) from None

    async def start_run(self, project: str, run_id: str, *, actor: str) -> None:
        try:
            await self.commands.call("start_run", {"project": project, "run_id": run_id}, CommandContext(actor=actor))
        except CairnError as err:
            if err.status != 409:  # 409: it already started
                raise

    async def finish_run(self, project: str, run_id: str, status: str, message: str, *, actor: str) -> None:
        try:
            await self.commands.call("finish_run", {"project": project, "run_id": run_id,
                                                    "body": {"status": status, "message": message[:8000]}},
                                     CommandContext(actor=actor))
        except CairnError as err:
            if err.status != 409:  # 409: it already ended
                raise
