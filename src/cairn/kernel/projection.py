"""Projection runner: a durable push consumer feeding a read model's store, batch by batch.

Each batch is applied and the tracking position moved in one SQLite transaction; the consumer is
(re)created at start from the stored position, so the read model resumes exactly where it
committed. ``wait_for(seq)`` lets a command handler answer only once its event is visible.

A projection that reads only some aggregates names their subjects (``filter_subjects``): the
server then delivers only those events, instead of every service decoding every event to drop
most. Its ``applied`` position jumps over the others once the consumer has nothing pending.
A ``before_apply`` callback may change the filter mid-batch with ``refilter``.

An event the handler cannot apply is parked (``cairn.kernel.parking``): a batch that fails is
applied again event by event, the failing events set aside with their errors, the good ones
applied, and each parking announced with a ``projection.event_parked`` event. Errors of the
machine (``TRANSIENT_ERRORS``) and of ``before_apply`` still retry the batch from the position.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from nats import errors as nats_errors
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from cairn.kernel.envelope import SUBJECT_PREFIX, Event
from cairn.kernel.errors import Unavailable
from cairn.kernel.eventlog import EventLog
from cairn.kernel.parking import (
    CONTROL_AGGREGATE,
    ParkedEvent,
    control_subject,
    describe,
    is_poison,
    notice,
)
from cairn.kernel.schemas import validate_event
from cairn.kernel.store import EventHandler, ParkingStore, ProjectionStore
from cairn.kernel.tasks import stop_tasks

log = logging.getLogger(__name__)

BATCH = 512
INLINE_BATCH = 16  # batches up to this many events are applied on the event loop
MAX_IN_FLIGHT = 4096


class ProjectionRunner:
    """Keeps one projection up to date with the event log."""

    def __init__(
        self,
        event_log: EventLog,
        store: ProjectionStore,
        handler: EventHandler,
        *,
        durable: str,
        filter_subjects: Sequence[str] | None = None,
        after_batch: Callable[[list[Event]], Awaitable[None]] | None = None,
        before_apply: Callable[[list[Event]], Awaitable[None]] | None = None,
        batch: int = BATCH,
        min_interval_s: float = 0.0,
        inline_batch: int = INLINE_BATCH,
        service: str | None = None,
        parking: bool = False,
    ) -> None:
        self.log = event_log
        self.store = store
        self.handler = handler
        self.durable = durable
        self.service = service or durable.removeprefix("projection-")
        # read models park poison events (a store that can: SQLite); a consumer that acts on
        # events (the webhooks' outbox) and other stores retry a failing batch
        self.parking = parking and isinstance(store, ParkingStore)
        self.filter_subjects = list(filter_subjects or [])  # none: every event
        if self.filter_subjects and self.parking:
            self.filter_subjects.append(control_subject(self.service))  # admins' retry/skip
        self.parked: list[ParkedEvent] = []  # parked by the last batch, to announce
        self.after_batch = after_batch
        self.before_apply = before_apply  # side effects that must happen before the position moves
        self.batch = min(batch, MAX_IN_FLIGHT)  # events per apply, at most what may be in flight
        # A store whose transaction costs the same for 5 events or 5,000 (DuckDB) applies at most
        # this often, so a steady trickle of events comes in batches instead of one by one.
        self.min_interval_s = min_interval_s
        self.inline_batch = inline_batch
        self.applied = store.last_sequence()
        self.last_error: str | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # heap by sequence
        self._waiter_ids = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._cut: int | None = None  # set by refilter: the batch ends at this sequence
        self._sub: Any = None
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._next_delivery = 1  # the consumer sequence the next message must carry

    async def start(self) -> None:
        await self._bind()
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.durable}")

    async def stop(self) -> None:
        if self._task:
            await stop_tasks(self._task)
            self._task = None
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass
            self._sub = None

    def refilter(self, subjects: Sequence[str], *, upto: int) -> None:
        """Read ``subjects`` instead. Called from ``before_apply`` that handled the batch only up to
        ``upto``: those events are committed, then the consumer is bound again from there, so all
        that follows (the rest of the batch included) is read under the new filter."""
        self.filter_subjects = list(subjects)
        if self.filter_subjects and self.parking:
            self.filter_subjects.append(control_subject(self.service))
        self._cut = upto

    async def _bind(self) -> None:
        """(Re)create the durable push consumer from the committed position."""
        js = self.log.js
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the old subscription may be gone already
                pass
        self._queue = asyncio.Queue()
        self._next_delivery = 1  # a consumer made afresh numbers its deliveries from 1
        start = self.store.last_sequence()
        self.applied = start
        try:
            await js.delete_consumer(self.log.stream, self.durable)
        except NotFoundError:
            pass
        config = js_api.ConsumerConfig(
            ack_policy=js_api.AckPolicy.ALL,
            max_ack_pending=MAX_IN_FLIGHT,
            ack_wait=60,
            deliver_policy=(
                js_api.DeliverPolicy.BY_START_SEQUENCE if start else js_api.DeliverPolicy.ALL
            ),
            opt_start_seq=start + 1 if start else None,
            filter_subjects=self.filter_subjects or None,
        )
        queue = self._queue

        async def enqueue(msg: Msg) -> None:
            queue.put_nowait(msg)

        self._sub = await js.subscribe(f"{SUBJECT_PREFIX}.>", durable=self.durable, stream=self.log.stream,
                                       config=config, cb=enqueue, manual_ack=True,
                                       pending_msgs_limit=MAX_IN_FLIGHT * 2)

    async def _next_batch(self) -> list[Msg]:
        """Wait up to a second for one message, then take whatever else has already arrived."""
        first = await asyncio.wait_for(self._queue.get(), timeout=1.0)
        return [first, *self._take_waiting(self.batch - 1)]

    def _take_waiting(self, limit: int) -> list[Msg]:
        """Up to ``limit`` messages that have already arrived, without waiting."""
        queue = self._queue
        taken: list[Msg] = []
        while len(taken) < limit and not queue.empty():
            taken.append(queue.get_nowait())
        return taken

    async def _run(self) -> None:
        """The fetch-and-apply loop, started again from the committed position when anything in
        it fails unexpectedly (an acknowledgement on a broken connection, an after-batch hook): a
        projection must never stop silently while callers wait for it to move."""
        while True:
            try:
                await self._fetch_and_apply()
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - logged, then the loop starts again
                self.last_error = f"projection loop failed: {err!r}"
                log.exception("projection=%s loop_error; starting again", self.durable)
                await asyncio.sleep(1.0)
                try:
                    await self._bind()
                except Exception as bind_error:  # noqa: BLE001 - NATS away: the stall check retries
                    log.warning("projection=%s rebind_failed=%r", self.durable, bind_error)

    async def _fetch_and_apply(self) -> None:
        idle = 0
        loop = asyncio.get_running_loop()
        next_apply = 0.0
        while True:
            try:
                msgs = await self._next_batch()
            except asyncio.TimeoutError:
                idle += 1
                if idle % 5 == 0:
                    await self._check_stalled()
                continue
            if self.min_interval_s > 0:
                wait = next_apply - loop.time()
                catching_up = bool(msgs[-1].metadata.num_pending)  # more is on its way already
                if wait > 0 and len(msgs) < self.batch and not catching_up:
                    await asyncio.sleep(wait)  # let more of the trickle arrive, then take it all
                    msgs.extend(self._take_waiting(self.batch - len(msgs)))
                next_apply = loop.time() + self.min_interval_s
            if self._lost_delivery(msgs):
                await self._bind()  # from the committed position: what was lost comes again
                continue
            events = [Event.from_message(m.data, m.metadata.sequence.stream, m.headers) for m in msgs]
            try:
                if self.before_apply is not None:
                    await self.before_apply(events)
                cut, self._cut = self._cut, None
                if cut is not None:
                    events = [e for e in events if e.sequence <= cut]
                applied = await self._apply(events) if events else self.applied
            except Exception as err:  # noqa: BLE001 - a bad batch must not kill the service
                self._cut = None
                self.last_error = f"apply failed at seq {events[0].sequence}: {err!r}"
                log.exception("projection=%s apply_error", self.durable)
                await asyncio.sleep(1.0)
                await self._bind()  # redeliver from the committed position
                continue
            self.last_error = None
            idle = 0
            if cut is not None:
                await self._bind()  # the new filter, from the position just committed
                if not events:
                    continue
            else:
                await msgs[-1].ack()
            self.applied = max(self.applied, applied)  # a caught-up check may have moved it further
            self._wake(self.applied)
            if self.parked:
                await self._announce(self.parked)
            if self.after_batch is not None:
                await self.after_batch(events)

    def _lost_delivery(self, msgs: list[Msg]) -> bool:
        """Whether a delivery never arrived (its consumer sequence was skipped). A push consumer's
        messages travel as plain NATS messages: those sent while the connection moves to another
        server (a node died or was cut off) are lost, yet counted delivered, and acknowledging a
        later one (AckAll) would acknowledge them unapplied: the read model would silently miss
        them (tests/cluster/test_failures.py saw a lineage replica miss a ``job.succeeded``)."""
        for msg in msgs:
            delivery = msg.metadata.sequence.consumer
            if delivery != self._next_delivery:
                log.warning("projection=%s delivery_gap expected=%d got=%d; binding again",
                            self.durable, self._next_delivery, delivery)
                return True
            self._next_delivery = delivery + 1
        return False

    async def _apply(self, events: list[Event]) -> int:
        """Apply a batch whole; when an event in it is poison, again event by event, parking
        what fails (``self.parked``)."""
        self.parked = []
        try:
            return await self._apply_in_store(events, park=False)
        except Exception as error:
            if not self.parking or not is_poison(error):
                raise
            log.warning("projection=%s batch_failed at=%d error=%r; applying event by event",
                        self.durable, events[0].sequence, describe(error))
            return await self._apply_in_store(events, park=True)

    def _store_apply(self, events: list[Event], park: bool) -> int:
        if not self.parking:
            return self.store.apply(events, self.handler)
        applied, self.parked = cast(ParkingStore, self.store).apply_parking(
            events, self.handler, service=self.service, park=park)
        return applied

    async def _apply_in_store(self, events: list[Event], *, park: bool) -> int:
        """A small batch is applied right here (a worker thread's hand-off costs more than its
        transaction), a larger one in a worker thread. Cancelling (stop, rebuild) waits for the
        thread to finish its transaction: the store must not be reset or closed under it."""
        if len(events) <= self.inline_batch:
            return self._store_apply(events, park)
        applying = asyncio.ensure_future(asyncio.to_thread(self._store_apply, events, park))
        try:
            return await asyncio.shield(applying)
        except asyncio.CancelledError:
            await asyncio.wait([applying])
            raise

    async def _announce(self, parked: list[ParkedEvent]) -> None:
        """Append a ``projection.event_parked`` per parked event, for alerts. Its id is the
        parking's (service, sequence), so a retried batch announces once; a rebuild that parks
        the event again announces it again once the log's duplicate window has passed. A notice
        that cannot be appended is logged: the parking itself is committed already."""
        for item in parked:
            log.error("projection=%s parked seq=%d type=%s error=%r", self.durable, item.sequence,
                      item.type, item.error)
            if item.type.startswith(f"{CONTROL_AGGREGATE}."):
                continue  # a notice that could not be applied announces nothing: no loop of notices
            event = notice(self.service, item)
            try:
                validate_event(event)
                await self.log.append(event, expected_last_subject_seq=None,
                                      msg_id=f"parked:{self.service}:{item.sequence}")
            except Exception as err:  # noqa: BLE001 - an alert lost must not stop the projection
                log.warning("projection=%s park_notice_failed seq=%d error=%r", self.durable, item.sequence, err)
        self.parked = []

    def parked_count(self) -> int | None:
        """How many events this projection has parked; None when its store cannot park."""
        return cast(ParkingStore, self.store).parked_count() if self.parking else None

    def _wake(self, applied: int) -> None:
        while self._waiters and self._waiters[0][0] <= applied:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)

    async def _check_stalled(self) -> None:
        """Idle but behind the stream: if the consumer has events pending it lost its place, so
        bind it again; a filtered one with nothing pending has applied all it reads."""
        try:
            if await self._skip_unread() is False:
                log.warning("projection=%s stalled at=%d; rebinding", self.durable, self.applied)
                await self._bind()
        except Exception as err:  # noqa: BLE001 - a failed check is retried on the next idle tick
            log.warning("projection=%s stall_check_error=%r", self.durable, err)

    async def _skip_unread(self) -> bool | None:
        """Move ``applied`` to the stream's end when no event this projection reads lies between
        it and there: every such event is applied, the rest are other aggregates'. False: one is
        waiting to be applied; None: nothing to decide yet (an unfiltered projection is never
        moved: it applies every event).

        The question goes to the stream's leader (a message get by filter), not to the consumer:
        on a NATS cluster the consumer's leader may be a replica that has not stored an
        acknowledged append yet, and its "nothing pending" would let a read miss a write."""
        last = await self.log.last_sequence()
        if last <= self.applied:
            return None
        if not self.filter_subjects:  # it reads every event: one is waiting unless the consumer is busy
            try:
                info = await self.log.js.consumer_info(self.log.stream, self.durable)
            except NotFoundError:  # being bound again (a refilter, a rebind): nothing to decide yet
                return None
            return False if info.num_pending > 0 else None
        first = await self._next_read(self.applied + 1)
        if first is not None and first <= last:
            return False
        self.applied = max(self.applied, last)
        self._wake(self.applied)
        return True

    async def _next_read(self, start: int) -> int | None:
        """The stream sequence of the first event from ``start`` on that this projection reads."""
        found: list[int] = []
        for subject in self.filter_subjects:
            try:
                msg = await self.log.js.get_msg(self.log.stream, seq=start, subject=subject, next=True)
            except NotFoundError:
                continue
            found.append(int(msg.seq or 0))
        return min(found) if found else None

    async def wait_for(self, sequence: int, timeout: float = 10.0, *, check_first: bool = False) -> None:
        """Return once the projection has applied ``sequence`` (for a filtered projection: or
        everything up to it that it reads). ``check_first``: a filtered projection asks the server
        at once whether it has anything pending (a reader's ``Cairn-Min-Seq`` is often another
        service's event, never delivered here: without it such a read would wait 0.2 s)."""
        if self.applied >= sequence:
            return
        if check_first and self.filter_subjects:
            await self._ask_pending()
            if self.applied >= sequence:
                return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (sequence, next(self._waiter_ids), future))
        try:
            if self.filter_subjects:
                await self._wait_filtered(future, timeout)
            else:
                await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise Unavailable(
                f"projection {self.durable} did not reach sequence {sequence} in {timeout:.0f}s "
                f"(at {self.applied}); the write is in the log and will appear shortly"
            ) from None

    async def wait_past(self, seen: int, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the projection to apply anything after sequence
        ``seen``; True when it has. For a background task that acts whenever the read model moves
        (it wakes at once instead of polling ``applied``)."""
        if self.applied > seen:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (seen + 1, next(self._waiter_ids), future))
        done, _ = await asyncio.wait({future}, timeout=max(0.0, timeout))
        if not done:
            future.cancel()  # popped (and skipped) when the projection gets there
        return self.applied > seen

    async def _wait_filtered(self, future: asyncio.Future[None], timeout: float) -> None:
        """The sequence may be another aggregate's event, never delivered here: ask the server
        every 0.2 s whether anything is pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not future.done():
            left = deadline - loop.time()
            if left <= 0:
                raise asyncio.TimeoutError
            await asyncio.wait({future}, timeout=min(0.2, left))
            if not future.done():
                await self._ask_pending()

    async def _ask_pending(self) -> None:
        """``_skip_unread`` for a waiting reader: a server that does not answer (the stream has no
        leader for a moment: a node died) decides nothing, and the wait goes on to its deadline
        (a 503 then, not a 500 now)."""
        try:
            await self._skip_unread()
        except (nats_errors.Error, asyncio.TimeoutError) as err:
            log.debug("projection=%s pending_check_error=%r", self.durable, err)

    async def rebuild(self) -> int:
        """Drop the read model and replay the whole log into it; returns the sequence reached."""
        await self.stop()
        self.applied = 0  # the read model is empty from here on: nobody may read it as caught up
        await asyncio.to_thread(self.store.reset)
        await self.start()
        target = await self.log.last_sequence()
        await self.wait_for(target, timeout=600)
        return self.applied
