"""The monitor's reader of the inference log: a pull consumer on ``CAIRN_INFERENCE`` that starts
at the position stored with the windows (not the server's idea of it), feeds every message into
the windows, closes the windows that are over (by sample time or by the wall clock) and has the
rules decided on each closed window.

The consumer is made again from the stored position at every start and after a broken
connection: the stored position moves only in the transaction that counts the messages, so no
sample is lost or counted twice whatever is killed when.

Each replica of the monitor (``CAIRN_REPLICA``) reads every message through a durable consumer of
its own (``windows_durable``) into windows of its own: replicas that shared one would split the
samples between them, and each start deletes and makes its durable again, which would pull the
other replica's from under it. Deciding rules on every replica is safe: ``decide_alert`` ignores a
window at or before the one the alert last decided, under the alert's expected sequence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cairn.protocol import (
    FEEDBACK_SUBJECT_PREFIX,
    INFERENCE_STREAM,
    INFERENCE_SUBJECT_PREFIX,
    SERVE_SUBJECT_TOKEN,
)
from cairn.services.monitor.samples import Label, Requests, label_in, requests_in, sampled_rows
from cairn.services.monitor.window_store import Batch, WindowStore
from cairn.serving.inference_records import decode_batch

log = logging.getLogger(__name__)
FETCH = 256  # messages per round trip
DURABLE = "monitor-windows"


def windows_durable(replica: str = "") -> str:
    """The inference consumer's durable name: one per replica (the unnamed one keeps the name it had)."""
    return f"{DURABLE}-{replica}" if replica else DURABLE


def parse(messages: list[tuple[int, str, bytes]]) -> list[Batch]:
    """(sequence, project, deployment, requests, the message's sampled rows as Arrow, labels) per
    message; a plain ``cairn serve``'s samples move the position and count in no window (a
    damaged message neither). The rows stay Arrow: the windows profile them without Python
    objects per value."""
    out = []
    for seq, subject, data in messages:
        parts = subject.split(".")
        requests: Requests | None = None
        labels: list[Label] = []
        kept: Any = None
        if subject.startswith(INFERENCE_SUBJECT_PREFIX + ".") and len(parts) == 4 and parts[3] != SERVE_SUBJECT_TOKEN:
            try:
                kept = sampled_rows(decode_batch(data))
                requests = requests_in(kept, sampled=True)
            except Exception as err:  # noqa: BLE001 - a damaged message is skipped, never stops the windows
                log.warning("inference message seq=%d unreadable: %r", seq, err)
        elif subject.startswith(FEEDBACK_SUBJECT_PREFIX + ".") and len(parts) == 4:
            label = label_in(data)
            labels = [label] if label is not None else []
        else:
            log.warning("inference message seq=%d on an unknown subject %s", seq, subject)
        out.append((seq, parts[2] if len(parts) > 2 else "", parts[3] if len(parts) > 3 else "", requests, kept,
                    labels))
    return out


class InferenceConsumer:
    """Runs until cancelled. ``decide`` is called after each round (it decides what closed);
    ``clock`` is the wall clock that closes quiet windows (tests pass their own)."""

    def __init__(self, nc: Any, windows: WindowStore, decide: Callable[[], Awaitable[None]], *,
                 tick_s: float, clock: Callable[[], float] = time.time, durable: str = DURABLE) -> None:
        self.nc = nc
        self.durable = durable
        self.windows = windows
        self.decide = decide
        self.tick_s = tick_s
        self.clock = clock
        self.lag = 0  # messages in the stream not yet counted (as of the last fetch)
        self.error: str | None = None

    async def run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - reconnect from the stored position
                self.error = repr(err)
                log.warning("monitor consumer stopped (%r); starting again from seq=%d", err,
                            self.windows.position())
                await asyncio.sleep(self.tick_s)

    async def _subscribe(self) -> Any:
        from nats.js import api as js_api

        js = self.nc.jetstream()
        while True:  # the deployments service makes the stream: wait for it
            try:
                await js.stream_info(INFERENCE_STREAM)
                break
            except Exception:  # noqa: BLE001 - not there yet
                await asyncio.sleep(self.tick_s)
        try:  # the server's position may be past ours (nothing is acked): start over from ours
            await js.delete_consumer(INFERENCE_STREAM, self.durable)
        except Exception:  # noqa: BLE001 - there was none
            pass
        start = self.windows.position() + 1
        config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
                                       ack_policy=js_api.AckPolicy.NONE,
                                       filter_subjects=[f"{INFERENCE_SUBJECT_PREFIX}.>", f"{FEEDBACK_SUBJECT_PREFIX}.>"])
        return await js.pull_subscribe("", durable=self.durable, stream=INFERENCE_STREAM, config=config)

    async def _consume(self) -> None:
        psub = await self._subscribe()
        self.error = None
        try:
            while True:
                try:
                    msgs = await psub.fetch(FETCH, timeout=self.tick_s)
                except asyncio.TimeoutError:
                    msgs = []
                    self.lag = 0
                if msgs:
                    self.lag = int(msgs[-1].metadata.num_pending or 0)
                    batch = [(m.metadata.sequence.stream, m.subject, m.data) for m in msgs]
                    await asyncio.to_thread(self._ingest, batch)
                await asyncio.to_thread(self.windows.close_due, self.clock())
                await self.decide()
        finally:
            try:
                await psub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass

    def _ingest(self, batch: list[tuple[int, str, bytes]]) -> None:
        self.windows.ingest(parse(batch))
