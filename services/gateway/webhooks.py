"""Webhook deliveries: signed, retried with exponential backoff, dead-lettered after the last try,
replayable. A durable consumer walks the log; its position is kept with the gateway's read model.
It reads only webhook events and the events of projects that have a live webhook (see
``WebhookDispatcher``), so a platform without webhooks costs the gateway next to nothing.

Each delivery is a POST of the event envelope as JSON with headers ``Cairn-Event-Type``,
``Cairn-Delivery`` (``<webhook id>:<sequence>``, stable across retries) and
``Cairn-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the webhook secret>``.
Receivers should reject signatures older than a few minutes (replay protection).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlparse

import aiohttp

from cairn.kernel.commands import CommandContext, CommandHandler
from cairn.kernel.envelope import SUBJECT_PREFIX, Event, aggregate_subjects
from cairn.kernel.errors import InvalidInput
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.store import SqliteStore
from cairn.services.gateway import domain
from cairn.services.gateway.events import public_dict
from cairn.services.gateway.store import GatewayStore

log = logging.getLogger(__name__)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: int = 300, now: float | None = None) -> bool:
    """Check a ``Cairn-Signature`` header (for receivers, and for tests)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


def check_url(url: str, *, allow_private: bool) -> str:
    """Refuse URLs that are not http(s) or that resolve to loopback/private ranges (SSRF)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput("url must be an http:// or https:// URL with a host", details={"field": "url"})
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        raise InvalidInput(f"cannot resolve {parsed.hostname!r}", details={"field": "url"}) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved \
                or address.is_multicast or address.is_unspecified:
            raise InvalidInput(f"{parsed.hostname} resolves to {address}, a loopback or private address; "
                               "a site admin must allow private webhook targets", details={"field": "url"})
    return url


class WebhookDispatcher:
    """Delivers every event to the webhooks whose project and types match, in log order.

    The consumer reads every project's webhook events plus all events of the projects that have a
    live webhook. At a ``webhook.created`` or ``webhook.deleted`` that changes that set of projects
    it is bound again from that event on with the new set, so a webhook created at sequence S still
    sees every event after S. Webhooks are looked up in ``store``, fed by ``projection``: the
    dispatcher waits for it to show each webhook event before reading past that event.
    """

    def __init__(self, event_log: EventLog, store: GatewayStore, commands: CommandHandler, *,
                 projection: ProjectionRunner, data_dir: Any, attempts: int, backoff_s: float,
                 timeout_s: float) -> None:
        self.log = event_log
        self.store = store
        self.projection = projection
        self.commands = commands
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.position = SqliteStore(data_dir / "gateway" / "webhook-position.sqlite3", "")
        self.runner = ProjectionRunner(event_log, self.position, self._noop, durable="webhooks",
                                       before_apply=self._deliver_batch)
        self.projects: set[str] = set()  # those with a live webhook, read whole by the consumer
        self.filtering = False  # nats-server before 2.12 refuses overlapping filters: read everything
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def _noop(*_: Any) -> None:
        return None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        # Every webhook created up to our position must be in the store: their projects are read.
        await self.projection.wait_for(self.position.last_sequence(), timeout=120)
        version = self.log.nc.connected_server_version
        self.filtering = (version.major, version.minor) >= (2, 12)
        self.projects = self.store.webhook_projects()
        self.runner.filter_subjects = self._subjects()
        await self.runner.start()

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

    async def stop(self) -> None:
        await self.runner.stop()
        if self._session is not None:
            await self._session.close()
        self.position.close()

    async def _deliver_batch(self, events: list[Event]) -> None:
        # Runs before the position moves: a crash re-delivers this batch (at least once; receivers
        # dedupe by Cairn-Delivery). Events about webhooks themselves are never delivered, so a
        # failing receiver cannot feed itself.
        applied = self.position.last_sequence()
        for event in events:
            if event.sequence <= applied:
                continue
            if event.type in ("webhook.created", "webhook.deleted"):
                await self.projection.wait_for(event.sequence)  # the store shows the change
                if self._refilter(event.sequence):
                    return  # what follows is read again under the new filter
                continue
            if event.type == "webhook.replay_requested":
                await self._replay(event)
                continue
            if event.aggregate != "webhook":
                await self._deliver_event(event)

    async def _deliver_event(self, event: Event) -> None:
        hooks = [h for h in self.store.webhooks(event.project, with_secret=True)
                 if event.sequence > h["created_seq"] and any(fnmatch.fnmatchcase(event.type, t) for t in h["types"])]
        await asyncio.gather(*(self._deliver(h, event) for h in hooks))

    async def _replay(self, event: Event) -> None:
        hook = self.store.webhook(event.data["webhook_id"])
        if hook is None or hook["deleted"]:
            return
        for sequence in event.data["sequences"]:
            msg = await self.log.js.get_msg(self.log.stream, sequence)
            original = Event.from_message(msg.data or b"", sequence, msg.headers)
            await self._deliver(hook, original)

    async def _deliver(self, hook: dict[str, Any], event: Event) -> None:
        assert self._session is not None
        body = json.dumps(public_dict(event), separators=(",", ":")).encode()
        error = ""
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            headers = {"Content-Type": "application/json", "Cairn-Event-Type": event.type,
                       "Cairn-Delivery": f"{hook['id']}:{event.sequence}",
                       "Cairn-Signature": sign(hook["secret"], body, int(time.time()))}
            try:
                async with self._session.post(hook["url"], data=body, headers=headers,
                                              allow_redirects=False) as resp:
                    if 200 <= resp.status < 300:
                        return
                    error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                error = f"{type(err).__name__}: {err}"
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("webhook=%s seq=%d dead_lettered error=%s", hook["id"], event.sequence, error)
        await self.commands.execute(
            CommandContext(actor="gateway:webhooks"), project=hook["project"], aggregate="webhook",
            aggregate_id=hook["id"], decide=lambda s: domain.dead_letter(
                s, webhook_id=hook["id"], sequence=event.sequence, error=error, attempts=self.attempts))
