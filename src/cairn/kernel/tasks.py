"""Stopping background tasks for certain.

``task.cancel()`` followed by ``await task`` can wait forever on Python 3.11: ``asyncio.wait_for``
(in nats-py's pull ``fetch`` and in our own loops) may swallow a cancellation that arrives as its
inner future completes, and the loop then goes on as if it had never been cancelled. Seen: the
metrics writer's loop, cancelled at SIGTERM, kept pulling, and its service never stopped (the
task dump showed it "cancelling" and back in its sleep). So a stop cancels, and cancels again,
until the task is done.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def stop_tasks(*tasks: asyncio.Task[Any] | None, every_s: float = 1.0) -> None:
    """Cancel ``tasks`` (None and finished ones are skipped) until each is done, again every
    ``every_s`` (what a task's own clean-up after a cancellation gets before the next one); an
    exception a task ended with is logged, not raised (a stop goes on)."""
    pending = {task for task in tasks if task is not None and not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every_s)
    for ended in tasks:
        if ended is not None and ended.done() and not ended.cancelled() and ended.exception() is not None:
            log.warning("task %s ended with %r", ended.get_name(), ended.exception())
