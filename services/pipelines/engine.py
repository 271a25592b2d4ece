"""The engine: the hands of ``domain.next_actions``. A background task (the shape of the monitor's
``ActionTaker``) that, whenever the projection moved and every ``pipelines_tick_s`` (for bake
timers), walks the runs in progress and, for each, appends what ``next_actions`` says, submits
the job of each running job step, records the end of each finished job, and carries out the
special steps (``special_steps.py``).

Why it survives a restart: every event it appends carries an idempotency key made of (run, step,
attempt, what), and every call to another service one made the same way, so a restarted engine
that repeats work appends nothing twice and submits no job twice (the scheduler answers a
repeated key with the first job). A decision is taken again on the state the projection holds at
append time, so a report that went stale meanwhile (a cancel, a repeated pass) is dropped.
An error in one run is logged and tried again later; it never stops the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import Conflict
from cairn.kernel.ids import new_id
from cairn.kernel.leader import Lease, run_singleton
from cairn.kernel.service import ServiceRuntime
from cairn.pipelines.spec import Pipeline, Step
from cairn.protocol import EVENT_SUBJECT_PREFIX
from cairn.services.pipelines import domain
from cairn.services.pipelines.clients import Clients, Refused, Unreachable
from cairn.services.pipelines.special_steps import SpecialSteps
from cairn.services.pipelines.store import pipeline_of

log = logging.getLogger(__name__)
ACTOR = "service:pipelines"
POLL_S = 0.1  # the shortest wait between passes when the clock, not the projection, wakes the task
RESUBMIT_S = 10.0  # a submitted job the facts do not show yet is submitted again (same key) after this
# the fields of a code snapshot's record (cairn.sdk.code_snapshot), the only ones the job's run takes
JOB_CODE_FIELDS = ("archive_digest", "archive_bytes", "files", "commit", "branch", "remote", "dirty", "diff",
                   "diff_truncated", "untracked")


def job_code(code: dict[str, Any]) -> dict[str, Any]:
    """A run's code record as a job's ``code``. Why: a push trigger's record also holds
    ``tree_digest`` (the cache key's part) and ``repo``, which the job's run record (the registry's
    ``CodeRecord``) refuses as unknown fields; the repository's name goes in as its ``remote``."""
    out = {name: code[name] for name in JOB_CODE_FIELDS if code.get(name) is not None}
    if "remote" not in out and code.get("repo"):
        out["remote"] = str(code["repo"])
    return out


def step_key(run_id: str, step: str | None, attempt: int, what: str) -> str:
    """The idempotency key of one thing the engine does for a step's attempt."""
    return f"pipeline:{run_id}:{step or '-'}:{attempt}:{what}"


class Engine:
    """Carries runs forward; ``clock`` gives wall time in seconds (tests may replace it)."""

    def __init__(self, runtime: ServiceRuntime, clients: Clients, *, clock: Callable[[], float] | None = None,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        self.runtime, self.clients = runtime, clients
        self.clock = clock or time.time
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.special = SpecialSteps(self)
        self.submitted: dict[str, float] = {}  # job key -> when this process last submitted it
        self.failures: dict[tuple[str, str], tuple[int, float]] = {}  # run -> (failures, next try at)
        self.submitted_cancels: set[str] = set()  # scheduler job ids this process asked to cancel
        self.last_error: str | None = None
        self.lease: Lease | None = None  # the pipelines.engine lease while this replica leads

    @property
    def store(self) -> Any:
        return self.runtime.store

    async def lead(self, lease: Lease) -> None:
        """The loop on the replica holding the ``pipelines.engine`` lease (cancelled when it is
        lost): one engine submits each step's job and decides each gate, its appends fenced."""
        self.lease = lease
        await self.run()

    # --- the loop ------------------------------------------------------------------------------

    async def caught_up(self) -> None:
        """Wait until the projection holds every pipeline run and job event in the log, so that a
        restarted engine sees the jobs it submitted before it was killed."""
        while True:
            try:
                target = max([await self.runtime.log.last_subject_sequence(f"{EVENT_SUBJECT_PREFIX}.*.{aggregate}.*")
                              for aggregate in ("pipeline_run", "job")])
                await self.runtime.runner.wait_for(target)
                return
            except Exception as err:  # noqa: BLE001 - the log is not reachable yet: wait for it
                self.last_error = f"catching up with the log: {err!r}"
                await asyncio.sleep(self.backoff_s)

    async def run(self) -> None:
        await self.caught_up()
        tick = float(getattr(self.runtime.settings, "pipelines_tick_s", 1.0) or 1.0)
        loop = asyncio.get_running_loop()
        seen, next_tick = -1, 0.0
        while True:
            applied = self.runtime.runner.applied
            if applied != seen or loop.time() >= next_tick:
                seen, next_tick = applied, loop.time() + tick
                try:
                    await self.pass_once()
                except Exception as err:  # noqa: BLE001 - the task must outlive one bad pass
                    self.last_error = repr(err)
                    log.exception("pipelines: an engine pass failed")
            await self.runtime.runner.wait_past(seen, min(tick, max(POLL_S, next_tick - loop.time())))

    async def pass_once(self) -> None:
        """One pass over every run in progress, oldest first."""
        now = asyncio.get_running_loop().time()
        active = await asyncio.to_thread(self.store.active_runs)
        live = set(active)
        self.failures = {k: v for k, v in self.failures.items() if k in live}
        for project, run_id in active:
            failures, at = self.failures.get((project, run_id), (0, 0.0))
            if at > now:
                continue
            try:
                await self.advance(project, run_id)
            except Exception as err:  # noqa: BLE001 - one run's trouble never blocks the others
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** failures)
                self.failures[(project, run_id)] = (failures + 1, now + delay)
                self.last_error = f"{project}/{run_id}: {err!r}"
                log.warning("pipelines: run %s/%s: %r (again in %.1f s)", project, run_id, err, delay)
                continue
            self.failures.pop((project, run_id), None)
        if not self.failures:
            self.last_error = None

    def pipeline(self, state: dict[str, Any]) -> Pipeline:
        return pipeline_of(state)  # cached by definition in the store module

    def state(self, project: str, run_id: str) -> dict[str, Any] | None:
        return self.store.run_state(project, run_id)[1]

    # --- one run -------------------------------------------------------------------------------

    async def advance(self, project: str, run_id: str) -> None:
        state = self.state(project, run_id)
        if state is None or state["outcome"] is not None:
            return
        pipeline = self.pipeline(state)
        if not state["cancel_requested"] and self.queued(project, state):
            return
        for _ in range(len(pipeline.steps) * 3 + 2):  # each round settles at least one step
            actions = domain.next_actions(state, pipeline, self.store.cache(project, pipeline.name))
            acted = False
            for action in actions:
                acted = await self.take(project, run_id, pipeline, state, action) or acted
            state = self.state(project, run_id)
            if not acted or state is None or state["outcome"] is not None:
                break
        if state is None or state["outcome"] is not None:
            return
        for sid in pipeline.order:
            current = state["steps"][sid]
            if current["state"] != "running":
                continue
            step = pipeline.step(sid)
            if step.kind == "job":
                await self.watch_job(project, state, step, current)
            else:  # running special steps are let finish, cancel or not
                await self.special.carry_out(project, state, pipeline, step, current)

    def queued(self, project: str, state: dict[str, Any]) -> bool:
        """Queue policy: no step starts while an older run it queued behind is in progress."""
        behind = state["trigger"].get("queued_behind") or []
        if not behind:
            return False
        in_progress = set(self.store.in_progress(project, state["name"]))
        return any(run in in_progress for run in behind)

    async def take(self, project: str, run_id: str, pipeline: Pipeline, state: dict[str, Any],
                   action: domain.Action) -> bool:
        """Carry out one action; True when it appended something."""
        if action.kind == "cancel_job":
            await self.cancel_job(project, state, action)
            return False
        if action.event is None:
            return False
        kind, data = action.event
        attempt = int(data.get("attempt", 0) or 0)

        def again(s: domain.State) -> domain.Decision:  # decided again on the state at append time
            for fresh in domain.next_actions(s, pipeline, self.store.cache(project, pipeline.name)):
                if fresh.kind == action.kind and fresh.step == action.step and fresh.event is not None \
                        and fresh.event[0] == kind and fresh.event[1].get("attempt") == data.get("attempt"):
                    return fresh.event
            return None

        return await self.append(project, run_id, step_key(run_id, action.step, attempt, kind), again)

    async def append(self, project: str, run_id: str, key: str, decide: Callable[[domain.State], domain.Decision]
                     ) -> bool:
        ctx = CommandContext(actor=ACTOR, idempotency_key=key, correlation_id=new_id(), fence=self.lease)
        try:
            outcome = await self.runtime.commands.execute(ctx, project=project, aggregate="pipeline_run",
                                                          aggregate_id=run_id, decide=decide)
        except Conflict as err:  # the state moved on (a stale report): nothing to do
            log.info("pipelines: %s/%s: %s dropped: %s", project, run_id, key, err)
            return False
        return outcome.type != "noop" and not outcome.duplicate

    # --- job steps -----------------------------------------------------------------------------

    def job_spec(self, project: str, state: dict[str, Any], step: Step, key: str, attempt: int) -> dict[str, Any]:
        """The job of a step's attempt: the contract of docs/pipelines.md "The engine"."""
        inputs: dict[str, Any] = {}
        datasets: list[str] = []
        for name, ref in step.inputs.items():
            if ref.kind == "artifact":
                producer = state["steps"][ref.step]
                inputs[name] = {"ref": str(ref), "digest": producer["outputs"].get(ref.name),
                                "run_id": self.special.step_run(project, state, ref.step), "name": ref.name}
            else:
                digest = state["inputs"][str(ref)]
                inputs[name] = {"ref": str(ref), "digest": digest}
                if ref.kind == "dataset":
                    datasets.append(f"{ref.name}@v{self.dataset_version(project, ref.name, ref.version, digest)}")
        r = step.resources
        env = {**step.env, "CAIRN_PIPELINE": state["name"], "CAIRN_PIPELINE_RUN": state["run_id"],
               "CAIRN_PIPELINE_STEP": step.id, "CAIRN_PIPELINE_ATTEMPT": str(attempt), "CAIRN_PIPELINE_JOB": key,
               "CAIRN_PIPELINE_PARAMS": json.dumps(state["params"], sort_keys=True),
               "CAIRN_PIPELINE_INPUTS": json.dumps(inputs, sort_keys=True)}
        spec: dict[str, Any] = {
            "command": list(step.command) if isinstance(step.command, tuple) else step.command,
            "params": dict(step.params),
            "resources": {"cpus": r.cpus, "memory_mib": r.memory_mib, "gpus": r.gpus, "gpu_type": r.gpu_type},
            "queue": step.queue, "timeout": step.timeout_s, "max_retries": 0, "datasets": datasets,
            "experiment": state["name"], "name": f"{state['name']}-{step.id}", "env": env,
            "run_tags": {"cairn.pipeline": state["name"], "cairn.pipeline_run": state["run_id"],
                         "cairn.pipeline_step": step.id, "cairn.pipeline_job": key}}
        code = (state.get("code") or None) if isinstance(state.get("code"), dict) else None
        if code and code.get("archive_digest"):
            spec["code"] = job_code(code)
        return spec

    def dataset_version(self, project: str, name: str, version: int | None, digest: str) -> int:
        """The version the run resolved ``dataset:NAME`` to when it started (the one whose digest
        is in its cache keys), not a newer one pushed since."""
        if version is not None:
            return version
        row = self.store.query_one("SELECT version FROM fact_dataset_versions WHERE project=? AND name=? AND "
                                   "manifest_digest=? ORDER BY version DESC LIMIT 1", (project, name, digest))
        return int(row[0]) if row else self.store.dataset_digest(project, name, None)[0]

    async def watch_job(self, project: str, state: dict[str, Any], step: Step, current: dict[str, Any]) -> None:
        key, attempt, run_id = current["job_id"], current["attempt"], state["run_id"]
        job = self.store.job_for_key(key)
        if job is None:
            if state["cancel_requested"] and key not in self.submitted:  # never submitted, and now never will be
                await self.append(project, run_id, step_key(run_id, step.id, attempt, "step.failed"),
                                  lambda s: domain.record_failure(s, step=step.id, attempt=attempt, reason="cancelled",
                                                                  message=state["cancel_reason"] or "run cancelled"))
                return
            loop_now = asyncio.get_running_loop().time()
            if loop_now - self.submitted.get(key, -RESUBMIT_S) < RESUBMIT_S:
                return  # submitted by this process; the facts have not shown it yet
            try:
                await self.clients.scheduler.submit(project, self.job_spec(project, state, step, key, attempt), key=key)
            except Refused as err:  # the scheduler will never take this spec: the attempt fails
                refusal = f"the scheduler refused the job: {err.message}"
                await self.append(project, run_id, step_key(run_id, step.id, attempt, "step.failed"),
                                  lambda s: domain.record_failure(s, step=step.id, attempt=attempt, reason="error",
                                                                  message=refusal))
                return
            self.submitted[key] = loop_now
            log.info("pipelines: %s/%s submitted %s", project, run_id, key)
            return
        if job["status"] == "succeeded":
            await self.job_succeeded(project, state, step, current, job)
        elif job["status"] in ("failed", "cancelled"):
            if job["status"] == "cancelled":
                reason = "cancelled"
            else:
                reason = job.get("reason") if job.get("reason") in domain.RETRYABLE else "error"
            message = job.get("message") or f"job {job['job_id']} {job['status']}"
            await self.append(project, run_id, step_key(run_id, step.id, attempt, "step.failed"),
                              lambda s: domain.record_failure(s, step=step.id, attempt=attempt, reason=reason,
                                                              message=message))
        if job["status"] in ("succeeded", "failed", "cancelled"):
            self.submitted.pop(key, None)

    async def job_succeeded(self, project: str, state: dict[str, Any], step: Step, current: dict[str, Any],
                            job: dict[str, Any]) -> None:
        """Outputs are the job run's artifacts by declared name; metrics the run's last values as
        the metrics service counts them (see :meth:`Metrics.last_values`)."""
        run_id, attempt, job_run = state["run_id"], current["attempt"], job["run_id"]
        artifacts = self.store.run_artifacts(job_run)
        missing = [name for name in step.outputs if name not in artifacts]
        if missing:
            logged = ", ".join(sorted(artifacts)) or "none"
            message = (f"step {step.id!r} declares output {missing[0]!r}, but its run {job_run} logged no artifact "
                       f"named {missing[0]!r} (artifacts logged: {logged})")
            await self.append(project, run_id, step_key(run_id, step.id, attempt, "step.failed"),
                              lambda s: domain.record_failure(s, step=step.id, attempt=attempt, reason="error",
                                                              message=message))
            return
        try:
            metrics = await self.clients.metrics.last_values(project, job_run)
        except Refused:
            metrics = {}
        except Unreachable:
            metrics = dict(self.store.run_metrics(job_run))  # the last summaries the log announced
        outputs = {name: artifacts[name] for name in step.outputs}
        await self.append(project, run_id, step_key(run_id, step.id, attempt, "step.succeeded"),
                          lambda s: domain.record_success(s, step=step.id, attempt=attempt, outputs=outputs,
                                                          metrics=_finite(metrics)))

    async def cancel_job(self, project: str, state: dict[str, Any], action: domain.Action) -> None:
        current = state["steps"][action.step]
        job = self.store.job_for_key(action.job_id)
        if job is None:
            return  # watch_job records the attempt as cancelled: it is never submitted now
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return  # its end is recorded by watch_job
        if job["job_id"] in self.submitted_cancels:
            return
        try:
            await self.clients.scheduler.cancel(project, job["job_id"])
        except Refused as err:
            log.warning("pipelines: cancelling job %s of %s refused: %s", job["job_id"], current, err)
        self.submitted_cancels.add(job["job_id"])


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metric values as JSON can carry them (NaN and infinities dropped: an event has no place for them)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
                and value not in (float("inf"), float("-inf")):
            out[key] = value
    return out


async def start_engine(app: FastAPI, runtime: ServiceRuntime) -> None:
    """The on_start hook: the engine as a background task, stopped with the service."""
    clients = Clients(runtime.settings, runtime.signer.internal)
    engine = Engine(runtime, clients)
    app.state.engine = engine

    async def stop() -> None:
        await clients.close()

    runtime.defer(stop)  # after the elector's stop (deferred next), which cancels the engine
    await run_singleton(runtime, "pipelines.engine", engine.lead)
