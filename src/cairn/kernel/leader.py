"""Singletons in a cluster: one replica leads each singleton loop (the scheduler's dispatcher, the
pipeline engine, ...), elected through a lease in the JetStream key-value bucket ``cairn-leases``.

Why a key-value lease: the bucket is a JetStream stream, so its writes are replicated by NATS's own
RAFT (``CAIRN_REPLICAS``) and every write can name the revision it expects (optimistic
concurrency). That gives the three things election needs without anything home-made:

- acquire: ``create`` (only when the key is absent) or ``update`` at the revision read, when the
  lease read has expired (or was held under this replica's own name: a restarted process of the
  same replica takes its lease back at once, so a single ``cairn up`` never waits);
- renew: ``update`` at the revision this holder last wrote. If that fails, someone else wrote the
  key: this replica steps down at once (its work is cancelled);
- fencing: the ``term`` grows with every new holder and is the fencing token. Before each action a
  leader checks it still holds the lease by its OWN monotonic clock (the deadline is counted from
  before the write that set it, so it ends no later than the lease others see): a process paused
  past its lease (SIGSTOP, a long GC, a frozen VM) finds the deadline passed when it resumes and
  acts no more. Events a leader appends carry ``Cairn-Leader-Term: <name>:<term>``
  (:meth:`Lease.fence` through ``CommandContext.fence``), so a stale leader's append can be told
  apart afterwards; the appends themselves also use ``Nats-Expected-Last-Subject-Sequence``, so a
  stale leader's decision on an aggregate that the new leader moved on is refused by the server.

Readers compare ``expires_at`` with their own wall clock: replicas' clocks must agree (NTP) to well
under ``lease_s - renew_s``. Timing defaults (6 s lease, renewed every 2 s) let a standby take over
within 8 s of a leader's death; ``CAIRN_LEADER_LEASE_S`` and ``CAIRN_LEADER_RENEW_S`` change them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cairn.kernel.errors import NotLeader
from cairn.kernel.tasks import stop_tasks
from cairn.protocol import LEASE_BUCKET

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class LeaseRecord:
    """The value of a lease key (the shape ``cairn status`` reads)."""

    holder: str
    term: int
    expires_at: float

    def to_json(self) -> bytes:
        return json.dumps({"holder": self.holder, "term": self.term, "expires_at": self.expires_at}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "LeaseRecord":
        body = json.loads(raw)
        return cls(str(body["holder"]), int(body["term"]), float(body["expires_at"]))


class LeaseTiming(BaseSettings):
    """How long a lease lasts and how often its holder renews it (CAIRN_LEADER_LEASE_S,
    CAIRN_LEADER_RENEW_S): a standby takes over at most ``lease_s + renew_s`` after the
    leader's last renewal; ``renew_s`` well under ``lease_s`` lets a renewal miss once."""

    model_config = SettingsConfigDict(env_prefix="CAIRN_LEADER_", extra="ignore")

    lease_s: float = Field(default=6.0, gt=0)
    renew_s: float = Field(default=2.0, gt=0)


class LeaseConflict(Exception):
    """The key was written by someone else since the revision named (or exists, for a create)."""


class LeaseStore(Protocol):
    """The key-value operations a lease needs (the port; :class:`JetStreamLeases` is the adapter)."""

    async def read(self, key: str) -> tuple[LeaseRecord, int] | None: ...

    async def create(self, key: str, record: LeaseRecord) -> int: ...

    async def update(self, key: str, record: LeaseRecord, revision: int) -> int: ...


class JetStreamLeases:
    """Leases in the ``cairn-leases`` bucket (history 1: only the current holder matters)."""

    def __init__(self, kv: Any) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: Any, *, replicas: int = 1) -> "JetStreamLeases":
        """The bucket, made the first time (by whichever replica starts first; making it again
        with the same configuration is a no-op, so two replicas racing both succeed)."""
        try:
            kv = await js.key_value(LEASE_BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(bucket=LEASE_BUCKET, history=1, replicas=replicas,
                                           description="leases of singleton loops (cairn.kernel.leader)")
        return cls(kv)

    async def read(self, key: str) -> tuple[LeaseRecord, int] | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:  # absent, or deleted by an operator
            return None
        if not entry.value:
            return None
        return LeaseRecord.from_json(entry.value), int(entry.revision)

    async def create(self, key: str, record: LeaseRecord) -> int:
        try:
            return int(await self.kv.create(key, record.to_json()))
        except KeyWrongLastSequenceError:
            raise LeaseConflict(key) from None

    async def update(self, key: str, record: LeaseRecord, revision: int) -> int:
        try:
            return int(await self.kv.update(key, record.to_json(), last=revision))
        except KeyWrongLastSequenceError:
            raise LeaseConflict(key) from None


class Lease:
    """One process's claim on one singleton's lease. Pure logic over a :class:`LeaseStore`; both
    clocks are injectable (``clock``: wall time, written as ``expires_at`` and compared with
    others' ``expires_at``; ``monotonic``: this holder's own deadline, which keeps counting while
    the process is paused)."""

    def __init__(self, store: LeaseStore, name: str, holder: str, timing: LeaseTiming | None = None, *,
                 clock: Clock = time.time, monotonic: Clock = time.monotonic) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.timing = timing or LeaseTiming()
        self.clock = clock
        self.monotonic = monotonic
        self.term: int | None = None  # set while this process believes it leads
        self.revision = 0
        self.deadline = 0.0  # on ``monotonic``: after it this holder does nothing as leader
        self.on_lost: Callable[[], None] | None = None  # the elector's nudge: step down now

    def holds(self) -> bool:
        """Whether this process holds the lease by its own clock (no I/O: cheap before each act)."""
        return self.term is not None and self.monotonic() < self.deadline

    def fence(self) -> str:
        """The fencing token ``<name>:<term>`` if this process still holds the lease, else
        :class:`NotLeader` (called right before each append a leader makes)."""
        if not self.holds():
            raise NotLeader(f"this replica ({self.holder}) no longer holds the {self.name} lease")
        return f"{self.name}:{self.term}"

    async def confirm(self) -> bool:
        """Whether the lease in the bucket is still the one this holder last wrote (and not
        expired by its own clock): one read, before a round of actions."""
        if not self.holds():
            return False
        current = await self.store.read(self.name)
        if current is None or current[1] != self.revision or current[0].holder != self.holder:
            self.lose()
            return False
        return self.holds()

    async def campaign(self) -> bool:
        """Take the lease if it is free (absent, expired, or this replica's own); True if held."""
        if self.holds():
            return await self.renew()
        started = self.monotonic()
        current = await self.store.read(self.name)
        now = self.clock()
        try:
            if current is None:
                term = 1
                revision = await self.store.create(self.name, LeaseRecord(self.holder, term, now + self.timing.lease_s))
            else:
                record, revision = current
                if record.expires_at > now and record.holder != self.holder:
                    return False
                term = record.term + 1
                revision = await self.store.update(
                    self.name, LeaseRecord(self.holder, term, now + self.timing.lease_s), revision)
        except LeaseConflict:
            return False  # another replica got there first
        self.term, self.revision, self.deadline = term, revision, started + self.timing.lease_s
        log.info("lease=%s holder=%s term=%d acquired", self.name, self.holder, term)
        return True

    async def renew(self) -> bool:
        """Extend the lease at the revision last written; False (and stepped down) if it was lost."""
        if not self.holds():
            self.lose()
            return False
        assert self.term is not None
        started = self.monotonic()
        try:
            revision = await self.store.update(
                self.name, LeaseRecord(self.holder, self.term, self.clock() + self.timing.lease_s), self.revision)
        except LeaseConflict:
            self.lose()
            return False
        self.revision, self.deadline = revision, started + self.timing.lease_s
        return True

    async def release(self, within_s: float = 1.0) -> None:
        """Give the lease up on a clean stop (expired at once, so a standby need not wait). Best
        effort, for at most ``within_s``: with NATS away the write would wait for its timeout (5 s
        per lease) and hold up the process's stop, while the lease expires by itself anyway."""
        if self.holds():
            term = self.term
            assert term is not None

            async def expire() -> bool:
                try:
                    await self.store.update(self.name, LeaseRecord(self.holder, term, 0.0), self.revision)
                except LeaseConflict:
                    pass
                return True

            if await _within(within_s, expire()):
                log.info("lease=%s holder=%s term=%d released", self.name, self.holder, term)
        self.term = None
        self.deadline = 0.0

    def lose(self) -> None:
        if self.term is not None:
            log.warning("lease=%s holder=%s term=%d lost", self.name, self.holder, self.term)
            if self.on_lost is not None:
                self.on_lost()
        self.term = None
        self.deadline = 0.0


Work = Callable[[Lease], Coroutine[Any, Any, None]]


class Elector:
    """Campaigns for one lease and runs ``work`` (a coroutine that runs until cancelled) while
    holding it: started on election, cancelled at once when a renewal fails or the lease's own
    deadline passes. ``start`` tries once before returning, so a lone replica leads at once."""

    def __init__(self, lease: Lease, work: Work) -> None:
        self.lease = lease
        self.work = work
        self._loop: asyncio.Task[None] | None = None
        self._work: asyncio.Task[None] | None = None
        self._stepping: set[asyncio.Task[None]] = set()
        lease.on_lost = self._lost

    @property
    def leading(self) -> bool:
        return self._work is not None and self.lease.holds()

    async def start(self) -> None:
        await self._tick()
        self._loop = asyncio.create_task(self._run(), name=f"elector-{self.lease.name}")

    async def stop(self) -> None:
        await stop_tasks(self._loop)
        await self._step_down()
        try:
            await self.lease.release()
        except Exception:  # noqa: BLE001 - the connection may be closing; the lease then expires by itself
            self.lease.lose()

    async def _run(self) -> None:
        timing = self.lease.timing
        while True:
            wait = timing.renew_s
            if self._work is not None:  # wake no later than the deadline, to stop at it
                wait = max(0.0, min(wait, self.lease.deadline - self.lease.monotonic()))
            await asyncio.sleep(wait)
            await self._tick()

    async def _tick(self) -> None:
        """One renewal (or campaign): a renewal is cut off at the lease's own deadline, so a
        leader whose NATS went quiet stops acting in time."""
        was_leading = self._work is not None
        try:
            if was_leading:
                left = self.lease.deadline - self.lease.monotonic()
                held = left > 0 and await _within(left, self.lease.renew())
            else:
                held = await self.lease.campaign()
        except Exception as err:  # noqa: BLE001 - NATS unreachable: retried next tick
            log.warning("lease=%s renewal_failed=%r", self.lease.name, err)
            held = self.lease.holds()
        if not held:
            self.lease.lose()
            await self._step_down()
        elif self._work is None or self._work.done():
            self._start_work()

    def _lost(self) -> None:
        """The work (or a renewal) found the lease lost: cancel the work now, not at the next tick."""
        task = asyncio.get_running_loop().create_task(self._step_down())
        self._stepping.add(task)
        task.add_done_callback(self._stepping.discard)

    def _start_work(self) -> None:
        if self._work is not None and self._work.done() and not self._work.cancelled() \
                and self._work.exception() is not None:
            log.error("lease=%s work failed; starting it again", self.lease.name, exc_info=self._work.exception())
        self._work = asyncio.create_task(self.work(self.lease), name=f"leader-{self.lease.name}")

    async def _step_down(self) -> None:
        work, self._work = self._work, None
        await stop_tasks(work)


async def _within(seconds: float, renewal: Coroutine[Any, Any, bool]) -> bool:
    """``renewal``'s answer, or False once ``seconds`` have passed (the renewal is then cancelled).
    Not ``asyncio.wait_for``, which on Python 3.11 could keep a cancelled elector waiting."""
    task = asyncio.ensure_future(renewal)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return bool(task.result()) if done else False


def holder_name(service: str, replica: str) -> str:
    """``<service>/<replica or 'main'>``: who holds a lease, as the bucket shows it."""
    return f"{service}/{replica or 'main'}"


async def run_singleton(runtime: Any, name: str, work: Work) -> Elector:
    """Run ``work`` on whichever replica of the service holds the lease ``name``: the elector is
    registered on the runtime (its /healthz lists the leases it holds) and stopped with it."""
    leases = getattr(runtime, "lease_store", None)
    if leases is None:
        leases = await JetStreamLeases.open(runtime.log.js, replicas=runtime.log.replicas)
        runtime.lease_store = leases
    lease = Lease(leases, name, holder_name(runtime.name, runtime.settings.replica))
    elector = Elector(lease, work)
    runtime.leases.append(lease)
    await elector.start()
    runtime.defer(elector.stop)
    return elector


def without_lease(loop: Callable[[], Awaitable[Any]]) -> Work:
    """Adapt a loop that does not look at the lease (``engine.run``) to :data:`Work`."""

    async def work(_lease: Lease) -> None:
        await loop()

    return work
