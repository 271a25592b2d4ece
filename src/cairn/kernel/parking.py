"""Poison events: an event a projection cannot apply is parked, never retried for ever.

Parking rolls the read model back to just before the event (a savepoint), stores the event and
its error in the ``parked_events`` table, and moves the position past it, in the transaction
that applies the rest of the batch: the service stays ready and the event is parked once.

What parks: any ``Exception`` the handler raises for the event (a domain error, a KeyError from
data the projection did not expect, an IntegrityError), because applying the same event again
gives the same error. What does not park: errors of the machine rather than of the event
(``TRANSIENT_ERRORS``: SQLite's OperationalError such as a locked or full database, OSError,
MemoryError); the batch is rolled back and retried as before, and ``/healthz`` says not ready.

Site admins retry or skip a parked event by appending ``projection.event_retried`` or
``projection.event_skipped`` on the service's control subject (``_site.projection.<service>``).
The projection acts on them when it reads them, so the decision is an event of record: a
rebuild replays it at the same place and ends with the same read model and the same parked set.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from cairn.kernel.envelope import Event, subject_for
from cairn.kernel.errors import CairnError

SITE_PROJECT = "_site"  # site-level aggregates (the gateway's SITE)
CONTROL_AGGREGATE = "projection"
PARKED = "projection.event_parked"
RETRIED = "projection.event_retried"
SKIPPED = "projection.event_skipped"
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, OSError, MemoryError)
MAX_ERROR = 2000

Handler = Callable[[sqlite3.Connection, Event], None]


@dataclass(frozen=True)
class ParkedEvent:
    """An event a projection set aside, and why."""

    sequence: int
    subject: str
    type: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_poison(error: BaseException) -> bool:
    """True when applying the event again would fail again: the event is parked."""
    return isinstance(error, Exception) and not isinstance(error, TRANSIENT_ERRORS)


def describe(error: BaseException) -> str:
    message = error.message if isinstance(error, CairnError) else str(error)
    return f"{type(error).__name__}: {message}"[:MAX_ERROR]


def control_subject(service: str) -> str:
    """Where a service's parking decisions and notices are appended."""
    return subject_for(SITE_PROJECT, CONTROL_AGGREGATE, service)


def is_control(event: Event) -> bool:
    return event.project == SITE_PROJECT and event.aggregate == CONTROL_AGGREGATE


def _flush(conn: sqlite3.Connection, handler: Handler) -> None:
    """Write what a batch-aware handler holds in memory (aggregate snapshots), so that rolling
    back to a savepoint cannot lose another event's changes."""
    end_batch = getattr(handler, "end_batch", None)
    if end_batch is not None:
        end_batch(conn)


def apply_guarded(conn: sqlite3.Connection, handler: Handler, event: Event) -> str | None:
    """Apply one event under a savepoint; on a poison error undo just it and return the error."""
    _flush(conn, handler)
    conn.execute("SAVEPOINT event")
    try:
        handler(conn, event)
        _flush(conn, handler)
    except Exception as error:
        if not is_poison(error):
            raise
        conn.execute("ROLLBACK TO event")
        conn.execute("RELEASE event")
        begin_batch = getattr(handler, "begin_batch", None)
        if begin_batch is not None:
            begin_batch()  # forget the snapshots the failed event changed in memory
        return describe(error)
    conn.execute("RELEASE event")
    return None


def park_event(conn: sqlite3.Connection, event: Event, error: str) -> ParkedEvent:
    body = json.dumps(asdict(event), separators=(",", ":"), sort_keys=True)
    conn.execute(
        "INSERT INTO parked_events(seq, subject, type, event, error) VALUES(?, ?, ?, ?, ?) "
        "ON CONFLICT(seq) DO UPDATE SET error=excluded.error",
        (event.sequence, event.subject, event.type, body, error),
    )
    return ParkedEvent(event.sequence, event.subject, event.type, error)


def stored_event(conn: sqlite3.Connection, sequence: int) -> Event | None:
    row = conn.execute("SELECT event FROM parked_events WHERE seq=?", (sequence,)).fetchone()
    return None if row is None else Event(**json.loads(row[0]))


def apply_control(conn: sqlite3.Connection, handler: Handler, event: Event, service: str) -> bool:
    """Act on a retry or skip addressed to ``service`` and return True; False for any other event,
    which goes to the handler (notices too: a webhook may forward them to an alerting system)."""
    if not is_control(event) or event.aggregate_id != service or event.type not in (RETRIED, SKIPPED):
        return False
    sequence = event.data.get("sequence")
    if not isinstance(sequence, int):
        return True  # not a decision this version understands: nothing to do
    parked = stored_event(conn, sequence)
    if parked is None:
        return True  # retried or skipped already
    error = None if event.type == SKIPPED else apply_guarded(conn, handler, parked)
    if error is None:
        conn.execute("DELETE FROM parked_events WHERE seq=?", (sequence,))
    else:
        conn.execute("UPDATE parked_events SET error=? WHERE seq=?", (error, sequence))
    return True


def list_parked(conn: sqlite3.Connection, *, after: int = 0, limit: int = 100) -> list[ParkedEvent]:
    rows = conn.execute("SELECT seq, subject, type, error FROM parked_events WHERE seq>? ORDER BY seq "
                        "LIMIT ?", (after, limit)).fetchall()
    return [ParkedEvent(int(r[0]), r[1], r[2], r[3]) for r in rows]


def parked_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM parked_events").fetchone()[0])


def notice(service: str, parked: ParkedEvent) -> Event:
    """The ``projection.event_parked`` event that tells subscribers (alerts) about a parking."""
    return Event(type=PARKED, project=SITE_PROJECT, aggregate=CONTROL_AGGREGATE, aggregate_id=service,
                 actor=f"service:{service}",
                 data={"service": service, "sequence": parked.sequence, "subject": parked.subject,
                       "event_type": parked.type, "error": parked.error})


def decision(kind: str, service: str, sequence: int, actor: str) -> Event:
    """An admin's ``projection.event_retried`` or ``projection.event_skipped``."""
    return Event(type=kind, project=SITE_PROJECT, aggregate=CONTROL_AGGREGATE, aggregate_id=service,
                 actor=actor, data={"service": service, "sequence": sequence})
