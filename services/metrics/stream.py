"""The metrics stream and the writers' durable consumers on it, for any number of replicas.

Each replica of the metrics service writes every point into Parquet files of its own, through a
durable consumer of its own (``metrics-writer`` for the unnamed replica, ``metrics-writer-<name>``
for the others). The stream keeps a batch while any of those durables has not acknowledged it
(interest retention) and deletes it once all have: durable until every replica wrote it, never
growing without bound while the replicas keep up.

A consumer only sees what the stream still holds when it is made. So the durables of every replica
named in ``CAIRN_WRITER_REPLICAS`` are made up front, by whichever replica starts first, and each
durable's metadata says from which stream sequence it was made (``cairn-from``). A replica whose
durable was made after batches had been deleted would silently miss them: it refuses to start
unless its own folder already holds everything before that sequence (a copy of a stopped replica's
folder: docs/cluster.md "Metrics replicas"), and says so.

Streams made by builds before replicas were work queues (one consumer per subject), and JetStream
cannot change a stream's retention in place: the first replica of ``CAIRN_WRITER_REPLICAS`` (the
unnamed one when none are listed) drains such a stream through the old durable into its folder,
deletes it and makes it again with interest retention, its sequences going on from the old
stream's last (Parquet part names and message ids carry them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from cairn.kernel.errors import ConfigurationError
from cairn.protocol import (
    METRICS_STREAM,
    METRICS_SUBJECT_PREFIX,
    create_stream,
    metrics_stream_config,
)

log = logging.getLogger(__name__)

DURABLE = "metrics-writer"
MAIN = "main"  # the unnamed replica, as CAIRN_WRITER_REPLICAS names it
FROM_KEY = "cairn-from"
# A short ack_wait: batches a killed process had fetched come back within seconds.
ACK_WAIT_S = 5
MAX_ACK_PENDING = 20_000
MIGRATION_WAIT_S = 60.0  # how long a replica waits for another to migrate a work queue


def durable_for(replica: str) -> str:
    """The durable consumer of the replica named ``replica`` ("" or ``main``: the unnamed one)."""
    return f"{DURABLE}-{replica}" if replica and replica != MAIN else DURABLE


def writer_replicas(listed: str, own: str) -> list[str]:
    """The replicas whose durables must exist: ``CAIRN_WRITER_REPLICAS`` (comma-separated, ``main``
    for the unnamed replica) and this replica itself, as replica names ("" for the unnamed)."""
    names = [n.strip() for n in listed.split(",") if n.strip()]
    out = ["" if n == MAIN else n for n in names]
    return list(dict.fromkeys([*out, own]))


def consumer_config(durable: str, from_seq: int) -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(durable_name=durable, ack_policy=js_api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S,
                                 max_ack_pending=MAX_ACK_PENDING, filter_subject=f"{METRICS_SUBJECT_PREFIX}.>",
                                 deliver_policy=js_api.DeliverPolicy.ALL, metadata={FROM_KEY: str(from_seq)})


async def stream_info(js: Any) -> js_api.StreamInfo | None:
    try:
        return await js.stream_info(METRICS_STREAM)
    except NotFoundError:
        return None


def _retention(info: js_api.StreamInfo) -> str:
    value = info.config.retention
    return str(getattr(value, "value", value))


async def ensure_stream(nc: NATS, replicas: int = 1, *, first_seq: int = 1) -> js_api.StreamInfo:
    """Create the metrics stream unless it exists: file storage, 1 h duplicate window, interest
    retention. ``first_seq``: where a new stream's sequences start (past whatever the caller's
    folder already holds, so a stream made again never reuses a sequence).

    A stream made by an older build with limits retention is switched to interest retention in
    place (JetStream allows that one change); a work queue is left to :func:`migrate_work_queue`."""
    js = nc.jetstream(timeout=10)
    info = await stream_info(js)
    if info is not None:
        if _retention(info) == "limits":
            config = info.config.as_dict()
            config["retention"] = js_api.RetentionPolicy.INTEREST.value
            await create_stream(nc, config, "UPDATE")
            log.warning("metrics stream %s switched from limits to interest retention", METRICS_STREAM)
            info = await js.stream_info(METRICS_STREAM)
        return info
    config = metrics_stream_config(replicas)
    if first_seq > 1:
        config["first_seq"] = first_seq
    await create_stream(nc, config)
    return await js.stream_info(METRICS_STREAM)


def is_work_queue(info: js_api.StreamInfo) -> bool:
    return _retention(info) == "workqueue"


async def migrate_work_queue(nc: NATS, replicas: int, write: Callable[[list[Any]], Awaitable[None]]) -> int:
    """Drain a work-queue metrics stream through the old build's durable (``write`` stores and
    acks each batch), then delete it and make it again with interest retention, its sequences going
    on from the old last one. Returns the new stream's first sequence.

    Run at the migrating replica's start, before it serves: nothing else publishes meanwhile (a
    build with work queues ran one metrics process, and the other replicas wait for this)."""
    js = nc.jetstream(timeout=10)
    sub = await js.pull_subscribe(f"{METRICS_SUBJECT_PREFIX}.>", durable=DURABLE, stream=METRICS_STREAM)
    try:
        while True:
            info = await js.stream_info(METRICS_STREAM)
            if info.state.messages == 0:
                break
            try:
                msgs = await sub.fetch(batch=500, timeout=1)
            except (TimeoutError, asyncio.TimeoutError):
                continue  # acks of the last fetch still on their way, or batches being redelivered
            await write(msgs)
    finally:
        await sub.unsubscribe()
    first_seq = int(info.state.last_seq) + 1
    await js.delete_stream(METRICS_STREAM)
    await ensure_stream(nc, replicas, first_seq=first_seq)
    log.warning("metrics stream %s made again with interest retention from sequence %d (was a work queue)",
                METRICS_STREAM, first_seq)
    return first_seq


async def wait_migrated(js: Any, wait_s: float = MIGRATION_WAIT_S) -> None:
    """For a replica that finds a work queue it does not migrate: wait for the one that does."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        info = await stream_info(js)
        if info is not None and not is_work_queue(info):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise ConfigurationError(
                f"the metrics stream {METRICS_STREAM} is still a work queue from an older build after "
                f"{wait_s:.0f}s; start the first metrics replica of CAIRN_WRITER_REPLICAS (or the unnamed one) first: "
                "it migrates the stream")
        await asyncio.sleep(0.5)


async def ensure_durables(js: Any, names: list[str], own: str, written_up_to: int, own_root: str) -> None:
    """Make the durable of each replica in ``names`` that has none, starting at the stream's first
    message; refuse to start this replica (``own``) when its durable starts after batches it never
    wrote were deleted (``written_up_to``: the last stream sequence its folder holds)."""
    for name in names:
        durable = durable_for(name)
        info = await _consumer(js, durable)
        if info is None:
            first = int((await js.stream_info(METRICS_STREAM)).state.first_seq)
            if name == own:
                await _check_gap(js, first, written_up_to, own, own_root)
            try:
                await js.add_consumer(METRICS_STREAM, consumer_config(durable, first))
            except Exception:  # noqa: BLE001 - another replica made it a moment ago: read it below
                if await _consumer(js, durable) is None:
                    raise
                log.info("durable %s was made by another replica meanwhile", durable)
            else:
                log.info("made durable %s on %s from sequence %d", durable, METRICS_STREAM, first)
            if name != own:
                continue
            info = await _consumer(js, durable)
        if name == own and info is not None:
            from_seq = int((info.config.metadata or {}).get(FROM_KEY, "1"))
            await _check_gap(js, from_seq, written_up_to, own, own_root)


async def _check_gap(js: Any, from_seq: int, written_up_to: int, own: str, own_root: str) -> None:
    """Refuse a start that would leave points out when another replica's durable shows that some
    replica holds them (copy its folder); with no other replica (a stream restored from a backup
    into an empty folder: the Parquet files are backed up as files), say what is missing and go on."""
    if from_seq <= 1 or written_up_to >= from_seq - 1:
        return
    others = [c.name for c in await js.consumers_info(METRICS_STREAM)
              if c.name.startswith(DURABLE) and c.name != durable_for(own)]
    if not others:
        log.error("metrics replica %r: its folder %s holds points up to metrics-stream sequence %d, the stream "
                  "from %d on, and no other replica holds those between: restore the metrics folder from a file "
                  "backup to show them (docs/deploy.md)", own or MAIN, own_root, written_up_to, from_seq)
        return
    raise ConfigurationError(
        f"metrics replica {own or MAIN!r} would start reading the metrics stream at sequence {from_seq}, but "
        f"its folder {own_root} holds points only up to sequence {written_up_to} and the batches between "
        "were deleted once the other replicas wrote them. Stop a running metrics replica, copy its metrics "
        "folder here, start this replica, then the other (docs/cluster.md \"Metrics replicas\"); or list every "
        "metrics replica in CAIRN_WRITER_REPLICAS before points are written")


async def _consumer(js: Any, durable: str) -> Any:
    try:
        return await js.consumer_info(METRICS_STREAM, durable)
    except NotFoundError:
        return None
