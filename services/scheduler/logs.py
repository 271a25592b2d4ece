"""Job logs: agents publish output chunks to the CAIRN_JOBLOGS stream, subject
``cairn.logs.<project>.<job>.<attempt>``; a chunk with the header ``Cairn-Log-End`` closes an
attempt's log. The scheduler serves them (whole or followed live)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

LOGS_STREAM = "CAIRN_JOBLOGS"
LOGS_PREFIX = "cairn.logs"
END_HEADER = "Cairn-Log-End"
MAX_AGE_S = 30 * 86400  # the full log is also kept as a run artifact


def log_subject(project: str, job_id: str, attempt: int | str) -> str:
    return f"{LOGS_PREFIX}.{project}.{job_id}.{attempt}"


async def ensure_logs_stream(nc: NATS) -> None:
    config = {"name": LOGS_STREAM, "subjects": [f"{LOGS_PREFIX}.>"], "storage": "file", "retention": "limits",
              "max_age": int(MAX_AGE_S * 1e9), "discard": "old", "num_replicas": 1,
              "allow_direct": True}
    reply = await nc.request(f"$JS.API.STREAM.CREATE.{LOGS_STREAM}", json.dumps(config).encode(), timeout=10)
    error = json.loads(reply.data).get("error")
    if error and error.get("err_code") != 10058:  # 10058: exists already
        raise RuntimeError(f"cannot create stream {LOGS_STREAM}: {error.get('description')}")


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
