"""Webhook deliveries: signed, retried with exponential backoff, dead-lettered after the last try,
replayable. A durable consumer walks the log and queues each event for the webhooks it matches
(see ``deliveries``: a queue per webhook, so a slow receiver delays only itself); its position is
kept with those queues. It reads only webhook events and the events of projects that have a live
webhook (see ``WebhookDispatcher``), so a platform without webhooks costs the gateway next to nothing.

Each delivery is a POST of the event envelope as JSON with headers ``Cairn-Event-Type``,
``Cairn-Delivery`` (``<webhook id>:<sequence>``, stable across retries), ``Cairn-Delivery-Attempt``
(1, 2, ...) and ``Cairn-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the webhook
secret>``. Receivers should reject signatures older than a few minutes (replay protection). Where
a delivery may go is decided by ``egress`` (globally routable addresses, checked on the address
connected to).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import sqlite3
from typing import Any

from nats.js.errors import NotFoundError

from cairn.kernel.commands import CommandHandler
from cairn.kernel.egress import Egress
from cairn.kernel.envelope import SUBJECT_PREFIX, Event, aggregate_subjects
from cairn.kernel.eventlog import EventLog
from cairn.kernel.leader import Lease, run_singleton
from cairn.kernel.projection import BATCH, ProjectionRunner
from cairn.kernel.store import SqliteStore
from cairn.kernel.tasks import stop_tasks
from cairn.services.gateway.deliveries import (
    OUTBOX_SCHEMA,
    Delivery,
    DeliveryQueues,
    drop,
    enqueue,
    migrate,
    prune,
)
from cairn.services.gateway.events import public_dict
from cairn.services.gateway.signing import sign, verify
from cairn.services.gateway.store import GatewayStore
from cairn.services.gateway.webhook_progress import LEASE, WebhookProgress, webhooks_durable

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 1.0  # a standby drops the deliveries the holder finished this often
NOTE_IDLE_EVERY = 10  # rounds: the holder notes webhooks with nothing queued as finished


class WebhookDispatcher:
    """Queues every event for the webhooks whose project and types match, in log order.

    The consumer reads every project's webhook events plus all events of the projects that have a
    live webhook. At a ``webhook.created`` or ``webhook.deleted`` that changes that set of projects
    it is bound again from that event on with the new set, so a webhook created at sequence S still
    sees every event after S. Webhooks are looked up in ``store``, fed by ``projection``: the
    dispatcher waits for it to show each webhook event before reading past that event.

    The consumer never calls a receiver: it only writes the outbox (in the transaction that moves
    its position), so it is never held up long enough for NATS to redeliver what it is working on.

    Every gateway replica runs one, with a durable consumer and an outbox of its own; only the
    holder of the ``gateway.webhooks`` lease delivers (services/gateway/webhook_progress.py).
    """

    def __init__(self, event_log: EventLog, store: GatewayStore, commands: CommandHandler, *,
                 projection: ProjectionRunner, data_dir: Any, egress: Egress, attempts: int,
                 backoff_s: float, replica: str = "") -> None:
        self.log = event_log
        self.store = store
        self.projection = projection
        self.egress = egress
        folder = data_dir / "gateway" / "replicas" / replica if replica else data_dir / "gateway"
        self.position = SqliteStore(folder / "webhook-position.sqlite3", OUTBOX_SCHEMA)
        migrate(self.position)
        self.queues = DeliveryQueues(self.position, store, commands, egress, attempts=attempts, backoff_s=backoff_s)
        self.queues.elected = True  # nothing is delivered before ``elect`` finds this replica the holder
        # inline_batch=BATCH: every batch is applied on the event loop, so the outbox's one writer
        # connection is never used by a worker thread and the queues at the same time.
        self.runner = ProjectionRunner(event_log, self.position, self._queue, durable=webhooks_durable(replica),
                                       before_apply=self._route, after_batch=self._wake, inline_batch=BATCH)
        self.projects: set[str] = set()  # those with a live webhook, read whole by the consumer
        self.filtering = False  # nats-server before 2.12 refuses overlapping filters: read everything
        self._routed: dict[int, list[Delivery]] = {}  # by sequence: what the batch being applied queues
        self._touched: set[str] = set()  # webhooks given rows by the batch just applied
        self._finished: dict[str, int] = {}  # at this holder's takeover: what the last holder finished
        self._tidying: asyncio.Task[None] | None = None
        self._noted: dict[str, int] = {}  # idle webhooks' notes written by this holder

    async def start(self) -> None:
        # Every webhook created up to our position must be in the store: their projects are read.
        await self.projection.wait_for(self.position.last_sequence(), timeout=120)
        version = self.log.nc.connected_server_version
        self.filtering = (version.major, version.minor) >= (2, 12)
        self.projects = self.store.webhook_projects()
        self.runner.filter_subjects = self._subjects()
        await self.runner.start()

    async def elect(self, runtime: Any) -> None:
        """Deliver only while holding the ``gateway.webhooks`` lease (queue either way)."""
        self.queues.progress = await WebhookProgress.open(self.log.js, replicas=self.log.replicas)
        self._tidying = asyncio.create_task(self._tidy(), name="webhooks-standby-prune")
        await run_singleton(runtime, LEASE, self._lead)

    async def _tidy(self) -> None:
        """On a standby: drop what the holder finished since the rows were queued (a webhook's
        rows are otherwise looked at only when new ones come), so the queue shown stays true.
        On the holder, every ``NOTE_IDLE_EVERY`` rounds: note each webhook with nothing queued as
        finished up to this replica's position, so a webhook that had no delivery since a gateway
        joined (or since before notes existed) has a note too, and a new replica replaying the log
        into an empty outbox drops what was delivered long ago instead of sending it again."""
        rounds = 0
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            rounds += 1
            try:
                if not self.queues.delivering:
                    await self.queues.prune(self.queues.waiting())
                elif rounds % NOTE_IDLE_EVERY == 0:
                    await self._note_idle()
            except Exception as err:  # noqa: BLE001 - NATS away: next round
                log.warning("webhooks: tidying failed: %r", err)

    async def _note_idle(self) -> None:
        # read together, with no await between: a batch (applied on this event loop) moves the
        # position and queues its rows at once, so a webhook with no rows at ``position`` has
        # finished everything queued up to it
        position = self.position.last_sequence()
        idle = {h["id"] for p in self.store.webhook_projects() for h in self.store.webhooks(p)} - self.queues.waiting()
        progress = self.queues.progress
        for webhook_id in sorted(idle):
            if progress is not None and self._noted.get(webhook_id, 0) < position:
                await progress.mark(webhook_id, position)
                self._noted[webhook_id] = position

    async def _lead(self, lease: Lease) -> None:
        """On the holder: drop what the last holder finished, deliver what is queued, and from
        then on what the consumer queues; until the lease is lost (cancelled: rows stay queued)."""
        self.queues.lease = lease
        known = {h["id"] for p in self.store.webhook_projects() for h in self.store.webhooks(p)}
        self._finished = await self.queues.progress.read(known | self.queues.waiting()) \
            if self.queues.progress else {}
        with self.position.transaction() as conn:
            prune(conn, self._finished)
        self.queues.wake(self.queues.waiting())
        try:
            await asyncio.Event().wait()
        finally:
            await self.queues.stop()

    async def stop(self) -> None:
        await stop_tasks(self._tidying)
        await self.runner.stop()
        await self.queues.stop()
        await self.egress.close()
        self.position.close()

    def pending(self, webhook_id: str) -> int:
        return self.queues.pending(webhook_id)

    def _subjects(self) -> list[str]:
        """Webhook events of every project (they overlap ``cairn.evt.<p>.>`` without either
        containing the other, which nats-server accepts from 2.12 on) and each hooked project."""
        if not self.filtering:
            return []
        return [*aggregate_subjects(["webhook"]), *(f"{SUBJECT_PREFIX}.{p}.>" for p in sorted(self.projects))]

    def _refilter(self, upto: int) -> bool:
        """Bind the consumer to the projects that now have live webhooks, from ``upto`` on."""
        projects = self.store.webhook_projects()
        if projects == self.projects or not self.filtering:
            return False
        log.info("webhooks: reading projects %s from seq %d", sorted(projects), upto)
        self.projects = projects
        self.runner.refilter(self._subjects(), upto=upto)
        return True

    async def _route(self, events: list[Event]) -> None:
        """Before a batch is applied: which deliveries each event makes (``_queue`` writes them).
        Events about webhooks themselves are never delivered, so a failing receiver cannot feed
        itself."""
        self._routed = {}
        applied = self.position.last_sequence()
        for event in events:
            if event.sequence <= applied or event.sequence in self._routed:
                continue  # redelivered by NATS: queued already, or about to be
            if event.type in ("webhook.created", "webhook.deleted"):
                await self.projection.wait_for(event.sequence)  # the store shows the change
                if self._refilter(event.sequence):
                    return  # what follows is read again under the new filter
            elif event.type == "webhook.replay_requested":
                self._routed[event.sequence] = await self._replays(event)
            elif event.aggregate != "webhook":
                self._routed[event.sequence] = self._matching(event)

    def _queue(self, conn: sqlite3.Connection, event: Event) -> None:
        """In the transaction that moves the position past ``event``: queue its deliveries."""
        deliveries = self._routed.pop(event.sequence, [])
        enqueue(conn, deliveries, event.sequence)
        self._touched.update(d.webhook_id for d in deliveries)
        if event.type == "webhook.deleted":
            drop(conn, event.data["webhook_id"])

    async def _wake(self, _: list[Event]) -> None:
        touched, self._touched = self._touched, set()
        if not self.queues.delivering:  # a standby: keep only what the holder has not finished
            await self.queues.prune(touched)
            return
        if self._finished:  # what this replica queued late that the last holder had finished
            with self.position.transaction() as conn:
                prune(conn, {w: self._finished[w] for w in touched if w in self._finished})
        self.queues.wake(touched)

    def _matching(self, event: Event) -> list[Delivery]:
        hooks = [h for h in self.store.webhooks(event.project)
                 if event.sequence > h["created_seq"] and any(fnmatch.fnmatchcase(event.type, t) for t in h["types"])]
        if not hooks:
            return []
        body = _body(event)
        return [Delivery(h["id"], event.sequence, event.type, body) for h in hooks]

    async def _replays(self, event: Event) -> list[Delivery]:
        hook = self.store.webhook(event.data["webhook_id"])
        if hook is None or hook["deleted"]:
            return []
        replays = []
        for sequence in event.data["sequences"]:
            try:
                msg = await self.log.js.get_msg(self.log.stream, sequence)
            except NotFoundError:
                log.warning("webhook=%s seq=%d replay_skipped: no longer in the log", hook["id"], sequence)
                continue
            original = Event.from_message(msg.data or b"", sequence, msg.headers)
            replays.append(Delivery(hook["id"], sequence, original.type, _body(original)))
        return replays


def _body(event: Event) -> bytes:
    return json.dumps(public_dict(event), separators=(",", ":")).encode()


__all__ = ["WebhookDispatcher", "sign", "verify"]
