"""Projection runner: a durable pull consumer feeding a SqliteStore, batch by batch.

Each batch is applied and the tracking position moved in one SQLite transaction; the consumer is
(re)created at start from the stored position, so the read model resumes exactly where it
committed. ``wait_for(seq)`` lets a command handler answer only once its event is visible.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from cairn.kernel.envelope import SUBJECT_PREFIX, Event
from cairn.kernel.errors import Unavailable
from cairn.kernel.eventlog import EventLog
from cairn.kernel.store import EventHandler, SqliteStore

log = logging.getLogger(__name__)

BATCH = 512


class ProjectionRunner:
    """Keeps one projection up to date with the event log."""

    def __init__(
        self,
        event_log: EventLog,
        store: SqliteStore,
        handler: EventHandler,
        *,
        durable: str,
        filter_subject: str = f"{SUBJECT_PREFIX}.>",
        after_batch: Callable[[list[Event]], Awaitable[None]] | None = None,
    ) -> None:
        self.log = event_log
        self.store = store
        self.handler = handler
        self.durable = durable
        self.filter_subject = filter_subject
        self.after_batch = after_batch
        self.applied = store.last_sequence()
        self.last_error: str | None = None
        self._cond = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._sub = None

    async def start(self) -> None:
        await self._bind()
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.durable}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
            self._sub = None

    async def _bind(self) -> None:
        js = self.log.js
        start = self.store.last_sequence()
        self.applied = start
        try:
            await js.delete_consumer(self.log.stream, self.durable)
        except NotFoundError:
            pass
        config = js_api.ConsumerConfig(
            durable_name=self.durable,
            ack_policy=js_api.AckPolicy.ALL,
            filter_subject=self.filter_subject,
            max_ack_pending=-1,
            ack_wait=60,
            deliver_policy=(
                js_api.DeliverPolicy.BY_START_SEQUENCE if start else js_api.DeliverPolicy.ALL
            ),
            opt_start_seq=start + 1 if start else None,
        )
        await js.add_consumer(self.log.stream, config)
        self._sub = await js.pull_subscribe_bind(self.durable, self.log.stream)

    async def _run(self) -> None:
        idle = 0
        while True:
            try:
                msgs = await self._sub.fetch(BATCH, timeout=1.0)
            except (NatsTimeoutError, asyncio.TimeoutError):
                idle += 1
                if idle % 5 == 0:
                    await self._check_stalled()
                continue
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - keep the projection alive across blips
                self.last_error = f"fetch failed: {err!r}"
                log.warning("projection=%s fetch_error=%r", self.durable, err)
                await asyncio.sleep(0.5)
                continue
            events = [
                Event.from_message(m.data, m.metadata.sequence.stream, m.headers) for m in msgs
            ]
            try:
                applied = await asyncio.to_thread(self.store.apply, events, self.handler)
            except Exception as err:  # noqa: BLE001 - a bad batch must not kill the service
                self.last_error = f"apply failed at seq {events[0].sequence}: {err!r}"
                log.exception("projection=%s apply_error", self.durable)
                await asyncio.sleep(1.0)
                await self._bind()  # redeliver from the committed position
                continue
            self.last_error = None
            idle = 0
            await msgs[-1].ack()
            async with self._cond:
                self.applied = applied
                self._cond.notify_all()
            if self.after_batch is not None:
                await self.after_batch(events)

    async def _check_stalled(self) -> None:
        """Idle but behind the stream: the consumer lost its place, so bind it again."""
        try:
            last = await self.log.last_sequence()
            if last > self.applied:
                info = await self.log.js.consumer_info(self.log.stream, self.durable)
                if info.num_pending > 0:
                    log.warning("projection=%s stalled at=%d pending=%d; rebinding",
                                self.durable, self.applied, info.num_pending)
                    await self._bind()
        except Exception as err:  # noqa: BLE001 - a failed check is retried on the next idle tick
            log.warning("projection=%s stall_check_error=%r", self.durable, err)

    async def wait_for(self, sequence: int, timeout: float = 10.0) -> None:
        """Return once the projection has applied ``sequence``."""
        if self.applied >= sequence:
            return
        try:
            async with self._cond:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.applied >= sequence), timeout
                )
        except asyncio.TimeoutError:
            raise Unavailable(
                f"projection {self.durable} did not reach sequence {sequence} in {timeout:.0f}s "
                f"(at {self.applied}); the write is in the log and will appear shortly"
            ) from None

    async def rebuild(self) -> int:
        """Drop the read model and replay the whole log into it; returns the sequence reached."""
        await self.stop()
        await asyncio.to_thread(self.store.reset)
        await self.start()
        target = await self.log.last_sequence()
        await self.wait_for(target, timeout=600)
        return self.applied
