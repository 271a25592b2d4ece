"""Whether this replica's view of one job is as new as the event log, before it says "no".

Why: any scheduler replica answers an agent's report (a NATS queue group), and a replica's read
model can be seconds behind the log (a standby whose NATS node was cut off and healed, a
projection binding its consumer again). Decided on such a view, a report on a job the replica has
not seen assigned yet is refused ("does not exist", or "not current: the job is queued at attempt
1"); the agent takes a refusal as final, stops the attempt or drops its exit report, and the job
stays assigned to an attempt that nobody runs any more (tests/cluster/test_failures.py, scenario
2). A refusal is therefore only given once the replica has applied everything the log holds on the
job's subject, as the stream's leader says (a direct get may be answered by a lagging replica);
until then the report waits, and past the bound the agent is told to retry (503).

The same holds for the leader's stale-attempt stops on heartbeats: a stop on a lagging view would
kill an attempt that is current."""

from __future__ import annotations

import asyncio

from nats import errors as nats_errors
from nats.js.errors import NotFoundError

from cairn.kernel.errors import Unavailable
from cairn.kernel.service import ServiceRuntime
from cairn.kernel.store import SqliteStore, load_state

CATCH_UP_S = 10.0  # how long a report waits for the read model before the agent is told to retry


async def log_position(rt: ServiceRuntime, subject: str) -> int:
    """The stream sequence of the last event on ``subject`` as the stream's leader knows it
    (0: none); Unavailable when the log does not answer."""
    try:
        msg = await rt.log.js.get_last_msg(rt.log.stream, subject)  # not direct: the leader answers
    except NotFoundError:
        return 0
    except (nats_errors.Error, asyncio.TimeoutError) as err:
        raise Unavailable(f"the event log did not answer ({type(err).__name__}); retry",
                          details={"retry_after": 1}) from None
    return int(msg.seq or 0)


def view_position(rt: ServiceRuntime, subject: str) -> int:
    """The sequence of the last event on ``subject`` this replica's snapshot has folded in."""
    store = rt.store
    assert isinstance(store, SqliteStore), "the scheduler's read model is SQLite"
    return load_state(store.reader(), subject)[0]


async def is_current(rt: ServiceRuntime, subject: str) -> bool:
    """Whether this replica has applied every event on ``subject`` the log holds (no waiting)."""
    return view_position(rt, subject) >= await log_position(rt, subject)


async def catch_up(rt: ServiceRuntime, subject: str, decided_at: int, timeout: float = CATCH_UP_S) -> bool:
    """After a refusal decided on a view that held ``subject`` up to sequence ``decided_at``: wait
    until this replica has applied every event on it the log holds. False when that view was
    already current (the refusal stands), True when the log held more (decide again now: the view
    may have moved meanwhile, so its present position says nothing about the refusal's).
    Unavailable past ``timeout``."""
    position = await log_position(rt, subject)
    if decided_at >= position:
        return False
    await rt.runner.wait_for(position, timeout=timeout)
    return True
