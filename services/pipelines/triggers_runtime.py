"""The pipelines service's background triggers: event triggers, the schedule clock, and commit
statuses back to the code host (``start_triggers``, an ``on_start`` hook after the engine's).

One task, shaped like the monitor's ActionTaker: it waits for the projection to catch up, then
works whenever the projection moves and on every clock tick; a failed item is logged and tried
again with backoff; the task never dies on one bad pass. Everything it starts carries an
idempotency key the kernel remembers, so a restarted service repeating a pass starts nothing twice:

- **event triggers**: the projection records an owed row per (event, definition) when an event of
  record matches a definition's ``on.event`` (definitions.py); the run is started with
  ``trigger.event.<event id>.<name>`` and trigger ``{kind: event, event_id, type, subject}``.
- **schedules**: per definition and schedule, the last firing is the newest remembered key
  ``trigger.schedule.<name>.<schedule id>.<epoch s>`` (or the registration time); when the next
  firing after it is due, the run is started for the *latest* due firing only (a service that was
  down over several slots fires once, not once per missed slot), trigger ``{kind: schedule, cron,
  tz, at}``. Time comes from ``clock`` so tests move it.
- **statuses**: for runs of definitions with a status target, ``pending`` once the run started and
  its final state once it finished, through ``code_host.StatusReporter`` (egress-guarded). What was
  sent is remembered in memory: after a restart the current state of recent runs is sent once
  more, which the code host takes as the same status again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import CairnError
from cairn.kernel.ids import new_id
from cairn.kernel.leader import Lease, run_singleton
from cairn.kernel.service import ServiceRuntime
from cairn.pipelines.cron import CronSchedule
from cairn.services.pipelines.code_host import StatusReporter, commit_status
from cairn.services.pipelines.definitions import (
    ACTOR,
    DefinitionsReader,
    event_trigger_key,
    pipeline_of,
)
from cairn.services.pipelines.hooks import trigger_parts
from cairn.services.pipelines.sealed import key_of, status_token

log = logging.getLogger(__name__)
POLL_S = 0.1  # the shortest wait between clock-driven passes; an applied event wakes the task at once
MAX_CATCH_UP_SLOTS = 1_000_000  # firings walked past after a downtime (a minutely cron: ~2 years)
RECENT_RUNS = 20  # runs per definition whose status is kept in step


def schedule_id(cron: str, tz: str) -> str:
    """Names a schedule in its keys by what it is, so reordering ``on.schedule`` changes nothing."""
    return hashlib.sha256(f"{cron}|{tz}".encode()).hexdigest()[:12]


def due_firing(schedule: CronSchedule, last: datetime, now: datetime) -> datetime | None:
    """The latest firing after ``last`` and at or before ``now``, or None when none is due."""
    due = None
    at = schedule.next_after(last)
    for _ in range(MAX_CATCH_UP_SLOTS):
        if at > now:
            break
        due, at = at, schedule.next_after(at)
    return due


class Triggers:
    def __init__(self, app: FastAPI, runtime: ServiceRuntime, *, clock: Callable[[], float] | None = None,
                 tick_s: float | None = None, backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        self.app, self.runtime = app, runtime
        self.settings, self.egress, _ = trigger_parts(app)
        self.clock = clock or self.settings.clock
        self.tick_s = tick_s if tick_s is not None else self.settings.pipelines_tick_s
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.failures: dict[str, tuple[int, float]] = {}  # key -> (failures, next try at in loop time)
        self.sent: dict[tuple[str, str], str] = {}  # (project, run) -> status state delivered
        self.deliveries: list[dict[str, Any]] = []  # the last 50 status calls, for health()
        self.last_error: str | None = None
        self.lease: Lease | None = None  # the pipelines.triggers lease while this replica leads

    async def lead(self, lease: Lease) -> None:
        """The loop on the replica holding the ``pipelines.triggers`` lease: one replica starts
        each cron/push/event run and posts each commit status (cancelled when the lease is lost)."""
        self.lease = lease
        await self.run()

    @property
    def store(self) -> Any:
        store = self.runtime.store
        assert isinstance(store, DefinitionsReader)
        return store

    async def run(self) -> None:
        await self._caught_up()
        seen, next_tick = -1, 0.0
        loop = asyncio.get_running_loop()
        while True:
            applied = self.runtime.runner.applied
            if applied != seen or loop.time() >= next_tick:
                seen, next_tick = applied, loop.time() + self.tick_s
                await self.one_pass()
            # wakes at once when an event is applied (an owed event trigger), else at the tick
            await self.runtime.runner.wait_past(seen, min(self.tick_s, max(POLL_S, next_tick - loop.time())))

    async def one_pass(self) -> None:
        for part in (self.start_event_triggers, self.start_schedules, self.send_statuses):
            try:
                await part()
            except Exception as err:  # noqa: BLE001 - the task must outlive one bad pass
                self.last_error = repr(err)
                log.exception("pipelines: trigger pass %s failed", part.__name__)

    async def _caught_up(self) -> None:
        while True:
            try:
                target = await self.runtime.log.last_subject_sequence("cairn.evt.>")
                await self.runtime.runner.wait_for(target)
                return
            except Exception as err:  # noqa: BLE001 - the log is not reachable yet: wait for it
                self.last_error = f"catching up with the event log: {err!r}"
                await asyncio.sleep(self.backoff_s)

    def _due(self, key: str) -> bool:
        return self.failures.get(key, (0, 0.0))[1] <= asyncio.get_running_loop().time()

    def _failed(self, key: str, err: Exception) -> None:
        failures, _ = self.failures.get(key, (0, 0.0))
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** failures)
        self.failures[key] = (failures + 1, asyncio.get_running_loop().time() + delay)
        self.last_error = f"{key}: {err!r}"
        log.warning("pipelines: %s failed (retry in %.1f s): %r", key, delay, err)

    async def _start(self, project: str, definition: dict[str, Any], key: str, trigger: dict[str, Any]) -> None:
        from cairn.services.pipelines.starting import start_pipeline_run  # Part A's

        ctx = CommandContext(actor=ACTOR, idempotency_key=key, correlation_id=new_id(), fence=self.lease)
        view = await start_pipeline_run(self.runtime, ctx, project=project, pipeline=pipeline_of(definition),
                                        params=definition["params"], trigger=trigger)
        log.info("pipelines: %s started %s/%s run %s", trigger["kind"], project, definition["name"],
                 view.get("id", view))

    async def start_event_triggers(self) -> None:
        for owed in self.store.owed_event_triggers():
            key = event_trigger_key(owed["event_id"], owed["name"])
            if not self._due(key):
                continue
            definition = self.store.definition(owed["project"], owed["name"])
            if definition is None:
                continue
            trigger = {"kind": "event", "event_id": owed["event_id"], "type": owed["event_type"],
                       "subject": owed["subject"]}
            try:
                await self._start(owed["project"], definition, key, trigger)
                self.failures.pop(key, None)
            except Exception as err:  # noqa: BLE001 - kept owed: tried again after the backoff
                self._failed(key, err)

    async def start_schedules(self) -> None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        for definition in self.store.scheduled_definitions():
            project, name = definition["project"], definition["name"]
            for spec in definition["triggers"].get("schedule", []):
                prefix = f"trigger.schedule.{name}.{schedule_id(spec['cron'], spec['tz'])}."
                fired = [int(k[len(prefix):]) for k in self.store.remembered_keys(project, prefix)
                         if k[len(prefix):].isdigit()]
                last = (datetime.fromtimestamp(max(fired), UTC) if fired
                        else datetime.fromisoformat(definition["registered_at"].replace("Z", "+00:00")))
                at = due_firing(CronSchedule.parse(spec["cron"], spec["tz"]), last, now)
                if at is None:
                    continue
                key = f"{prefix}{int(at.timestamp()):012d}"
                if not self._due(key):
                    continue
                trigger = {"kind": "schedule", "cron": spec["cron"], "tz": spec["tz"],
                           "at": at.astimezone(UTC).isoformat()}
                try:
                    await self._start(project, definition, key, trigger)
                    self.failures.pop(key, None)
                except Exception as err:  # noqa: BLE001 - tried again on a later tick
                    self._failed(key, err)

    async def send_statuses(self) -> None:
        base = self.settings.pipelines_public_url.rstrip("/")
        for definition in self.store.status_definitions():
            target = definition["status"]
            project = definition["project"]
            for summary in self.store.runs(project, pipeline=definition["name"], limit=RECENT_RUNS):
                _, state = self.store.run_state(project, summary["id"])
                where = (state or {}).get("status_target")
                if not where:
                    continue
                url = f"{base}/projects/{project}/pipelines/runs/{summary['id']}" if base else ""
                body = commit_status(state, run_url=url)
                key = (project, summary["id"])
                if self.sent.get(key) == body["state"] or not self._due(f"status.{project}.{summary['id']}"):
                    continue
                token = status_token(await key_of(self.app, self.runtime), definition)  # sealed.py
                reporter = StatusReporter(target["url"], token, self.egress, attempts=1)
                delivery = await reporter.report(where["repo"], where["sha"], body)
                self.deliveries = [*self.deliveries[-49:], {"project": project, "run": summary["id"],
                                                            "state": body["state"], "delivered": delivery.delivered,
                                                            "status": delivery.status, "message": delivery.message}]
                if delivery.delivered or (delivery.status is not None and 400 <= delivery.status < 500):
                    self.sent[key] = body["state"]  # a 4xx is not repeated (the code host said no)
                    self.failures.pop(f"status.{project}.{summary['id']}", None)
                else:
                    self._failed(f"status.{project}.{summary['id']}", CairnError(delivery.message))

    def health(self) -> dict[str, Any]:
        """For the service's /healthz once app.py passes it (not wired yet: app.py is part A's)."""
        return {"triggers_error": self.last_error, "triggers_failing": len(self.failures),
                "status_deliveries_failed": sum(1 for d in self.deliveries if not d["delivered"])}


async def start_triggers(app: FastAPI, runtime: ServiceRuntime) -> None:
    """Start the trigger task; its stop cancels it and closes the egress guard's client."""
    triggers = Triggers(app, runtime)
    app.state.triggers = triggers

    async def stop() -> None:
        await triggers.egress.close()

    runtime.defer(stop)  # after the elector's stop (deferred next), which cancels the loop
    await run_singleton(runtime, "pipelines.triggers", triggers.lead)
