"""The sweeps' job submitter (``sweeps.ports.JobSubmitter``) on the scheduler's own jobs."""

from __future__ import annotations

from typing import Any

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import NotFound
from cairn.services.scheduler.core import SchedulerCore
from cairn.services.scheduler.sweeps.ports import SubmittedJob

SWEEPS = "scheduler:sweeps"


class SchedulerJobs:
    def __init__(self, core: SchedulerCore) -> None:
        self.core = core

    async def submit(self, project: str, spec: dict[str, Any], *, idempotency_key: str,
                     tags: dict[str, str]) -> SubmittedJob:
        ctx = CommandContext(actor=SWEEPS, idempotency_key=idempotency_key)
        job_id = await self.core.submit(ctx, project, spec, tags=tags)
        job = self.core.rt.store.job(project, job_id)
        return {"job_id": job_id, "run_id": job["run_id"]}

    async def cancel(self, project: str, job_id: str, *, reason: str) -> None:
        try:
            await self.core.cancel(CommandContext(actor=SWEEPS), project, job_id)
        except NotFound:
            pass

    async def status(self, project: str, job_id: str) -> str:
        job = self.core.rt.store.job_by_id(job_id)
        if job is None or job["project"] != project:
            raise NotFound(f"job {job_id!r} does not exist in project {project!r}")
        return str(job["status"])
