"""The scheduler's live side: agent leases (heartbeats over plain NATS, not events of record),
the dispatcher (assignments pushed to ``cairn.sched.agent.<id>``), and agents' reports
(``cairn.sched.report``, request/reply), all turned into events through the command handler,
so every decision is appended with optimistic concurrency on the job's subject.

With several scheduler replicas, the dispatcher, the agent-lease checks and what heartbeats
trigger (re-sends, stale-attempt stops, re-registration) are one singleton, ``scheduler.dispatcher``
(cairn.kernel.leader): only the replica holding its lease runs them, and each of its appends is
fenced (checked against the lease, and tagged with its term). Safe on every replica: agents'
reports (a queue group: one replica answers each, deciding with optimistic concurrency on the job),
submit and cancel (commands from the API), and hearing heartbeats (every replica keeps the agents'
leases fresh, so a standby that takes over knows who is alive)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from typing import Any

from nats.aio.msg import Msg

from cairn.kernel import jobtoken
from cairn.kernel.commands import CommandContext, Outcome
from cairn.kernel.envelope import Event, subject_for
from cairn.kernel.errors import CairnError, NotFound, Unavailable
from cairn.kernel.ids import new_id
from cairn.kernel.leader import Elector, Lease, run_singleton
from cairn.kernel.service import ServiceRuntime
from cairn.kernel.tasks import stop_tasks
from cairn.protocol import HEARTBEAT_SUBJECT, REPORT_SUBJECT, agent_subject  # noqa: F401
from cairn.services.scheduler import domain, freshness
from cairn.services.scheduler.dispatch import AgentSlot, free_slots, plan, replica_holders
from cairn.services.scheduler.registry_client import RUN_STATUS, RegistryClient
from cairn.services.scheduler.replica_sets import replica_env
from cairn.services.scheduler.spec import parse_spec
from cairn.services.scheduler.store import SchedulerStore
from cairn.services.scheduler.waiting import waiting_reason

log = logging.getLogger(__name__)

WAKE_TYPES = {"job.submitted", "job.retried", "job.succeeded", "job.failed", "job.cancelled", "agent.registered",
              "job.lost"}
SCHEDULER = CommandContext(actor="scheduler")
DISPATCHER = "scheduler.dispatcher"  # the singleton's lease (cairn-leases key)


class SchedulerCore:
    def __init__(self, rt: ServiceRuntime, registry: RegistryClient, *, lease_s: float,
                 rng: random.Random | None = None) -> None:
        self.rt = rt
        self.registry = registry
        self.lease_s = lease_s
        self.rng = rng or random.Random()
        self.leases: dict[str, float] = {}
        self.sent_at: dict[tuple[str, int], float] = {}  # when an assignment was last pushed
        self.wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Any] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self.on_job_final: list[Any] = []  # async callbacks (job_id, status, message), e.g. sweeps
        self.on_events: list[Any] = []  # sync callbacks (events) after each projected batch, e.g. replica sets
        self.job_key: bytes | None = None  # signs each assignment's job token (cairn.kernel.jobtoken)
        self.lease: Lease | None = None  # the dispatcher's lease, once this replica has led
        self.elector: Elector | None = None

    @property
    def store(self) -> SchedulerStore:
        assert isinstance(self.rt.store, SchedulerStore)
        return self.rt.store

    @property
    def nc(self) -> Any:
        return self.rt.log.nc

    async def start(self) -> None:
        self.job_key = await jobtoken.shared_key(self.rt.log.js, replicas=self.rt.log.replicas)
        await self.rt.runner.wait_for(await self.rt.log.last_sequence(), timeout=300)  # decide on today's state
        now = time.monotonic()
        for agent in self.store.agents():  # a restarted scheduler gives every agent a fresh lease
            self.leases[agent["id"]] = now + self.lease_s
        self._subs.append(await self.nc.subscribe(REPORT_SUBJECT, queue="scheduler", cb=self._on_report))
        self._subs.append(await self.nc.subscribe(HEARTBEAT_SUBJECT, cb=self._on_heartbeat))
        self.rt.runner.after_batch = self._after_batch
        self.elector = await run_singleton(self.rt, DISPATCHER, self._lead)

    @property
    def leading(self) -> bool:
        """Whether this replica runs the dispatcher now (holds its lease by its own clock)."""
        return self.lease is not None and self.lease.holds()

    @property
    def as_leader(self) -> CommandContext:
        """The context of the dispatcher's own commands: fenced by its lease."""
        return CommandContext(actor=SCHEDULER.actor, fence=self.lease)

    async def _lead(self, lease: Lease) -> None:
        """The dispatcher's work while this replica holds its lease (cancelled when it is lost):
        catch up with the log, give agents not heard yet a fresh lease, settle what a dead
        leader left (re-sends, lost attempts), then dispatch and check agents' leases."""
        self.lease = lease
        await self.rt.runner.wait_for(await self.rt.log.last_sequence(), timeout=300)
        now = time.monotonic()
        for agent in self.store.agents():
            self.leases.setdefault(agent["id"], now + self.lease_s)
        if not await lease.confirm():
            return
        await self.reconcile()
        self.wake.set()
        await asyncio.gather(self._dispatch_loop(lease), self._lease_loop(lease))

    async def stop(self) -> None:
        await stop_tasks(*self._tasks)
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be closing
                pass

    async def _after_batch(self, events: list[Event]) -> None:
        for e in events:
            if e.type in ("job.succeeded", "job.failed", "job.cancelled", "job.lost"):
                self.sent_at.pop((e.aggregate_id, int(e.data.get("attempt") or 0)), None)
            elif e.type == "job.retried":
                self.sent_at.pop((e.aggregate_id, int(e.data.get("previous_attempt") or 0)), None)
        if any(e.type in WAKE_TYPES for e in events):
            self.wake.set()
        for observer in self.on_events:
            observer(events)
        for e in events:  # in tasks: a callback may append and wait for this very projection
            if e.type in ("job.succeeded", "job.failed", "job.cancelled"):
                for callback in self.on_job_final:
                    task = asyncio.create_task(callback(e.aggregate_id, e.type.split(".", 1)[1],
                                                        e.data.get("message") or None))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)

    async def execute(self, ctx: CommandContext, project: str, aggregate: str, aggregate_id: str,
                      decide: Any) -> Outcome:
        return await self.rt.commands.execute(ctx, project=project, aggregate=aggregate,
                                              aggregate_id=aggregate_id, decide=decide)

    def job_state(self, project: str, job_id: str) -> dict[str, Any] | None:
        row = self.store.query_one("SELECT state FROM aggregates WHERE subject=?",
                                      (subject_for(project, "job", job_id),))
        return json.loads(row["state"]) if row else None

    async def submit(self, ctx: CommandContext, project: str, spec: dict[str, Any], *,
                     tags: dict[str, str] | None = None, replica_set: str | None = None) -> str:
        """Create the job's run (scheduled, with its code, command and seed recorded in the same
        event), then append ``job.submitted``; returns the job id. The
        idempotency key (if any) makes a repeated submit return the first job and run.
        ``replica_set`` marks the job as a replica of that set (``spec.replica_set``: only the
        scheduler sets it, never a submitted spec)."""
        normalised = parse_spec(spec)
        if replica_set is not None:
            normalised["replica_set"] = replica_set
        job_id = new_id()
        key = ctx.idempotency_key or new_id()
        run_tags = {**(tags or {}), "cairn.job_id": job_id, "cairn.queue": normalised["queue"]}
        if normalised["seed"] is not None:
            run_tags["cairn.seed"] = str(normalised["seed"])
        record: dict[str, Any] = {"command": normalised["command"]}
        if normalised["code"] is not None:
            record["code"] = normalised["code"]
        if normalised["seed"] is not None:
            record["seeds"] = {"seed": normalised["seed"]}
        run = await self.registry.create_run(
            project, experiment=normalised["experiment"], name=normalised["name"] or f"job-{job_id[-8:]}",
            params=normalised["params"], tags=run_tags, record=record, actor=ctx.actor, key=f"job-run:{key}")
        outcome = await self.execute(ctx, project, "job", job_id, lambda s: domain.submit_job(
            s, job_id=job_id, run_id=run["id"], project=project, spec=normalised))
        return outcome.aggregate_id

    # --- publishing to agents ------------------------------------------------------------------

    async def send(self, agent_id: str, message: dict[str, Any]) -> None:
        await self.nc.publish(agent_subject(agent_id), json.dumps(message).encode())

    async def send_assignment(self, job: dict[str, Any], only_agent: str | None = None) -> None:
        spec = job["spec"] if isinstance(job["spec"], dict) else json.loads(job["spec"])
        self.sent_at[(job["id"], job["attempt"])] = time.monotonic()
        assert self.job_key is not None, "start() loads the job-token key before anything is dispatched"
        token = jobtoken.mint(self.job_key, jobtoken.JobClaims(  # the job's own CAIRN_TOKEN (editor in its project)
            user=job["submitted_by"].split(":")[0], project=job["project"], job_id=job["id"],
            run_id=job["run_id"], attempt=job["attempt"],
            expires_at=int(time.time() + jobtoken.lifetime_s(spec.get("timeout")))))
        for rank in job["ranks"]:
            if only_agent is not None and rank["agent_id"] != only_agent:
                continue
            if spec.get("replica_set"):  # who the replica is and where it is reached: known only now
                spec = {**spec, "env": replica_env(spec.get("env") or {}, set_name=spec["replica_set"],
                                                   job_id=job["id"], host=rank["host"])}
            await self.send(rank["agent_id"], {
                "type": "assign", "job_id": job["id"], "project": job["project"], "run_id": job["run_id"],
                "attempt": job["attempt"], "rank": rank["rank"], "world_size": len(job["ranks"]),
                "master_addr": job["master_addr"], "master_port": job["master_port"], "spec": spec,
                "token": token})

    async def send_stop(self, job_id: str, attempt: int, agent_ids: list[str], reason: str) -> None:
        for agent_id in agent_ids:
            await self.send(agent_id, {"type": "stop", "job_id": job_id, "attempt": attempt, "reason": reason})

    # --- dispatching ---------------------------------------------------------------------------

    def live_agents(self) -> set[str]:
        now = time.monotonic()
        return {agent_id for agent_id, deadline in self.leases.items() if deadline > now}

    def explain_waiting(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Set ``reason`` and ``unschedulable`` on the queued jobs among ``jobs`` (docs/scheduler.md
        "Why a job waits"): computed now from the registered agents, so it clears by itself."""
        queued = [j for j in jobs if j["status"] == "queued"]
        for job in jobs:
            job.setdefault("unschedulable", False)
        if not queued:
            return jobs
        agents, live = self.store.agents(), self.live_agents()
        free = free_slots(agents, self.store.active_jobs(), live)
        for job in queued:
            job["reason"], job["unschedulable"] = waiting_reason(job, agents, live, free)
        return jobs

    async def _dispatch_loop(self, lease: Lease) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                if not await lease.confirm():  # another replica leads: stop (the elector steps down)
                    return
                await self.dispatch_round()
            except Exception:  # noqa: BLE001 - the next wake-up tries again
                log.exception("dispatch round failed")
                await asyncio.sleep(0.5)
                self.wake.set()

    async def dispatch_round(self) -> None:
        store = self.store
        queued = store.queued_jobs()
        if not queued:
            return
        active = store.active_jobs()
        slots = free_slots(store.agents(), active, self.live_agents())
        decisions = plan(queued, slots, Counter(j["project"] for j in active), replica_holders(active))
        if decisions:
            await asyncio.gather(*(self.assign(job, chosen) for job, chosen in decisions))

    async def assign(self, job: dict[str, Any], chosen: list[AgentSlot]) -> None:
        ranks = [{"rank": i, "agent_id": s.agent_id, "host": s.host} for i, s in enumerate(chosen)]
        # below Linux's default ephemeral range (32768-60999): a port the kernel handed to some
        # connection or to a bind(0) on the master's host can never be the one chosen here
        port = self.rng.randrange(20000, 32768)
        try:
            outcome = await self.execute(self.as_leader, job["project"], "job", job["id"], lambda s: domain.assign_job(
                s, job_id=job["id"], attempt=job["attempt"], ranks=ranks, master_addr=chosen[0].host,
                master_port=port))
        except CairnError as err:
            log.warning("job=%s assign_failed=%s", job["id"], err.message)
            return
        if outcome.type == "job.assigned":
            full = self.store.job_by_id(job["id"])
            if full is not None:
                await self.send_assignment(full)

    # --- reports from agents ---------------------------------------------------------------------

    async def _on_report(self, msg: Msg) -> None:
        """NATS runs a subscription's callbacks one at a time: handle each report in its own task,
        so one report's registry call and append do not hold up the others."""
        task = asyncio.create_task(self._answer_report(msg))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _answer_report(self, msg: Msg) -> None:
        try:
            report = json.loads(msg.data)
            answer = await self.handle_report(report)
        except Unavailable as err:  # the event log or the registry, for a moment: the agent sends it again
            answer = {"ok": False, "code": err.code, "message": err.message, "retry": True}
        except CairnError as err:
            answer = {"ok": False, "code": err.code, "message": err.message}
        except Exception as err:  # noqa: BLE001 - the agent retries
            log.exception("report failed")
            answer = {"ok": False, "code": "internal", "message": repr(err), "retry": True}
        if msg.reply:
            await msg.respond(json.dumps(answer).encode())

    async def handle_report(self, report: dict[str, Any]) -> dict[str, Any]:
        if report["kind"] == "leaving":  # an agent shutting down: no new work; its attempts are lost
            agent_id = report["agent_id"]
            await self.execute(CommandContext(actor=f"agent:{agent_id}"), domain.SITE, "agent", agent_id,
                               lambda s: domain.lose_agent(s, agent_id=agent_id, message="the agent stopped"))
            self.leases.pop(agent_id, None)
            return {"ok": True}
        subject = subject_for(report["project"], "job", report["job_id"])
        decided_at = freshness.view_position(self.rt, subject)  # what _job_report decides on, at least
        try:
            return await self._job_report(report)
        except (domain.StaleReport, NotFound):
            # refused on this replica's view: only final once the view has every event on the job
            # (a lagging replica would refuse a current attempt; services/scheduler/freshness.py)
            if not await freshness.catch_up(self.rt, subject, decided_at):
                raise
        return await self._job_report(report)

    async def _job_report(self, report: dict[str, Any]) -> dict[str, Any]:
        """A started or exited report, decided on this replica's view of the job."""
        project, job_id = report["project"], report["job_id"]
        attempt, agent_id, rank = int(report["attempt"]), report["agent_id"], int(report["rank"])
        ctx = CommandContext(actor=f"agent:{agent_id}")
        state = self.job_state(project, job_id)
        if report["kind"] == "started":
            domain.start_job(state, job_id=job_id, attempt=attempt, agent_id=agent_id, rank=rank,
                             started_at=0.0)  # raises StaleReport before any side effect
            if state and state["status"] == "assigned":
                await self.registry.start_run(project, state["run_id"], actor=ctx.actor)
            await self.execute(ctx, project, "job", job_id, lambda s: domain.start_job(
                s, job_id=job_id, attempt=attempt, agent_id=agent_id, rank=rank,
                started_at=float(report["started_at"])))
            return {"ok": True}
        exit_code = report.get("exit_code")
        reason, message = report.get("reason", "exit"), str(report.get("message", ""))

        def decide(s: domain.State) -> Any:
            return domain.finish_rank(s, job_id=job_id, attempt=attempt, agent_id=agent_id, rank=rank,
                                      exit_code=exit_code, reason=reason, message=message)

        await self._finish_with(ctx, project, job_id, state, decide)
        return {"ok": True}

    async def _finish_with(self, ctx: CommandContext, project: str, job_id: str, state: domain.State,
                           decide: Any) -> Outcome:
        """Finish the job's run in the registry first when the decision ends the job (the registry
        call is idempotent), then append; stop the other ranks of a failed multi-node attempt."""
        first = decide(state)
        if first is not None and first[0] in RUN_STATUS and state is not None:
            await self.registry.finish_run(project, state["run_id"], RUN_STATUS[first[0]],
                                           first[1].get("message", ""), actor=ctx.actor)
        outcome = await self.execute(ctx, project, "job", job_id, decide)
        if state is not None and outcome.type in ("job.retried", "job.failed", "job.cancelled") and state["ranks"]:
            await self.send_stop(job_id, state["attempt"], [r["agent_id"] for r in state["ranks"]],
                                 outcome.type.split(".", 1)[1])
        return outcome

    # --- cancellation ----------------------------------------------------------------------------

    async def cancel(self, ctx: CommandContext, project: str, job_id: str) -> None:
        state = self.job_state(project, job_id)
        await self._finish_with(ctx, project, job_id, state, lambda s: domain.cancel_job(s, job_id=job_id))
        state = self.job_state(project, job_id)
        if state and state.get("cancel_requested") and state["status"] in domain.ACTIVE:
            await self.send_stop(job_id, state["attempt"], [r["agent_id"] for r in state["ranks"]], "cancel")

    # --- leases ------------------------------------------------------------------------------------

    def renew(self, agent_id: str) -> None:
        self.leases[agent_id] = time.monotonic() + self.lease_s
        self.wake.set()

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = json.loads(msg.data)
            agent_id = beat["agent_id"]
        except (ValueError, KeyError, TypeError):
            return
        agent = self.store.agent(agent_id)
        if agent is None or agent["status"] != "active":
            if self.leading:  # a standby's read model may not show a new agent yet
                await self.send(agent_id, {"type": "reregister"})
            return
        was_live = self.leases.get(agent_id, 0.0) > time.monotonic()
        self.leases[agent_id] = time.monotonic() + self.lease_s
        if not was_live:
            self.wake.set()
        if not self.leading:  # re-sends and stops are the dispatcher's
            return
        await self.resend_missing(agent_id, beat.get("running", []))
        for item in beat.get("running", []):  # fence: stop whatever is no longer current
            if not self._runs_current(item, agent_id):
                task = asyncio.create_task(self._stop_stale(item, agent_id))  # asks the log: not in
                self._inflight.add(task)  # the heartbeat's callback, which keeps agents' leases fresh
                task.add_done_callback(self._inflight.discard)

    def _runs_current(self, item: dict[str, Any], agent_id: str) -> bool:
        """Whether an attempt an agent says it runs is the job's current one, in this view."""
        state = self.job_state(item["project"], item["job_id"])
        return state is not None and state["attempt"] == item["attempt"] and state["status"] in domain.ACTIVE \
            and any(r["agent_id"] == agent_id and r["rank"] == item["rank"] for r in state["ranks"])

    async def _stop_stale(self, item: dict[str, Any], agent_id: str) -> None:
        """Stop an attempt that is not current, once this view is known to hold every event on the
        job (a lagging view would stop a current attempt); otherwise the next heartbeat asks again."""
        try:
            if not await freshness.is_current(self.rt, subject_for(item["project"], "job", item["job_id"])):
                return
        except Unavailable:
            return
        if self.leading and not self._runs_current(item, agent_id):
            await self.send_stop(item["job_id"], item["attempt"], [agent_id], "stale attempt")

    async def resend_missing(self, agent_id: str, running: list[dict[str, Any]], min_age_s: float = 2.0) -> None:
        """Push again an assignment the agent does not run (it may have missed the message, e.g.
        while it subscribed) and whose rank has not exited; the agent ignores one it has seen."""
        have = {(r["job_id"], r["attempt"]) for r in running}
        stale = time.monotonic() - min_age_s
        for job in self.store.active_jobs():
            key = (job["id"], job["attempt"])
            mine = [r["rank"] for r in job["ranks"] if r["agent_id"] == agent_id]
            if not mine or key in have or self.sent_at.get(key, 0.0) > stale:
                continue
            state = self.job_state(job["project"], job["id"]) or {}
            if all(rank in state.get("ranks_done", []) for rank in mine):
                continue
            if state.get("cancel_requested"):  # cancelled before this agent ever ran it: done
                await self._finish_with(self.as_leader, job["project"], job["id"], state, lambda s, j=job, r=mine[0]:
                                        domain.finish_rank(s, job_id=j["id"], attempt=j["attempt"], agent_id=agent_id,
                                                           rank=r, exit_code=None, reason="exit",
                                                           message="cancelled before it started"))
                continue
            full = self.store.job_by_id(job["id"])
            if full is not None:
                await self.send_assignment(full, only_agent=agent_id)

    async def _lease_loop(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.lease_s / 4))
            try:
                # a leader paused past its lease (SIGSTOP) finds every agent's lease expired when it
                # resumes: it must not call them lost, so it checks its own first
                if not await lease.confirm():
                    return
                await self.expire_leases()
                await self.reconcile_lost()
            except Exception:  # noqa: BLE001 - retried on the next tick
                log.exception("lease check failed")

    async def expire_leases(self) -> None:
        """Mark agents silent for their lease lost, then every active attempt on an agent that is
        not active (also those a crash left behind) lost. Each step is idempotent, so a failure
        half-way is finished on the next tick."""
        now = time.monotonic()
        for agent_id, deadline in list(self.leases.items()):
            if deadline > now:
                continue
            await self.execute(self.as_leader, domain.SITE, "agent", agent_id, lambda s, a=agent_id: domain.lose_agent(
                s, agent_id=a, message=f"no heartbeat for {self.lease_s:g}s"))
            del self.leases[agent_id]
        active_agents = {a["id"] for a in self.store.agents()}
        for job in self.store.active_jobs():
            gone = [r["agent_id"] for r in job["ranks"] if r["agent_id"] not in active_agents]
            if gone:
                await self.execute(self.as_leader, job["project"], "job", job["id"], lambda s, j=job, a=gone[0]:
                                   domain.lose_attempt(s, job_id=j["id"], attempt=j["attempt"], agent_id=a))

    async def reconcile_lost(self) -> None:
        for job in self.store.lost_jobs():
            state = self.job_state(job["project"], job["id"])
            await self._finish_with(self.as_leader, job["project"], job["id"], state,
                                    lambda s, j=job: domain.requeue_lost(s, job_id=j["id"]))

    async def reconcile(self) -> None:
        """After a (re)start: resend assignments and cancellations agents may have missed, and
        settle lost attempts. Agents ignore an assignment they already run."""
        for job in self.store.active_jobs():
            full = self.store.job_by_id(job["id"])
            if full is None:
                continue
            if job["cancel_requested"]:
                await self.send_stop(job["id"], job["attempt"], [r["agent_id"] for r in job["ranks"]], "cancel")
            elif job["status"] == "assigned":
                await self.send_assignment(full)
        await self.reconcile_lost()
