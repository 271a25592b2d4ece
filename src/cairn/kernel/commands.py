"""Command handling: load an aggregate's state, decide events, append with optimistic
concurrency and idempotency, and answer once the projection shows the result.

A decision that reads other aggregates too (a model name must be unique among the project's
models, each its own aggregate) is guarded: see :class:`Guard` and :meth:`CommandHandler.execute_guarded`."""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cairn.kernel.consistency import note_appended
from cairn.kernel.envelope import Event, subject_for, subject_matches
from cairn.kernel.errors import ConcurrencyConflict
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.schemas import current_version, validate_event
from cairn.kernel.store import SqliteStore, load_state

MAX_ATTEMPTS = 5


class Fence(Protocol):
    """A singleton's lease (cairn.kernel.leader.Lease): ``fence()`` raises NotLeader unless this
    process still holds it, else returns the fencing token that the event carries."""

    def fence(self) -> str: ...


@dataclass(frozen=True)
class CommandContext:
    """Who asked, and how to tie the resulting events to the request. ``fence``: the command is a
    singleton leader's, checked right before each append (a leader that lost its lease appends
    nothing) and its token carried in the event's ``Cairn-Leader-Term`` header."""

    actor: str = "anonymous"
    correlation_id: str | None = None
    idempotency_key: str | None = None
    traceparent: str | None = None
    fence: Fence | None = None


@dataclass(frozen=True)
class Outcome:
    """What a command did: the event it appended (or found, for a repeated request)."""

    sequence: int
    aggregate_id: str
    type: str
    duplicate: bool = False


# decide(state) -> (event type, data); may raise a CairnError; returns None for a no-op. Events that
# belong together are one event (a run created with its record is one run.created): an atomic batch
# of several costs nats-server a temporary file store per append.
Decision = tuple[str, dict[str, Any]] | None
Decide = Callable[[dict[str, Any] | None], Decision]
# decide(state, view): the same, for a guarded command, with the guard's view of the other aggregates.
GuardedDecide = Callable[[dict[str, Any] | None, Any], Decision]


@dataclass(frozen=True)
class Guard:
    """What a decision reads beyond its own aggregate: ``subjects`` (a wildcard, e.g. every model
    of a project) and ``load``, which reads the read model's view of them. The event is appended
    expecting the last sequence of ALL those subjects, so two commands that decided on the same
    view (two creates of one name) cannot both land: the loser catches up and decides again.
    The view must be made only of events on ``subjects`` that this service projects: the expected
    sequence is the newest ``aggregates.last_seq`` among them."""

    subjects: str
    load: Callable[[sqlite3.Connection], Any]


class CommandHandler:
    """Runs commands against one service's aggregates."""

    def __init__(self, event_log: EventLog, store: SqliteStore, runner: ProjectionRunner) -> None:
        self.log = event_log
        self.store = store
        self.runner = runner
        self.appended = 0  # the last event appended by execute(wait=False)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def _scoped_key(self, ctx: CommandContext, project: str) -> str | None:
        if not ctx.idempotency_key:
            return None
        return f"{ctx.actor}:{project}:{ctx.idempotency_key}"

    def remembered(self, ctx: CommandContext, project: str) -> Outcome | None:
        """What a command under ``ctx``'s idempotency key already did in ``project`` (None: nothing
        yet, or no key). For a command with side effects before its own append (starting a
        pipeline run cancels older runs first), so a retried request repeats none of them."""
        return self._remembered(self._scoped_key(ctx, project))

    def _remembered(self, key: str | None) -> Outcome | None:
        if key is None:
            return None
        row = self.store.query_one(
            "SELECT seq, aggregate_id, type FROM idempotency WHERE key=?", (key,)
        )
        if row is None:
            return None
        note_appended(row["seq"])  # a repeated request answers with its first event's sequence too
        return Outcome(row["seq"], row["aggregate_id"], row["type"], duplicate=True)

    async def execute(
        self,
        ctx: CommandContext,
        *,
        project: str,
        aggregate: str,
        aggregate_id: str,
        decide: Decide,
        wait: bool = True,
    ) -> Outcome:
        """Decide and append one event for an aggregate; 409 after bounded conflicting retries.
        With ``wait=False`` the answer comes once the event is durable in the log, before the
        projection shows it: reads that must see it call :meth:`settled` first (and so does the
        next command, before it decides)."""
        subject = subject_for(project, aggregate, aggregate_id)

        def decision() -> tuple[int, Decision]:
            last_seq, state = self._state(subject)
            return last_seq, decide(state)

        return await self._run(ctx, project, aggregate, aggregate_id, decision, subject, wait)

    async def execute_guarded(
        self,
        ctx: CommandContext,
        *,
        project: str,
        aggregate: str,
        aggregate_id: str,
        guard: Guard,
        decide: GuardedDecide,
        wait: bool = True,
    ) -> Outcome:
        """Like :meth:`execute`, for a decision that also reads ``guard``'s view: the aggregate's
        state, the view and the guard's position are read in one read transaction, and the append
        expects that position on ``guard.subjects`` (which must include the aggregate's own)."""
        subject = subject_for(project, aggregate, aggregate_id)
        if not subject_matches(guard.subjects, subject):
            raise ValueError(f"guard {guard.subjects!r} does not cover the aggregate's subject {subject!r}")

        def decision() -> tuple[int, Decision]:
            with self.store.snapshot() as conn:
                _, state = load_state(conn, subject)
                position = _last_seq_matching(conn, guard.subjects)
                view = guard.load(conn)
            return position, decide(state, view)

        return await self._run(ctx, project, aggregate, aggregate_id, decision, guard.subjects, wait)

    async def _run(self, ctx: CommandContext, project: str, aggregate: str, aggregate_id: str,
                   decision: Callable[[], tuple[int, Decision]], expected_on: str, wait: bool) -> Outcome:
        """The retry loop: ``decision`` returns the sequence last seen on ``expected_on`` (the
        aggregate's subject, or a guard's wildcard) and what to append."""
        subject = subject_for(project, aggregate, aggregate_id)
        key = self._scoped_key(ctx, project)
        async with self._lock(key or subject), self._lock(subject) if key else _nullcontext():
            await self.settled()
            for _attempt in range(MAX_ATTEMPTS):
                remembered = self._remembered(key)
                if remembered is not None:
                    return remembered
                last_seq, decided = decision()
                if decided is None:
                    return Outcome(last_seq, aggregate_id, "noop")
                event_type, data = decided
                event = Event(
                    type=event_type,
                    version=current_version(event_type),
                    project=project,
                    aggregate=aggregate,
                    aggregate_id=aggregate_id,
                    data=data,
                    actor=ctx.actor,
                    correlation_id=ctx.correlation_id,
                    traceparent=ctx.traceparent,
                    leader_term=ctx.fence.fence() if ctx.fence is not None else None,
                )
                validate_event(event)
                try:
                    appended = await self.log.append(
                        event, expected_last_subject_seq=last_seq, msg_id=key,
                        expected_subject=None if expected_on == subject else expected_on,
                    )
                except ConcurrencyConflict:
                    # Someone else wrote first: catch up with the log, then decide again.
                    target = await self.log.last_subject_sequence(expected_on)
                    await self.runner.wait_for(target)
                    continue
                if not wait and not appended.duplicate:
                    self.appended = max(self.appended, appended.sequence)
                    return Outcome(appended.sequence, aggregate_id, event_type)
                await self.runner.wait_for(appended.sequence)
                if appended.duplicate:
                    remembered = self._remembered(key)
                    if remembered is not None:
                        return remembered
                return Outcome(appended.sequence, aggregate_id, event_type)
        raise ConcurrencyConflict(
            f"{aggregate} {aggregate_id} is being changed by other requests; "
            f"gave up after {MAX_ATTEMPTS} attempts, retry later",
            details={"aggregate": aggregate, "id": aggregate_id},
        )

    async def settled(self) -> None:
        """Return once the projection shows every event appended with ``wait=False``."""
        await self.runner.wait_for(self.appended)

    def _state(self, subject: str) -> tuple[int, dict[str, Any] | None]:
        return load_state(self.store.reader(), subject)


def _last_seq_matching(conn: sqlite3.Connection, pattern: str) -> int:
    """The newest event on any subject matching ``pattern``, as far as the projection has seen
    (the rows share the pattern's literal prefix, so the primary key narrows the scan)."""
    prefix = pattern.split("*", 1)[0].split(">", 1)[0]
    rows = conn.execute("SELECT subject, last_seq FROM aggregates WHERE subject >= ? AND subject < ?",
                        (prefix, prefix + "\U0010ffff"))
    return max((int(seq) for subject, seq in rows if subject_matches(pattern, subject)), default=0)


class _nullcontext:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None
