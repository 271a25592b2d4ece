"""What the web UI's agents page needs beyond ``GET /agents``: how long ago each agent's lease was
renewed (its last heartbeat), how many job ranks it runs now, and how many jobs wait per queue.

Heartbeats are not events of record (they renew an in-memory lease in ``SchedulerCore``), so this
is read live from the core, like ``live`` in ``GET /agents``. A scheduler that just started renews
every active agent's lease once, so right after a restart the age counts from the start.
Running jobs are counted, not named: agents are site-wide, their jobs belong to projects the caller
may not be a member of.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from cairn.kernel.identity import SIGNED_IN, requires
from cairn.services.scheduler.api import Core, Store

router = APIRouter()


@router.get("/agents/status", tags=["agents"], **requires(SIGNED_IN))
def agents_status(store: Store, core: Core) -> dict[str, Any]:
    """Every agent (lost ones too, last) with ``live``, ``heartbeat_age_s`` (null when the scheduler
    holds no lease for it) and ``running_jobs``; ``queued`` per queue; the lease length."""
    now = time.monotonic()
    running: dict[str, int] = {}
    for job in store.active_jobs():
        for rank in job["ranks"]:
            running[rank["agent_id"]] = running.get(rank["agent_id"], 0) + 1
    agents = store.agents(include_lost=True)
    for agent in agents:
        deadline = core.leases.get(agent["id"])
        agent["live"] = deadline is not None and deadline > now
        agent["heartbeat_age_s"] = None if deadline is None else round(max(0.0, core.lease_s - (deadline - now)), 1)
        agent["running_jobs"] = running.get(agent["id"], 0)
    agents.sort(key=lambda a: (a["status"] != "active", a["name"], a["id"]))
    queued = store.query("SELECT queue, COUNT(*) AS n FROM jobs WHERE status='queued' GROUP BY queue ORDER BY queue")
    return {"agents": agents, "queued": {row["queue"]: row["n"] for row in queued}, "lease_s": core.lease_s}
