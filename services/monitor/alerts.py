"""Deciding rules on closed windows, and carrying out their actions.

For each closed window still queued (``WindowStore.pending``), every live rule of that deployment
and window size decides from its last ``n`` closed windows (``domain.decide_alert``). The event is
appended on the rule's alert subject expecting the sequence the projection last saw there, with
the message id ``<actor>:<project>:alert.<rule id>.<window end in ms>``: a monitor that was
killed after appending and before dropping the queue entry decides again, and appends nothing
(the aggregate's state shows the window decided, or the append conflicts and it catches up, or
the server drops the repeated message id).

A rollback action is owed from the moment ``alert.fired`` is in the log until
``alert.action_taken`` says it was done or refused (the projection keeps the owed ones). The
:class:`ActionTaker` carries owed actions out at start and whenever the projection moves, so a
monitor killed between the two events carries the action out after its restart: the deployments
service's rollback, called with the monitor's own identity and the idempotency key
``alert-rollback.<rule id>.<window end in ms>`` (that service remembers the key, so a call repeated
after a kill rolls back once). A 4xx answer is recorded as ``failed`` with its message; a 5xx or
no answer is tried again with backoff. Pipeline actions are only recorded in ``alert.fired`` (the
pipelines issue consumes them); nothing here acts on them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from cairn.kernel.commands import CommandContext
from cairn.kernel.ids import new_id
from cairn.kernel.service import ServiceRuntime
from cairn.protocol import EVENT_SUBJECT_PREFIX
from cairn.services.monitor import domain
from cairn.services.monitor.store import MonitorStore
from cairn.services.monitor.window_store import WindowStore

log = logging.getLogger(__name__)
ACTOR = "service:monitor"
POLL_S = 0.1  # the longest the action task waits for the projection to move (a retry may come due)


class RuleDecider:
    def __init__(self, runtime: ServiceRuntime, windows: WindowStore) -> None:
        self.runtime = runtime
        self.windows = windows
        self.last_error: str | None = None

    @property
    def store(self) -> MonitorStore:
        store = self.runtime.store
        assert isinstance(store, MonitorStore)
        return store

    async def decide_pending(self) -> None:
        """Decide every queued closed window, oldest first; a window whose decisions failed
        stays queued and is tried again on the next round."""
        for item in self.windows.pending():
            try:
                for rule in self.store.rules(item["project"], item["deployment"], item["size"]):
                    await self._decide(item, rule)
            except Exception as err:  # noqa: BLE001 - kept queued: decided again next round
                self.last_error = repr(err)
                log.warning("monitor: deciding rules on %s/%s %s window at %s failed: %r", item["project"],
                            item["deployment"], item["size"], item["start"], err)
                return
            self.windows.decided(item)
        self.last_error = None

    async def _decide(self, item: dict[str, Any], rule: dict[str, Any]) -> None:
        project, rule_id, end = item["project"], rule["id"], item["end"]
        history = self.windows.history(project, item["deployment"], item["size"], end, rule["persistence"]["n"])
        if not history or history[-1]["end"] != end:
            return
        key = f"alert.{rule_id}.{int(end * 1000)}"
        ctx = CommandContext(actor=ACTOR, idempotency_key=key, correlation_id=new_id())
        await self.runtime.commands.execute(ctx, project=project, aggregate="alert", aggregate_id=rule_id,
                                            decide=lambda s: domain.decide_alert(s, rule_id=rule_id, rule=rule,
                                                                                 history=history))


class ActionTaker:
    """Carries out the actions that alerts owe, oldest first, and records each outcome with
    ``alert.action_taken``. An action whose call got no answer or a 5xx waits ``backoff_s``
    (doubling per failure, at most ``max_backoff_s``) before it is tried again; others go on."""

    def __init__(self, runtime: ServiceRuntime, deployments_url: str, *, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0) -> None:
        self.runtime = runtime
        self.deployments_url = deployments_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=30)
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.failures: dict[tuple[str, str, int], tuple[int, float]] = {}  # -> (failures, next try at)
        self.last_error: str | None = None

    @property
    def store(self) -> MonitorStore:
        store = self.runtime.store
        assert isinstance(store, MonitorStore)
        return store

    async def close(self) -> None:
        await self.http.aclose()

    async def caught_up(self) -> None:
        """Wait until the projection holds every alert event in the log: an action recorded
        just before a kill is not owed, so it is not called again (a refused rollback could
        succeed on a second call, and go unrecorded)."""
        while True:
            try:
                target = await self.runtime.log.last_subject_sequence(f"{EVENT_SUBJECT_PREFIX}.*.alert.*")
                await self.runtime.runner.wait_for(target)
                return
            except Exception as err:  # noqa: BLE001 - the log is not reachable yet: wait for it
                self.last_error = f"catching up with the alert events: {err!r}"
                await asyncio.sleep(self.backoff_s)

    async def run(self) -> None:
        """Take owed actions at start, whenever the projection moved, and when a retry is due."""
        await self.caught_up()
        seen = -1
        loop = asyncio.get_running_loop()
        while True:
            applied = self.runtime.runner.applied
            due = [at for _, at in self.failures.values() if at <= loop.time()]
            if applied != seen or due:
                seen = applied
                try:
                    await self.take_owed()
                except Exception as err:  # noqa: BLE001 - the task must outlive one bad pass
                    self.last_error = repr(err)
                    log.exception("monitor: taking alert actions failed")
            await self.runtime.runner.wait_past(seen, POLL_S)  # wakes at once when an event is applied

    async def take_owed(self) -> None:
        now = asyncio.get_running_loop().time()
        owed = self.store.actions_owed()
        live = {(a["project"], a["rule_id"], domain.end_ms(a["window_end"])) for a in owed}
        self.failures = {k: v for k, v in self.failures.items() if k in live}
        for action in owed:
            key = (action["project"], action["rule_id"], domain.end_ms(action["window_end"]))
            failures, at = self.failures.get(key, (0, 0.0))
            if at > now:
                continue
            try:
                outcome, detail = await self._carry_out(action)
                await self._record(action, outcome, detail)
            except Exception as err:  # noqa: BLE001 - no answer, a 5xx, or the log: tried again later
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** failures)
                self.failures[key] = (failures + 1, now + delay)
                self.last_error = f"{action['project']}/{action['deployment']}: {err!r}"
                log.warning("monitor: %s of %s/%s failed (retry in %.1f s): %r", list(action["action"]),
                            action["project"], action["deployment"], delay, err)
                continue
            self.failures.pop(key, None)
        if not self.failures:
            self.last_error = None

    async def _carry_out(self, action: dict[str, Any]) -> tuple[str, str]:
        """``(outcome, detail)``; raises for an answer worth waiting for (none, or a 5xx)."""
        if not self.deployments_url:
            raise RuntimeError("CAIRN_DEPLOYMENTS_URL is not set: the rollback stays owed until it is")
        project, deployment = action["project"], action["deployment"]
        key = f"alert-rollback.{action['rule_id']}.{domain.end_ms(action['window_end'])}"
        resp = await self.http.post(f"{self.deployments_url}/projects/{project}/deployments/{deployment}/rollback",
                                    headers={**self.runtime.signer.internal(), "Idempotency-Key": key})
        if 400 <= resp.status_code < 500:
            log.warning("monitor: rollback of %s/%s refused: %s", project, deployment, resp.text[:300])
            return "failed", f"{resp.status_code}: {_message(resp)}"
        resp.raise_for_status()
        log.info("monitor: rolled back %s/%s (%s)", project, deployment, key)
        return "done", f"deployment {deployment!r} runs version {resp.json().get('version')}"

    async def _record(self, action: dict[str, Any], outcome: str, detail: str) -> None:
        rule_id, end = action["rule_id"], action["window_end"]
        ctx = CommandContext(actor=ACTOR, idempotency_key=f"alert-action.{rule_id}.{domain.end_ms(end)}",
                             correlation_id=new_id())
        await self.runtime.commands.execute(ctx, project=action["project"], aggregate="alert", aggregate_id=rule_id,
                                            decide=lambda s: domain.take_action(s, rule_id=rule_id, window_end=end,
                                                                                outcome=outcome, detail=detail))


def _message(resp: httpx.Response) -> str:
    """The error message of a service's answer (``{"error": {"message": ...}}``), else its text."""
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:500]
