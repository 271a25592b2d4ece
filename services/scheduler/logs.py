"""Job logs: agents publish output chunks to the CAIRN_JOBLOGS stream, subject
``cairn.logs.<project>.<job>.<attempt>``; a chunk with the header ``Cairn-Log-End`` closes an
attempt's log. The scheduler serves them (whole or followed live)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from cairn.protocol import LOG_END_HEADER as END_HEADER
from cairn.protocol import LOGS_STREAM, create_stream, logs_stream_config


async def ensure_logs_stream(nc: NATS, replicas: int = 1) -> None:
    await create_stream(nc, logs_stream_config(replicas))


async def log_chunks(nc: NATS, subject: str, *, follow: bool, writers: int = 1,
                     finished: Callable[[], bool] | None = None) -> AsyncIterator[bytes]:
    """Yield an attempt's log chunks in order; with ``follow``, keep going until every writer
    (one per rank) sent its end marker, or, should an agent have died, until ``finished()``."""
    js = nc.jetstream()
    try:
        last = await js.get_last_msg(LOGS_STREAM, subject, direct=True)
        last_seq = int(last.seq or 0)
    except NotFoundError:
        last_seq = 0
    if not last_seq and not follow:
        return
    sub = await js.subscribe(subject, ordered_consumer=True, stream=LOGS_STREAM)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except asyncio.TimeoutError:
                if not follow or (finished is not None and finished()):
                    return
                continue
            if msg.headers and msg.headers.get(END_HEADER):
                writers -= 1
                if writers <= 0:
                    return
            elif msg.data:
                yield msg.data
            if not follow and msg.metadata.sequence.stream >= last_seq:
                return
    finally:
        await sub.unsubscribe()
