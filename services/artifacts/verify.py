"""Scheduled verification of stored blobs: the check that stands in for hashing on every read.

With ``CAIRN_ARTIFACTS_VERIFY_READS=false`` downloads are served as stored, so corruption at rest
is found here instead: every ``CAIRN_ARTIFACTS_VERIFY_EVERY_SECONDS`` (0, the default: never)
every stored blob is hashed against its name, in a worker thread, one blob at a time, and the last
result is kept for ``GET /admin/verify`` (corrupt blobs are also logged as warnings).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import FastAPI

from cairn.kernel.tasks import stop_tasks

log = logging.getLogger("cairn.artifacts.verify")


async def start_verifier(app: FastAPI, runtime: Any) -> None:
    """An ``on_start`` hook: the periodic check, when an interval is set."""
    app.state.last_verify = None
    every = float(app.state.settings.artifacts_verify_every_seconds)
    if every <= 0:
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            started = time.time()
            try:
                result: dict[str, Any] = await asyncio.to_thread(app.state.blobs.verify_stored)
            except Exception:  # noqa: BLE001 - a failed pass (bucket unreachable) is retried next time
                log.exception("scheduled blob verification failed; retrying in %s s", every)
                continue
            app.state.last_verify = {**result, "started_at": started, "finished_at": time.time()}
            if result["corrupt"]:
                log.warning("corrupt blobs found (re-upload the originals to repair): %s", result["corrupt"])

    # safe on every replica, no lease (cairn.kernel.leader): the check only reads blobs and reports
    task = asyncio.create_task(loop(), name="artifacts-verify")

    async def stop() -> None:
        await stop_tasks(task)

    runtime.defer(stop)
