"""The live side of replica sets: after any change to a set or the end of one of its replicas,
count the set's live jobs and start or stop jobs until there are ``replicas`` of them.

Replicas are ordinary jobs (``spec.replica_set`` names their set), so placement, leases, lost
agents, logs and tokens are the scheduler's usual ones. A replica that ends for any reason (exit 0
too: replicas are long-lived) is replaced by a new job, after the set's crash-loop back-off
(``replica_sets.after_replica_ended``). The back-off lives in memory: a restarted scheduler starts
again at 1 s, which is safe (the log has every job) and short.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cairn.kernel.commands import CommandContext
from cairn.kernel.envelope import Event
from cairn.kernel.errors import CairnError
from cairn.kernel.leader import Lease
from cairn.kernel.tasks import stop_tasks
from cairn.services.scheduler.core import SchedulerCore
from cairn.services.scheduler.replica_sets import Backoff, after_replica_ended, reconcile_plan
from cairn.services.scheduler.store import SchedulerStore

log = logging.getLogger(__name__)

ENDED = ("job.succeeded", "job.failed", "job.cancelled")
SAFETY_PASS_S = 10.0  # a full pass this often even without a wake-up, so a missed one converges
REPLICA_EXPERIMENT = "replica-sets"


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def replica_job_spec(replica_set: dict[str, Any]) -> dict[str, Any]:
    """The job spec of one replica: the set's command, env and resources, no code upload, no
    retries (a replica that ends is replaced by a new job, so each gets a fresh id)."""
    return {"command": replica_set["command"], "env": replica_set["env"], "resources": replica_set["resources"],
            "queue": replica_set["queue"], "name": f"{replica_set['name']}-replica", "experiment": REPLICA_EXPERIMENT,
            "max_retries": 0}


class ReplicaReconciler:
    def __init__(self, core: SchedulerCore, clock: Callable[[], float] = time.monotonic) -> None:
        self.core = core
        self.clock = clock
        self.backoff: dict[tuple[str, str], Backoff] = {}
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.lease: Lease | None = None

    @property
    def store(self) -> SchedulerStore:
        return self.core.store

    def start(self) -> None:
        """Follow the projection's batches (on every replica: the back-off is kept in memory, so a
        standby that takes over knows it); the loop itself runs on the lease holder (:meth:`lead`)."""
        self.core.on_events.append(self.on_events)

    async def lead(self, lease: Lease) -> None:
        """The reconcile loop while this replica holds the ``scheduler.replica_sets`` lease: its
        commands are fenced by it (cancelled with it when it is lost)."""
        self.lease = lease
        self.wake.set()
        await self._loop()

    async def stop(self) -> None:
        await stop_tasks(self._task)

    def on_events(self, events: list[Event]) -> None:
        """Called after each projected batch: a set changed, or one of its replicas ended."""
        for e in events:
            if e.aggregate == "replica_set":
                self.wake.set()
            elif e.type in ENDED:
                member = self.store.replica_of(e.aggregate_id)
                if member is None:
                    continue
                if e.type != "job.cancelled":  # stopped on purpose (scale down, delete, cancel): no crash
                    job = self.store.job_by_id(e.aggregate_id) or {}
                    ran = _seconds_between(job.get("started_at"), job.get("ended_at"))
                    self.backoff[member] = after_replica_ended(self.backoff.get(member, Backoff()),
                                                               ran_s=ran, now=self.clock())
                self.wake.set()

    def backoff_view(self, project: str, name: str) -> dict[str, Any]:
        """The set's back-off as GET shows it."""
        b = self.backoff.get((project, name), Backoff())
        return {"crashes": b.crashes, "delay_s": b.delay_s,
                "next_start_in_s": round(max(0.0, b.not_before - self.clock()), 3)}

    async def _loop(self) -> None:
        while True:
            now = self.clock()
            waits = [b.not_before - now for b in self.backoff.values() if b.not_before > now]
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=min([SAFETY_PASS_S, *waits]))
            except asyncio.TimeoutError:  # the same as TimeoutError from Python 3.11 on
                pass
            self.wake.clear()
            try:
                await self.reconcile_all()
            except Exception:  # noqa: BLE001 - the next wake-up tries again
                log.exception("replica set reconcile failed")
                await asyncio.sleep(0.5)
                self.wake.set()

    async def reconcile_all(self) -> None:
        for replica_set in self.store.replica_sets_to_reconcile():
            try:
                await self.reconcile_set(replica_set)
            except CairnError as err:  # e.g. the registry is down: the next pass retries
                log.warning("replica_set=%s/%s reconcile_failed=%s", replica_set["project"], replica_set["name"],
                            err.message)

    async def reconcile_set(self, replica_set: dict[str, Any]) -> None:
        project, name = replica_set["project"], replica_set["name"]
        ctx = CommandContext(actor=replica_set["updated_by"], fence=self.lease)
        live = [j for j in self.store.replica_members(project, name) if not j["cancel_requested"]]
        desired = 0 if replica_set["deleted"] else replica_set["replicas"]
        todo = reconcile_plan(desired, live)
        for job_id in todo.stop:
            log.info("replica_set=%s/%s stop job=%s", project, name, job_id)
            await self.core.cancel(ctx, project, job_id)
        if not todo.start or self.backoff.get((project, name), Backoff()).not_before > self.clock():
            return
        spec = replica_job_spec(replica_set)
        for _ in range(todo.start):
            job_id = await self.core.submit(ctx, project, spec, tags={"cairn.replica_set": name}, replica_set=name)
            log.info("replica_set=%s/%s start job=%s", project, name, job_id)
