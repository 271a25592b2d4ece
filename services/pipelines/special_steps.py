"""The special steps, carried out by the engine while they are ``running``: gate, data_check,
register, promote, deploy (approvals need nothing: the API grants them).

Each call to another service carries an idempotency key of (run, step, attempt, what), so a
step carried out again after a restart registers one version, moves the alias once and rolls
back once. A 4xx from another service fails the step (reason ``error``) with that service's
message; no answer or a 5xx leaves it running, tried again on the next pass.

Deploy with ``bake_s``: the deployment is switched at once and the step stays running until
``bake_s`` seconds after it started (wall time, the engine's clock). An ``alert.fired`` for that
deployment at or after the step's start rolls the deployment back (the deployments service's
rollback), moves the alias back when the version came through a promote step, and fails the step
naming the alert.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from cairn.kernel.errors import InvalidInput, NotFound
from cairn.pipelines.spec import Pipeline, Step
from cairn.services.pipelines import domain
from cairn.services.pipelines.clients import Refused
from cairn.services.pipelines.gates import decide_gate

if TYPE_CHECKING:
    from cairn.services.pipelines.engine import Engine


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class StepFailed(Exception):
    """The step fails for good with this message (reason ``error``)."""


class SpecialSteps:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def store(self) -> Any:
        return self.engine.store

    async def carry_out(self, project: str, state: dict[str, Any], pipeline: Pipeline, step: Step,
                        current: dict[str, Any]) -> None:
        from cairn.services.pipelines.engine import step_key

        run_id, attempt = state["run_id"], current["attempt"]
        handler = getattr(self, f"_{step.kind}", None)
        if handler is None:
            return
        try:
            result = await handler(project, state, pipeline, step, current)
        except (StepFailed, Refused, NotFound, InvalidInput) as err:  # InvalidInput: a gate it cannot decide
            message = f"{step.kind}: {err if isinstance(err, StepFailed) else err.message}"
            await self.engine.append(project, run_id, step_key(run_id, step.id, attempt, "step.failed"),
                                     lambda s: domain.record_failure(s, step=step.id, attempt=attempt, reason="error",
                                                                     message=message))
            return
        if result is None:  # still going (a bake)
            return
        kind = result[0]
        if kind == "gate":
            decision = result[1]
            await self.engine.append(project, run_id, step_key(run_id, step.id, attempt, "gate"),
                                     lambda s: domain.record_gate(s, step=step.id, decision=decision))
            return
        outputs, metrics = result[1], result[2]
        await self.engine.append(project, run_id, step_key(run_id, step.id, attempt, "step.succeeded"),
                                 lambda s: domain.record_success(s, step=step.id, attempt=attempt, outputs=outputs,
                                                                 metrics=metrics))

    # --- gate ----------------------------------------------------------------------------------

    async def _run_metrics(self, project: str, run_ids: list[str]) -> list[dict[str, Any]]:
        return [await self.engine.clients.metrics.last_values(project, r) for r in run_ids]

    async def _gate(self, project: str, state: dict[str, Any], pipeline: Pipeline, step: Step,
                    current: dict[str, Any]) -> tuple[Any, ...]:
        gate = step.special
        candidate = state["steps"][gate.step]
        seeds = self.seed_runs(project, state, gate.step)
        by_seed = await self._run_metrics(project, seeds) if len(seeds) > 1 else None
        champion = None
        if gate.champion is not None:
            registry = self.engine.clients.registry  # the registry itself: the facts may lag a promote
            version = await registry.alias(project, gate.champion.model, gate.champion.alias)
            if version is not None:
                champ_run = (await registry.version(project, gate.champion.model, version))["run_id"]
                champion = await self._run_metrics(project, self.siblings(project, champ_run))
        steps = {sid: {"metrics": s["metrics"], "outputs": s["outputs"]} for sid, s in state["steps"].items()
                 if s["state"] in domain.DONE}
        decision = decide_gate(gate, candidate["metrics"], champion, params=state["params"], steps=steps,
                               candidate_metrics_by_seed=by_seed)
        return ("gate", decision)

    def seed_runs(self, project: str, state: dict[str, Any], step_id: str) -> list[str]:
        """The runs of a step: its job's run and any run that process started (tagged so)."""
        current = state["steps"][step_id]
        source = current.get("source_run") if current["state"] == "cached" else None
        return list(self.store.seed_runs(project, source or state["run_id"], step_id))

    def siblings(self, project: str, run: str) -> list[str]:
        """The champion's seed runs: the runs of the pipeline step that made it, else that run alone."""
        tags = self.store.run_tags(run) or {}
        pipeline_run, step = tags.get("cairn.pipeline_run"), tags.get("cairn.pipeline_step")
        if pipeline_run and step:
            found = list(self.store.seed_runs(project, pipeline_run, step))
            if run in found:
                return found
        return [run]

    # --- data_check ------------------------------------------------------------------------------

    async def _data_check(self, project: str, state: dict[str, Any], pipeline: Pipeline, step: Step,
                          current: dict[str, Any]) -> tuple[Any, ...]:
        raise StepFailed("not supported yet: profiling a dataset version against the monitor's reference "
                         f"profile {step.special.reference!r} is not built; the step fails rather than pass unchecked")

    # --- register, promote -----------------------------------------------------------------------

    def step_run(self, project: str, state: dict[str, Any], step_id: str) -> str | None:
        """The registry run of a job step: its current attempt's, or for a cached step the run of
        the pipeline run that did the work."""
        current = state["steps"][step_id]
        if current["state"] == "cached":
            runs = self.store.seed_runs(project, current["source_run"], step_id)
            return runs[0] if runs else None
        return self.store.step_run_id(project, state["run_id"], step_id)

    def producing_run(self, project: str, state: dict[str, Any], step_id: str) -> str:
        run = self.step_run(project, state, step_id)
        if run is None:
            raise StepFailed(f"the run of step {step_id!r} is not known")
        return run

    async def _register(self, project: str, state: dict[str, Any], pipeline: Pipeline, step: Step,
                        current: dict[str, Any]) -> tuple[Any, ...]:
        from cairn.services.pipelines.engine import step_key

        spec, run_id = step.special, state["run_id"]
        ref = spec.artifact
        digest = state["steps"][ref.step]["outputs"].get(ref.name)
        if not digest:
            raise StepFailed(f"step {ref.step!r} has no output {ref.name!r} to register")
        producer = self.producing_run(project, state, ref.step)
        registry = self.engine.clients.registry
        await registry.ensure_model(project, spec.model, key=step_key(run_id, step.id, current["attempt"], "model"))
        version = await registry.create_version(
            project, spec.model, run_id=producer, digest=digest, key=step_key(run_id, step.id, current["attempt"],
                                                                               "version"),
            description=f"pipeline {state['name']} run {run_id}, step {ref.step} output {ref.name}")
        return ("ok", {"version": int(version["version"]), "model": spec.model}, {})

    async def _promote(self, project: str, state: dict[str, Any], pipeline: Pipeline, step: Step,
                       current: dict[str, Any]) -> tuple[Any, ...]:
        from cairn.services.pipelines.engine import step_key

        spec, run_id = step.special, state["run_id"]
        source = state["steps"][spec.source]["outputs"]
        model = pipeline.step(spec.source).special.model
        version = int(source["version"])
        registry = self.engine.clients.registry
        await registry.set_alias(project, model, spec.alias, version,
                                 key=step_key(run_id, step.id, current["attempt"], "alias"))
        previous = await self.previous_version(project, model, spec.alias, version)
        outputs: dict[str, Any] = {"version": version, "model": model, "alias": spec.alias}
        if previous is not None:
            outputs["previous_version"] = previous
        return ("ok", outputs, {})

    async def previous_version(self, project: str, model: str, alias: str, version: int) -> int | None:
        """What the alias pointed at before it was last set to ``version`` (from its history, so a
        promote repeated after a restart still finds the version before its own move)."""
        found = await self.engine.clients.registry.call(
            "GET", f"/projects/{project}/models/{model}/aliases/{alias}/history")
        for entry in reversed(found["history"]):
            if entry.get("version") == version and entry.get("action", "set") == "set":
                return entry.get("previous_version")
        return None

    # --- deploy ----------------------------------------------------------------------------------

    async def _deploy(self, project: str, state: dict[str, Any], pipeline: Pipeline, step: Step,
                      current: dict[str, Any]) -> tuple[Any, ...] | None:
        from cairn.services.pipelines.engine import step_key

        spec, run_id, attempt = step.special, state["run_id"], current["attempt"]
        if spec.source is not None:
            version = int(state["steps"][spec.source]["outputs"]["version"])
        else:
            version, _ = self.store.model_digest(project, spec.model.name, spec.model.version, spec.model.alias)
        deployments = self.engine.clients.deployments
        found = await deployments.get(project, spec.deployment)
        if found["environment"] != spec.environment:
            raise StepFailed(f"deployment {spec.deployment!r} is in environment {found['environment']!r}, "
                             f"not {spec.environment!r}")
        if found["version"] != version:
            await deployments.change_version(project, spec.deployment, version,
                                             key=step_key(run_id, step.id, attempt, "deploy"))
        outputs = {"version": version, "deployment": spec.deployment, "environment": spec.environment}
        if spec.bake_s <= 0:
            return ("ok", outputs, {})
        started = _epoch(current["started_at"])
        fired = self.store.alerts_fired(project, spec.deployment, int(started * 1000))
        if fired:
            await self.roll_back(project, state, pipeline, step, current, fired[0])
        if self.engine.clock() < started + spec.bake_s:
            return None
        return ("ok", outputs, {})

    async def roll_back(self, project: str, state: dict[str, Any], pipeline: Pipeline, step: Step,
                        current: dict[str, Any], alert: dict[str, Any]) -> None:
        from cairn.services.pipelines.engine import step_key

        spec, run_id, attempt = step.special, state["run_id"], current["attempt"]
        name = alert.get("name") or alert.get("data", {}).get("name") or alert.get("rule_id") or "an alert"
        message = f"alert {name!r} fired for deployment {spec.deployment!r} during the bake"
        try:
            await self.engine.clients.deployments.rollback(project, spec.deployment,
                                                           key=step_key(run_id, step.id, attempt, "rollback"))
            message += ": rolled back"
        except Refused as err:  # e.g. no earlier version on record: said, and the step still fails
            message += f"; the rollback was refused ({err.message})"
        source = pipeline.step(spec.source) if spec.source is not None else None
        if source is not None and source.kind == "promote":
            outputs = state["steps"][source.id]["outputs"]
            previous = outputs.get("previous_version")
            if previous is not None:
                await self.engine.clients.registry.set_alias(
                    project, outputs["model"], outputs["alias"], int(previous),
                    key=step_key(run_id, step.id, attempt, "alias-back"))
                message += f"; alias {outputs['alias']!r} moved back to version {previous}"
            else:
                message += f"; alias {outputs['alias']!r} had no earlier version, left on {outputs['version']}"
        raise StepFailed(message)
