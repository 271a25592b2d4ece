"""Deciding rules on closed windows, and carrying out their actions.

For each closed window still queued (``WindowStore.pending``), every live rule of that deployment
and window size decides from its last ``n`` closed windows (``domain.decide_alert``). The event is
appended on the rule's alert subject expecting the sequence the projection last saw there, with
the message id ``<actor>:<project>:alert.<rule id>.<window end in ms>``: a monitor that was
killed after appending and before dropping the queue entry decides again, and appends nothing
(the aggregate's state shows the window decided, or the append conflicts and it catches up, or
the server drops the repeated message id).

A rollback action calls the deployments service's rollback with the monitor's own identity and
the idempotency key ``alert-rollback.<rule id>.<window end in ms>``, so a rollback retried after a
kill happens once. Pipeline actions are only recorded in ``alert.fired`` (the pipelines issue
consumes them).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from cairn.kernel.commands import CommandContext
from cairn.kernel.ids import new_id
from cairn.kernel.service import ServiceRuntime
from cairn.services.monitor import domain
from cairn.services.monitor.store import MonitorStore
from cairn.services.monitor.window_store import WindowStore

log = logging.getLogger(__name__)
ACTOR = "service:monitor"


class RuleDecider:
    def __init__(self, runtime: ServiceRuntime, windows: WindowStore, deployments_url: str) -> None:
        self.runtime = runtime
        self.windows = windows
        self.deployments_url = deployments_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=30)
        self.last_error: str | None = None

    @property
    def store(self) -> MonitorStore:
        store = self.runtime.store
        assert isinstance(store, MonitorStore)
        return store

    async def close(self) -> None:
        await self.http.aclose()

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
        _, state = self.store.alert_state(project, rule_id)
        if (rule["action"] or {}).get("rollback") and state and state["firing"] and state["last_fired_end"] == end:
            await self._rollback(project, item["deployment"], f"alert-rollback.{rule_id}.{int(end * 1000)}")

    async def _rollback(self, project: str, deployment: str, key: str) -> None:
        if not self.deployments_url:
            log.warning("monitor: a rule asks to roll back %s/%s but CAIRN_DEPLOYMENTS_URL is not set",
                        project, deployment)
            return
        resp = await self.http.post(f"{self.deployments_url}/projects/{project}/deployments/{deployment}/rollback",
                                    headers={**self.runtime.signer.internal(), "Idempotency-Key": key})
        if resp.status_code in (404, 409):  # gone, or nothing to roll back to: nothing to retry
            log.warning("monitor: rollback of %s/%s refused: %s", project, deployment, resp.text[:300])
            return
        resp.raise_for_status()
        log.info("monitor: rolled back %s/%s (%s)", project, deployment, key)
