"""Keeping the scheduler's replica sets in line with the deployments, and following aliases.

Both run as start hooks after the projection: they read the committed read model whenever the
projection has moved, so they act on what the log says, never on a request in flight.

- :class:`ReplicaSetClient` speaks the scheduler's replica-set API (contract 3 of issue 19).
- :class:`Reconciler` PUTs ``deploy-NAME`` with the replica count on create and scale and DELETEs
  it on delete. What it last pushed is kept in memory only: after a restart it pushes every
  deployment once more (the PUT and DELETE are idempotent), and a refused or failed call is
  retried on the next pass.
- :class:`AliasFollower` appends ``deployment.version_changed`` (why ``alias_moved``) through the
  command handler: the decision is made on the deployment's snapshot and appended expecting its
  last sequence, so however often it runs (restarts, rebuilds) an alias move changes the
  deployment exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import CairnError
from cairn.services.deployments import domain
from cairn.services.deployments.store import DeploymentsStore

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often the loops look whether the projection moved (a service loop, not a test wait)


def replica_set_name(deployment: str) -> str:
    return f"deploy-{deployment}"


def serve_command(project: str, deployment: str) -> list[str]:
    return ["cairn", "serve", "--deployment", f"{project}/{deployment}", "--port", "0", "--host", "0.0.0.0"]


class ReplicaSetClient:
    """The scheduler's replica-set API over signed service-to-service HTTP."""

    def __init__(self, scheduler_url: str, headers: Callable[[], dict[str, str]], *, timeout: float = 10.0) -> None:
        self.url = scheduler_url.rstrip("/")
        self.headers = headers
        self._http = httpx.AsyncClient(timeout=timeout)

    async def put(self, project: str, deployment: str, replicas: int) -> None:
        # the command names the deployment; CAIRN_* variables are the scheduler's to set
        body = {"command": serve_command(project, deployment), "env": {},
                "replicas": replicas, "resources": {}, "spread": True}
        resp = await self._http.put(f"{self.url}/projects/{project}/replica-sets/{replica_set_name(deployment)}",
                                    json=body, headers=self.headers())
        resp.raise_for_status()

    async def running(self, project: str, deployment: str) -> set[str] | None:
        """The job ids of the replica set's live replicas; None when the set does not exist."""
        resp = await self._http.get(f"{self.url}/projects/{project}/replica-sets/{replica_set_name(deployment)}",
                                    headers=self.headers())
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return {r["job_id"] for r in resp.json().get("running", [])}

    async def delete(self, project: str, deployment: str) -> None:
        resp = await self._http.delete(f"{self.url}/projects/{project}/replica-sets/{replica_set_name(deployment)}",
                                       headers=self.headers())
        if resp.status_code != 404:  # already gone is what we want
            resp.raise_for_status()

    async def close(self) -> None:
        await self._http.aclose()


class Reconciler:
    def __init__(self, store: DeploymentsStore, client: ReplicaSetClient) -> None:
        self.store = store
        self.client = client
        self.pushed: dict[tuple[str, str], tuple[int, bool]] = {}  # (project, name) -> (replicas, deleted)

    async def reconcile(self) -> int:
        """One pass: push what differs from what was last pushed; returns the calls that failed."""
        failed = 0
        for project, name, _seq, state in await asyncio.to_thread(self.store.every_deployment):
            want = (state["replicas"], bool(state["deleted"]))
            if self.pushed.get((project, name)) == want:
                continue
            try:
                if want[1]:
                    await self.client.delete(project, name)
                else:
                    await self.client.put(project, name, want[0])
            except httpx.HTTPError as err:
                failed += 1
                log.warning("deployment=%s/%s replica set call failed: %s; retrying", project, name, err)
                continue
            self.pushed[(project, name)] = want
        return failed


class ReplicaSweeper:
    """A replica killed (SIGKILL, a lost machine) cannot say it stopped: its job ending is what
    the scheduler sees. Each pass compares the managed replicas that last said ``started`` with
    the replica set's live jobs (replica id = job id) and records ``deployment.replica_stopped``
    for those whose job is gone. Returns True while there are managed replicas to watch (so the
    background loop runs it again after a second)."""

    def __init__(self, store: DeploymentsStore, client: ReplicaSetClient, execute: Callable[..., Any]) -> None:
        self.store = store
        self.client = client
        self.execute = execute

    async def sweep(self) -> bool:
        watching = False
        for project, name, _seq, state in await asyncio.to_thread(self.store.every_deployment):
            started = {rid: r for rid, r in state["replicas_seen"].items()
                       if r.get("managed") and r["state"] == "started"}
            if state["deleted"] or not started:
                continue
            watching = True
            try:
                live = await self.client.running(project, name)
            except httpx.HTTPError as err:
                log.warning("deployment=%s/%s cannot list its replicas: %s", project, name, err)
                continue
            for rid, report in started.items():
                if live is not None and rid in live:
                    continue
                try:
                    await self.execute(CommandContext(actor="service:deployments"), project=project,
                                       aggregate="deployment", aggregate_id=name,
                                       decide=lambda s, n=name, r=rid, u=report["url"], v=report["version"]:
                                       domain.report_replica(s, name=n, replica_id=r, url=u, version=v,
                                                             status="stopped", managed=True,
                                                             reason="its job ended without a report "
                                                                    "(killed, crashed or its agent lost)"))
                except CairnError as err:
                    log.warning("deployment=%s/%s replica %s: %s", project, name, rid, err)
        return watching


class AliasFollower:
    def __init__(self, store: DeploymentsStore, execute: Callable[..., Any]) -> None:
        self.store = store
        self.execute = execute

    async def follow(self) -> None:
        """One pass over the deployments that follow an alias."""
        for project, name, _seq, state in await asyncio.to_thread(self.store.every_deployment):
            if state["deleted"] or state["follows"] is None:
                continue
            model_id, alias = state["model_id"], state["follows"]
            if domain.follow_alias(state, name=name, alias_version=self.store.alias_version(model_id, alias)) is None:
                continue
            try:
                # decided again on the snapshot inside the command (fresh alias too): a no-op if
                # someone (or an earlier run of this loop) moved it already
                await self.execute(CommandContext(actor="service:deployments"), project=project,
                                   aggregate="deployment", aggregate_id=name,
                                   decide=lambda s, m=model_id, a=alias, n=name: domain.follow_alias(
                                       s, name=n, alias_version=self.store.alias_version(m, a)))
            except CairnError as err:
                log.warning("deployment=%s/%s following alias %s failed: %s", project, name, alias, err)


async def watch(applied: Callable[[], int], passes: list[Callable[[], Any]], *, retry_s: float = 1.0) -> None:
    """Run every pass whenever the projection moved, and again after ``retry_s`` while a pass
    reports failures (a truthy result), until cancelled."""
    seen, due = -1, 0.0
    loop = asyncio.get_running_loop()
    while True:
        now = applied()
        if now != seen or (due and loop.time() >= due):
            seen, due = now, 0.0
            for run in passes:
                try:
                    if await run():
                        due = loop.time() + retry_s
                except Exception:  # noqa: BLE001 - the loop must outlive one bad pass
                    log.exception("deployments background pass failed")
                    due = loop.time() + retry_s
        await asyncio.sleep(POLL_S)
