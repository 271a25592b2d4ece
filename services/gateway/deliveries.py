"""Per-webhook delivery queues: one slow or silent receiver delays only its own deliveries.

The dispatcher's consumer never waits for a receiver. For each event it writes one row per
matching webhook into an outbox table, in the same SQLite transaction that moves its log position
(``webhook-position.sqlite3``), so an event is queued exactly once for each webhook: a redelivered
NATS message is at or below the position and is skipped, and a crash rolls back both together.

Each webhook with queued rows has one worker task that takes its rows oldest first (event order),
tries each up to ``attempts`` times with exponential backoff, and removes the row once it is
delivered or dead-lettered. One task per webhook means one attempt in flight per delivery, and
never two copies of the same delivery at once. A crash after a receiver answered but before its
row was removed sends that delivery again after the restart (at least once): receivers dedupe on
``Cairn-Delivery``; ``Cairn-Delivery-Attempt`` numbers the tries of one delivery.

Every attempt is written down in a ``deliveries`` table next to the outbox (event, attempt, time,
HTTP status or error, duration, when the next try is due), the newest ``KEEP_ATTEMPTS`` per webhook.
Attempts are not events of record: a row per try per webhook per event would outgrow the log it
reports on, and the outcome that matters (a dead letter) is an event already. They are operational
state, like the outbox itself: bounded, kept across restarts, gone with the webhook.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import aiohttp

from cairn.kernel.commands import CommandContext, CommandHandler
from cairn.kernel.egress import Egress
from cairn.kernel.errors import InvalidInput
from cairn.kernel.leader import Lease
from cairn.kernel.sealing import is_sealed, unseal
from cairn.kernel.store import SqliteStore
from cairn.kernel.tasks import stop_tasks
from cairn.services.gateway import domain
from cairn.services.gateway.signing import sign
from cairn.services.gateway.store import GatewayStore
from cairn.services.gateway.webhook_progress import WebhookProgress

log = logging.getLogger(__name__)

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id TEXT NOT NULL, sequence INTEGER NOT NULL,
    event_type TEXT NOT NULL, body BLOB NOT NULL, queued_seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_by_webhook ON outbox(webhook_id, id);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id TEXT NOT NULL, sequence INTEGER NOT NULL,
    event_type TEXT NOT NULL, attempt INTEGER NOT NULL, time TEXT NOT NULL, status INTEGER,
    error TEXT NOT NULL, duration_ms REAL NOT NULL, outcome TEXT NOT NULL, next_retry_at TEXT);
CREATE INDEX IF NOT EXISTS deliveries_by_webhook ON deliveries(webhook_id, id);
"""
KEEP_ATTEMPTS = 200  # per webhook: the page shows the recent ones, the log keeps what happened
DEAD_LETTER_RETRY_S = 5.0


def migrate(outbox: SqliteStore) -> None:
    """An outbox from before ``queued_seq`` (services/gateway/webhook_progress.py) gets the column;
    its rows keep 0, so no progress note drops them."""
    columns = {r["name"] for r in outbox.query("PRAGMA table_info(outbox)")}
    if "queued_seq" not in columns:
        with outbox.transaction() as conn:
            conn.execute("ALTER TABLE outbox ADD COLUMN queued_seq INTEGER NOT NULL DEFAULT 0")


@dataclass(frozen=True)
class Delivery:
    """One event for one webhook: the body is the event as it leaves the gateway (no secrets)."""

    webhook_id: str
    sequence: int
    event_type: str
    body: bytes
    row: int = 0  # the outbox row, once queued
    queued_seq: int = 0  # the log sequence of the event that queued it (a replay's: the request's)

    @property
    def delivery_id(self) -> str:
        return f"{self.webhook_id}:{self.sequence}"


def enqueue(conn: sqlite3.Connection, deliveries: Iterable[Delivery], queued_seq: int = 0) -> None:
    """Queue deliveries inside the caller's transaction (the one that moves the log position to
    ``queued_seq``, the event that queues them)."""
    conn.executemany("INSERT INTO outbox(webhook_id, sequence, event_type, body, queued_seq) VALUES(?, ?, ?, ?, ?)",
                     [(d.webhook_id, d.sequence, d.event_type, d.body, queued_seq) for d in deliveries])


def prune(conn: sqlite3.Connection, finished: dict[str, int]) -> None:
    """Drop what the delivering gateway finished: each webhook's rows queued at or before its note."""
    conn.executemany("DELETE FROM outbox WHERE webhook_id=? AND queued_seq>0 AND queued_seq<=?",
                     list(finished.items()))


def drop(conn: sqlite3.Connection, webhook_id: str) -> None:
    """A deleted webhook's queue goes with it."""
    conn.execute("DELETE FROM outbox WHERE webhook_id=?", (webhook_id,))
    conn.execute("DELETE FROM deliveries WHERE webhook_id=?", (webhook_id,))


@dataclass(frozen=True)
class Attempt:
    """One try of one delivery, as the deliveries log keeps it."""

    delivery: Delivery
    attempt: int
    time: str
    status: int | None
    error: str
    duration_ms: float
    outcome: str  # delivered | retrying | dead_lettered
    next_retry_at: str | None = None


def record(conn: sqlite3.Connection, a: Attempt, keep: int = KEEP_ATTEMPTS) -> None:
    """Append an attempt and forget the webhook's attempts older than its newest ``keep``."""
    d = a.delivery
    conn.execute("INSERT INTO deliveries(webhook_id, sequence, event_type, attempt, time, status, error, "
                 "duration_ms, outcome, next_retry_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (d.webhook_id, d.sequence, d.event_type, a.attempt, a.time, a.status, a.error,
                  round(a.duration_ms, 1), a.outcome, a.next_retry_at))
    conn.execute("DELETE FROM deliveries WHERE webhook_id=? AND id <= (SELECT id FROM deliveries "
                 "WHERE webhook_id=? ORDER BY id DESC LIMIT 1 OFFSET ?)", (d.webhook_id, d.webhook_id, keep))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeliveryQueues:
    """The outbox's workers: one task per webhook that has queued deliveries."""

    def __init__(self, outbox: SqliteStore, store: GatewayStore, commands: CommandHandler, egress: Egress, *,
                 attempts: int, backoff_s: float) -> None:
        self.outbox = outbox
        self.store = store
        self.commands = commands
        self.egress = egress
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.seal_key: bytes | None = None  # opens sealed signing secrets (cairn.kernel.sealing)
        # with several gateways (services/gateway/webhook_progress.py): only the holder of the
        # gateway.webhooks lease delivers, and notes what it finished; None: this one always does
        self.elected = False  # True: deliver only while holding ``lease`` (set by the elector)
        self.lease: Lease | None = None
        self.progress: WebhookProgress | None = None

    @property
    def delivering(self) -> bool:
        return not self.elected or (self.lease is not None and self.lease.holds())
    def waiting(self) -> set[str]:
        """Webhooks with queued deliveries (at start: what a stop or crash left queued)."""
        return {r["webhook_id"] for r in self.outbox.query("SELECT DISTINCT webhook_id FROM outbox")}

    def pending(self, webhook_id: str) -> int:
        """Deliveries queued for a webhook, the one in flight included."""
        row = self.outbox.query_one("SELECT COUNT(*) FROM outbox WHERE webhook_id=?", (webhook_id,))
        return int(row[0]) if row else 0

    def attempts_page(self, webhook_id: str, *, limit: int, before: int | None) -> dict[str, Any]:
        """A webhook's recorded attempts, newest first, older than row ``before`` when given."""
        rows = self.outbox.query(
            "SELECT id, sequence, event_type, attempt, time, status, error, duration_ms, outcome, next_retry_at "
            "FROM deliveries WHERE webhook_id=? AND id < ? ORDER BY id DESC LIMIT ?",
            (webhook_id, before if before is not None else 2**62, limit + 1))
        items = [dict(r) for r in rows[:limit]]
        return {"deliveries": items, "next_before": items[-1]["id"] if len(rows) > limit else None}

    def wake(self, webhook_ids: Iterable[str]) -> None:
        """Start a worker for each of these webhooks that has none (called after rows are committed)."""
        if not self.delivering:
            return
        for webhook_id in webhook_ids:
            task = self._workers.get(webhook_id)
            if task is None or task.done():
                self._workers[webhook_id] = asyncio.create_task(self._drain(webhook_id), name=f"webhook-{webhook_id}")

    async def stop(self) -> None:
        await stop_tasks(*self._workers.values())
        self._workers.clear()

    async def prune(self, webhook_ids: Iterable[str]) -> None:
        """Drop these webhooks' rows that the delivering gateway has finished."""
        if self.progress is None:
            return
        finished = await self.progress.read(set(webhook_ids))
        if finished:
            with self.outbox.transaction() as conn:
                prune(conn, finished)

    def _next(self, webhook_id: str) -> Delivery | None:
        row = self.outbox.query_one("SELECT id, sequence, event_type, body, queued_seq FROM outbox "
                                    "WHERE webhook_id=? ORDER BY id LIMIT 1", (webhook_id,))
        if row is None:
            return None
        return Delivery(webhook_id, row["sequence"], row["event_type"], bytes(row["body"]), row=row["id"],
                        queued_seq=row["queued_seq"])

    async def _done(self, delivery: Delivery) -> None:
        with self.outbox.transaction() as conn:
            conn.execute("DELETE FROM outbox WHERE id=?", (delivery.row,))
        if self.progress is not None and delivery.queued_seq:
            await self.progress.mark(delivery.webhook_id, delivery.queued_seq)

    def _record(self, attempt: Attempt) -> None:
        with self.outbox.transaction() as conn:
            record(conn, attempt)

    def _live_hook(self, webhook_id: str) -> dict[str, Any] | None:
        hook = self.store.webhook(webhook_id)
        return hook if hook is not None and not hook["deleted"] else None

    async def _drain(self, webhook_id: str) -> None:
        """Deliver a webhook's queue in order; end when it is empty or the webhook is deleted.
        Nothing awaits between finding the queue empty and leaving ``_workers``, so a wake after
        new rows were committed always finds either this task still draining or no task."""
        while True:
            delivery = self._next(webhook_id) if self.delivering else None  # lease lost: leave it queued
            hook = self._live_hook(webhook_id) if delivery is not None else None
            if delivery is None or hook is None:
                if delivery is not None:
                    with self.outbox.transaction() as conn:
                        drop(conn, webhook_id)
                if self._workers.get(webhook_id) is asyncio.current_task():
                    del self._workers[webhook_id]
                return
            try:
                await self._deliver(hook, delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad delivery must not stop the webhook's queue
                log.exception("webhook=%s seq=%d delivery_error", webhook_id, delivery.sequence)
                await asyncio.sleep(DEAD_LETTER_RETRY_S)

    def _secret(self, hook: dict[str, Any]) -> str:
        """The signing secret; the event of record keeps it sealed (docs/cluster.md)."""
        if self.seal_key is None or not is_sealed(hook["secret"]):
            return str(hook["secret"])
        return unseal(self.seal_key, hook["secret"], hook["id"])

    async def _deliver(self, hook: dict[str, Any], delivery: Delivery) -> None:
        """Try a delivery up to ``attempts`` times, then dead-letter it; the row goes either way."""
        error = ""
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(delay)
                delay *= 2
                if self._live_hook(hook["id"]) is None:
                    return  # deleted while we waited: the next _drain turn drops its queue
            if not self.delivering:
                return  # the lease is lost: the row stays queued for the gateway that holds it
            headers = {"Content-Type": "application/json", "Cairn-Event-Type": delivery.event_type,
                       "Cairn-Delivery": delivery.delivery_id, "Cairn-Delivery-Attempt": str(attempt),
                       "Cairn-Signature": sign(self._secret(hook), delivery.body, int(time.time()))}
            started, clock = time.time(), time.monotonic()
            status: int | None = None
            try:
                status = await self.egress.post(hook["url"], delivery.body, headers)
            except InvalidInput as err:
                error = f"refused: {err.message}"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
                error = f"{type(err).__name__}: {err}"
            else:
                error = "" if 200 <= status < 300 else f"HTTP {status}"
            took = (time.monotonic() - clock) * 1000
            last = attempt == self.attempts
            outcome = "delivered" if not error else "dead_lettered" if last else "retrying"
            self._record(Attempt(delivery, attempt, _iso(started), status, error, took, outcome,
                                 None if last or not error else _iso(time.time() + delay)))
            if not error:
                await self._done(delivery)
                return
            log.info("webhook=%s delivery=%s attempt=%d failed error=%s", hook["id"], delivery.delivery_id,
                     attempt, error)
        log.warning("webhook=%s seq=%d dead_lettered error=%s", hook["id"], delivery.sequence, error)
        await self._dead_letter(hook, delivery, error)
        await self._done(delivery)

    async def _dead_letter(self, hook: dict[str, Any], delivery: Delivery, error: str) -> None:
        """Record the failure in the log; while the log is unreachable the delivery stays queued
        (a restart in the meantime tries it again rather than losing it)."""
        while True:
            try:
                await self.commands.execute(
                    CommandContext(actor="gateway:webhooks"), project=hook["project"], aggregate="webhook",
                    aggregate_id=hook["id"], decide=lambda s: domain.dead_letter(
                        s, webhook_id=hook["id"], sequence=delivery.sequence, error=error, attempts=self.attempts))
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - retried until the log takes it
                log.warning("webhook=%s seq=%d dead_letter_error=%r", hook["id"], delivery.sequence, err)
                await asyncio.sleep(DEAD_LETTER_RETRY_S)
