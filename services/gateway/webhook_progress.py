"""Webhook deliveries with several gateways: every gateway queues, one delivers.

Each gateway replica reads the log through a durable consumer of its own (``webhooks-<replica>``)
into an outbox of its own (services/gateway/webhooks.py), so every replica queues every delivery
and no replica's start pulls another's consumer from under it. Only the holder of the
``gateway.webhooks`` lease (cairn.kernel.leader) calls receivers; the others keep their outboxes
as the standby copy. When the holder dies, the next holder's outbox still has what the dead one
had queued: a delivery survives the death of the gateway that queued it.

What the holder has finished (delivered or dead-lettered) is noted per webhook in the key-value
bucket ``cairn-webhook-progress``: the log sequence of the event that queued the webhook's last
finished delivery (``queued_seq``; a webhook's rows are finished in that order). Standbys drop
the rows at or below it as they queue new ones, and a new holder drops them before it delivers,
so a takeover sends again at most what the dead holder had in flight (deliveries are at least
once: receivers dedupe on ``Cairn-Delivery``). The attempts log (``.../deliveries``) is each
gateway's own: it lists the attempts that gateway made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from cairn.protocol import WEBHOOK_PROGRESS_BUCKET

log = logging.getLogger(__name__)
LEASE = "gateway.webhooks"


def webhooks_durable(replica: str = "") -> str:
    """The dispatcher's durable consumer: one per gateway replica (the unnamed one keeps its name)."""
    return f"webhooks-{replica}" if replica else "webhooks"


class WebhookProgress:
    """Per webhook, the ``queued_seq`` of its last finished delivery (written by the lease holder)."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: Any, *, replicas: int = 1) -> "WebhookProgress":
        try:
            kv = await js.key_value(WEBHOOK_PROGRESS_BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(bucket=WEBHOOK_PROGRESS_BUCKET, history=1, replicas=replicas,
                                           description="webhook deliveries finished (services/gateway/webhook_progress.py)")
        return cls(kv)

    async def mark(self, webhook_id: str, queued_seq: int) -> None:
        """Note a finished delivery; a failure only means a takeover may send it again."""
        try:
            await self.kv.put(webhook_id, str(queued_seq).encode())
        except Exception as err:  # noqa: BLE001 - at least once either way
            log.warning("webhook=%s progress=%d not noted: %r", webhook_id, queued_seq, err)

    async def read(self, webhook_ids: Iterable[str]) -> dict[str, int]:
        """What the holder finished, for these webhooks (absent: nothing yet)."""
        done: dict[str, int] = {}
        for webhook_id in webhook_ids:
            try:
                entry = await self.kv.get(webhook_id)
            except KeyNotFoundError:
                continue
            if entry.value:
                done[webhook_id] = int(entry.value)
        return done
