"""The metrics stream and its writer: batches go into JetStream (``cairn.metrics.<project>.<run>``),
and one durable consumer writes them to Parquet per run, then records them in SQLite, then acks.

Order of a write: Parquet part to a temp file, fsync, rename, fsync the folder -> SQLite commit
(part listed, message ids marked applied, summaries merged) -> drop from the in-memory tail -> ack.
A crash before the commit leaves an orphan part (deleted on start) and unacked messages (redelivered);
a crash after it leaves acked-or-not messages that are skipped by message id. So every acknowledged
point is stored exactly once.

After a write, the summaries it changed are announced as ``metric.summarized`` events (announce.py)
by a task of their own, so the append's round trip never holds up the next write (and writes that
come faster than appends share one event per project); a failed announcement is retried, and on
start whatever an older build or a crash left unannounced goes out once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from cairn.kernel.durable import fsync_dir
from cairn.kernel.tasks import stop_tasks
from cairn.protocol import METRICS_STREAM, METRICS_SUBJECT_PREFIX
from cairn.services.metrics.announce import SummaryAnnouncer
from cairn.services.metrics.domain import from_ipc
from cairn.services.metrics.store import MetricsStore
from cairn.services.metrics.stream import DURABLE

log = logging.getLogger(__name__)

SUBJECT_PREFIX = METRICS_SUBJECT_PREFIX
FETCH_BATCHES = 500
# A read that names a metrics sequence looks for every batch between the written floor and it in
# the tail (batches this replica took in itself) at most this far; beyond, it waits for the writer.
TAIL_LOOKUP = 10_000


@dataclass
class Tail:
    """Acknowledged points not yet in Parquet, by stream sequence, so reads see them at once.

    The writer may write a batch before the publisher that took it in hears the stream's
    acknowledgement (the ack comes late under load or a network fault): the batch is then already
    dropped when the publisher adds it. The last ``forget_after`` dropped sequences are kept, and
    such a late add is ignored, so no point is read twice (from Parquet and from the tail)."""

    batches: dict[int, tuple[str, str, pa.Table]] = field(default_factory=dict)
    rows: int = 0
    forget_after: int = 100_000
    _dropped: set[int] = field(default_factory=set)
    _dropped_order: deque[int] = field(default_factory=deque)

    def add(self, seq: int, project: str, run_id: str, table: pa.Table) -> None:
        if seq not in self.batches and seq not in self._dropped:
            self.batches[seq] = (project, run_id, table)
            self.rows += table.num_rows

    def drop(self, seqs: list[int]) -> None:
        for seq in seqs:
            entry = self.batches.pop(seq, None)
            if entry is not None:
                self.rows -= entry[2].num_rows
            if seq not in self._dropped:
                self._dropped.add(seq)
                self._dropped_order.append(seq)
        while len(self._dropped_order) > self.forget_after:
            self._dropped.discard(self._dropped_order.popleft())

    def of_run(self, project: str, run_id: str) -> list[pa.Table]:
        return [t for _, (p, r, t) in sorted(self.batches.items()) if p == project and r == run_id]

    def of_runs(self, project: str, run_ids: set[str]) -> dict[str, list[pa.Table]]:
        """:meth:`of_run` for many runs in one pass over the tail."""
        out: dict[str, list[pa.Table]] = {}
        for _, (p, r, t) in sorted(self.batches.items()):
            if p == project and r in run_ids:
                out.setdefault(r, []).append(t)
        return out



ROW_GROUP_ROWS = 128 * 1024
# Measured on 1M points (benchmarks/README.md): Parquet's default dictionary encoding of every
# column made reads 15x slower than delta-packed steps and byte-stream-split floats with LZ4,
# at about the same size as zstd.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "lz4", "use_dictionary": ["key"],
    "column_encoding": {"step": "DELTA_BINARY_PACKED", "seq": "DELTA_BINARY_PACKED",
                        "value": "BYTE_STREAM_SPLIT", "timestamp": "BYTE_STREAM_SPLIT"},
}


def write_part(path: Path, table: pa.Table) -> None:
    """Write a Parquet file so that it is either whole and durable or absent. Rows are sorted by key
    (stable, so each key keeps its arrival order) in row groups of ``ROW_GROUP_ROWS``, so a read of
    one key skips other keys' groups by their statistics."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    table = table.take(pc.sort_indices(table, [("key", "ascending")]))  # Arrow's sort is stable
    pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def summarize(table: pa.Table, seqs: np.ndarray) -> list[dict[str, Any]]:
    """Per key: count, min and max (NaN skipped), last value at the highest step (ties: the later row),
    with that point's step, sequence and time."""
    encoded = pc.dictionary_encode(table.column("key").combine_chunks())
    names = encoded.dictionary.to_pylist()
    ids = encoded.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(ids, kind="stable")  # rows grouped by key, each key's rows in arrival order
    bounds = np.searchsorted(ids[order], np.arange(len(names) + 1))
    values = table.column("value").to_numpy()[order]
    steps = table.column("step").to_numpy()[order]
    times = table.column("timestamp").to_numpy()[order]
    seqs = np.asarray(seqs)[order]
    out = []
    for k in sorted(range(len(names)), key=names.__getitem__):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        v, s, q = values[lo:hi], steps[lo:hi], seqs[lo:hi]
        finite = v[~np.isnan(v)]
        last = int(np.flatnonzero(s == s.max())[-1])
        out.append({"key": str(names[k]), "count": int(v.size),
                    "min": float(finite.min()) if finite.size else None,
                    "max": float(finite.max()) if finite.size else None,
                    "last": float(v[last]), "last_step": int(s[last]), "last_seq": int(q[last]),
                    "last_time": float(times[lo:hi][last])})
    return out


class MetricsWriter:
    """Pulls metric batches from the stream and writes them down (see the module docstring)."""

    def __init__(self, nc: NATS, store: MetricsStore, root: Path, tail: Tail, *,
                 compact_after: int = 8, compact_max_rows: int = 2_000_000, write_interval_s: float = 0.0,
                 announcer: SummaryAnnouncer | None = None, durable: str = DURABLE,
                 max_reload_points: int = 2_000_000) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=10)
        self.store = store
        self.root = root
        self.tail = tail
        self.durable = durable
        self.compact_after = compact_after
        self.compact_max_rows = compact_max_rows
        self.write_interval_s = write_interval_s
        self.max_reload_points = max_reload_points
        self.last_error: str | None = None
        self.written_seq = 0  # every stream sequence up to here is written (or was skipped as written)
        self._held_at: int | None = None  # the lowest sequence of a write that failed (to come back)
        self._written = asyncio.Condition()
        self.announcer = announcer
        self.unannounced = announcer is not None  # on start: the backfill of summaries never announced
        self.announce_error: str | None = None
        self.leading: Callable[[], bool] = lambda: True  # may this replica append metric.summarized?
        self._announce_wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._announce_task: asyncio.Task[None] | None = None

    def run_dir(self, project: str, run_id: str) -> Path:
        return self.root / project / run_id

    def remove_orphans(self) -> None:
        """Delete temp files and parts that SQLite does not list (a crash before the commit). Only
        files named as parts: a named replica's folder may sit inside the unnamed one's."""
        listed = self.store.all_parts()
        for path in self.root.glob("*/*/part-*"):
            project, run_id = path.parent.parent.name, path.parent.name
            if path.is_file() and (path.name.endswith(".tmp") or (project, run_id, path.name) not in listed):
                log.warning("removing orphan metrics file %s", path)
                path.unlink()

    async def start(self) -> None:
        """Start pulling through this replica's durable (made by ``stream.ensure_durables``)."""
        self.remove_orphans()
        self.sub = await self.js.pull_subscribe_bind(durable=self.durable, stream=METRICS_STREAM)
        await self.reload_tail()
        self._task = asyncio.create_task(self._loop())
        if self.announcer is not None:
            self._announce_wanted.set()
            self._announce_task = asyncio.create_task(self._announce_loop(self.announcer))

    async def reload_tail(self) -> None:
        """Put acked-by-the-stream but unwritten batches back in the tail, so reads after a restart
        see them before the writer gets to them (up to ``max_reload_points``: a replica further
        behind shows the rest as its writer gets there)."""
        floor = (await self.js.consumer_info(METRICS_STREAM, self.durable)).ack_floor
        state = (await self.js.stream_info(METRICS_STREAM)).state
        seq = max((floor.stream_seq if floor else 0) + 1, state.first_seq)
        self.written_seq = seq - 1  # acked (so written) up to the floor; the stream holds nothing older
        while seq <= state.last_seq and self.tail.rows < self.max_reload_points:
            try:
                msg = await self.js.get_msg(METRICS_STREAM, seq, subject=f"{SUBJECT_PREFIX}.>", next=True)
            except NotFoundError:
                break
            found = int(msg.seq or seq)
            seq = found + 1
            msg_id = (msg.headers or {}).get("Nats-Msg-Id") or f"seq-{found}"
            if not self.store.applied_ids([msg_id]) and msg.subject and msg.data:
                _, _, project, run_id = msg.subject.split(".", 3)
                self.tail.add(found, project, run_id, from_ipc(msg.data))

    def shows(self, seq: int) -> bool:
        """Whether reads here show every batch up to stream sequence ``seq``: written, or (for the
        batches this replica took in itself) in the tail."""
        if seq <= self.written_seq:
            return True
        if seq - self.written_seq > TAIL_LOOKUP:
            return False
        batches = self.tail.batches
        return all(s in batches for s in range(self.written_seq + 1, seq + 1))

    async def wait_shown(self, seq: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until :meth:`shows` ``seq``; whether it does."""
        async with self._written:
            try:
                await asyncio.wait_for(self._written.wait_for(lambda: self.shows(seq)), timeout)
            except (TimeoutError, asyncio.TimeoutError):
                return self.shows(seq)
        return True

    async def stop(self) -> None:
        await stop_tasks(self._task, self._announce_task)
        # a pull subscription left open holds the connection's drain (at stop) for its whole timeout
        sub = getattr(self, "sub", None)
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - stopping anyway; the server drops it with the connection
                log.debug("metrics writer: unsubscribe at stop failed", exc_info=True)

    async def _loop(self) -> None:
        while True:
            try:
                msgs = await self.sub.fetch(batch=FETCH_BATCHES, timeout=0.2)
            except (TimeoutError, asyncio.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - keep pulling after NATS hiccups
                self.last_error = f"fetch: {err}"
                await asyncio.sleep(0.2)
                continue
            if not msgs:
                continue
            try:
                await self.write(msgs)
                self.last_error = None
                if len(msgs) < FETCH_BATCHES and self.write_interval_s:
                    # not behind: let batches gather, so that several share one part and its disk syncs
                    await asyncio.sleep(self.write_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.exception("writing metric batches failed")
                self.last_error = f"write: {err}"
                # these batches come back after ack_wait: reads that name them wait until then
                low = min(msg.metadata.sequence.stream for msg in msgs)
                self._held_at = low if self._held_at is None else min(self._held_at, low)
                await asyncio.sleep(0.5)

    async def _announce_loop(self, announcer: SummaryAnnouncer) -> None:
        """Announce whenever a write changed summaries; after a failure (NATS away) retry every
        half second and say so in health (the points are written: only run search by metrics lags).

        Only the holder of the ``metrics.announce`` lease appends (``leading``); another replica
        settles its flags against what the log already announced (its projection keeps the counts)
        and looks again every second while some are left, so a replica that takes the lease over
        announces only what the log lacks."""
        while True:
            if self.unannounced and not self.leading():
                # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow the stop's cancel
                wanted = asyncio.ensure_future(self._announce_wanted.wait())
                try:
                    await asyncio.wait({wanted}, timeout=1.0)
                finally:
                    wanted.cancel()
            else:
                await self._announce_wanted.wait()
            self._announce_wanted.clear()
            try:
                if self.leading():
                    await announcer.announce()
                    left = False
                else:
                    left = announcer.settle()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - retried below
                log.warning("announcing metric summaries failed: %s", err)
                self.announce_error = str(err)
                self._announce_wanted.set()
                await asyncio.sleep(0.5)
                continue
            self.announce_error = None
            self.unannounced = left or self._announce_wanted.is_set()  # a write during the pass: more to do

    async def lead(self, _lease: Any) -> None:
        """The ``metrics.announce`` lease's work: wake the announcing loop (it appends while
        ``leading``) and hold until the lease is lost."""
        self._announce_wanted.set()
        await asyncio.Event().wait()

    async def write(self, msgs: list[Any]) -> None:
        if not msgs:
            return
        groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for msg in msgs:
            _, _, project, run_id = msg.subject.split(".", 3)
            groups[(project, run_id)].append(msg)
        for (project, run_id), group in groups.items():
            await self._write_run(project, run_id, group)
        seqs = [msg.metadata.sequence.stream for msg in msgs]
        if self._held_at is not None and self._held_at in seqs:
            self._held_at = None
        top = max(seqs) if self._held_at is None else min(max(seqs), self._held_at - 1)
        if top > self.written_seq:
            async with self._written:
                self.written_seq = top
                self._written.notify_all()

    async def _write_run(self, project: str, run_id: str, msgs: list[Any]) -> None:
        ids = [(msg.headers or {}).get("Nats-Msg-Id") or f"seq-{msg.metadata.sequence.stream}" for msg in msgs]
        done = self.store.applied_ids(ids)
        fresh: list[tuple[str, int, pa.Table]] = []
        seen = set(done)
        for msg, msg_id in zip(msgs, ids):
            if msg_id not in seen:
                seen.add(msg_id)
                fresh.append((msg_id, msg.metadata.sequence.stream, from_ipc(msg.data)))
        all_seqs = [msg.metadata.sequence.stream for msg in msgs]
        if fresh:
            table = pa.concat_tables([t for _, _, t in fresh])
            seqs = np.concatenate([np.full(t.num_rows, s, dtype=np.int64) for _, s, t in fresh])
            table = table.append_column("seq", pa.array(seqs))
            lo, hi = fresh[0][1], fresh[-1][1]
            name = f"part-{lo:012d}-{hi:012d}.parquet"
            await asyncio.to_thread(write_part, self.run_dir(project, run_id) / name, table)
            self.store.commit_part(project, run_id, name, lo, hi, table.num_rows,
                                   [(i, s) for i, s, _ in fresh], summarize(table, seqs))
            if self.announcer is not None:  # flagged before the tail drops the points: health shows no gap
                self.unannounced = True
                self._announce_wanted.set()
        self.tail.drop(all_seqs)  # no await between commit and drop: reads never see a point twice
        for msg in msgs:
            await msg.ack()
        if fresh:
            await self.compact(project, run_id)

    async def compact(self, project: str, run_id: str) -> None:
        """Merge a run's small parts into one once there are ``compact_after`` of them."""
        rows = self.store.db.execute(
            "SELECT file, seq_lo, seq_hi, rows FROM parts WHERE project=? AND run_id=? AND rows < ? ORDER BY seq_lo",
            (project, run_id, self.compact_max_rows // 4)).fetchall()
        if len(rows) < self.compact_after:
            return
        folder = self.run_dir(project, run_id)
        old = [r[0] for r in rows]
        lo, hi, total = min(r[1] for r in rows), max(r[2] for r in rows), sum(r[3] for r in rows)
        name = f"part-{lo:012d}-{hi:012d}-c.parquet"

        def merge() -> None:
            table = pa.concat_tables([pq.read_table(folder / f) for f in old])
            write_part(folder / name, table)

        await asyncio.to_thread(merge)
        self.store.replace_parts(project, run_id, old, (name, lo, hi, total))
        for file in old:  # no await since the swap: a read lists and opens files without yielding
            (folder / file).unlink(missing_ok=True)
