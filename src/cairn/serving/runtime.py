"""The models a serving process holds and how requests reach them.

A :class:`Slot` is one loaded version (with its batcher, if batching is on). The
:class:`Runtime` holds a primary slot and optionally a canary (a share of requests) and a shadow
(a copy of each request, answer discarded). A switch loads and warms the new version off the
event loop, then swaps the reference: requests that already picked the old slot finish on it, and
the old slot's batcher stops only once its last request is answered. A version that fails to
load or warm leaves the current one serving.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cairn.kernel.tasks import stop_tasks
from cairn.serving.flavours import LoadedModel
from cairn.serving.metrics import Metrics

log = logging.getLogger("cairn.serve")
Loader = Callable[[int], tuple[LoadedModel, dict[str, Any]]]  # version -> (model, version record)


class Batcher:
    """Groups concurrent requests into one model call: everything queued while the model was busy
    goes in the next call, up to ``max_batch`` rows, and while calls are being shared (the last one
    served more than one request) the first request also waits up to ``max_wait_s`` for others.
    A lone client never waits: its calls serve one request each. Answers are split back by row."""

    def __init__(self, model: LoadedModel, max_batch: int, max_wait_s: float, metrics: Metrics) -> None:
        self.model, self.max_batch, self.max_wait_s, self.metrics = model, max_batch, max_wait_s, metrics
        self.queue: asyncio.Queue[tuple[pd.DataFrame, asyncio.Future[list[Any]]]] = asyncio.Queue()
        self.last_requests = 1  # requests the last model call served
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, frame: pd.DataFrame) -> list[Any]:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        await self.queue.put((frame, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            rows = len(items[0][0])
            deadline = loop.time() + (self.max_wait_s if self.last_requests > 1 else 0.0)
            while rows < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), left)
                    except TimeoutError:
                        break
                items.append(item)
                rows += len(item[0])
            self.last_requests = len(items)
            await self._call(items)

    async def _call(self, items: list[tuple[pd.DataFrame, asyncio.Future[list[Any]]]]) -> None:
        frame = pd.concat([f for f, _ in items], ignore_index=True) if len(items) > 1 else items[0][0]
        self.metrics.batch(len(frame), len(items))
        try:
            out = await asyncio.to_thread(self.model.predict, frame)
        except Exception as err:  # noqa: BLE001 - each waiting request gets the model's error
            for _, future in items:
                if not future.done():
                    future.set_exception(err)
            return
        start = 0
        for part, future in items:
            if not future.done():
                future.set_result(out[start:start + len(part)])
            start += len(part)

    async def close(self) -> None:
        await stop_tasks(self.task)


@dataclass
class Slot:
    model: LoadedModel
    version: int
    record: dict[str, Any]
    batcher: Batcher | None = None
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    async def predict(self, frame: pd.DataFrame, metrics: Metrics) -> list[Any]:
        self.inflight += 1
        self.idle.clear()
        try:
            if self.batcher is not None:
                return await self.batcher.submit(frame)
            metrics.batch(len(frame), 1)
            return await asyncio.to_thread(self.model.predict, frame)
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self.idle.set()

    async def retire(self) -> None:
        """Stop once every request that picked this slot is answered."""
        if self.inflight:
            await self.idle.wait()
        if self.batcher is not None:
            await self.batcher.close()


class Runtime:
    """Primary, canary and shadow slots; ``rng`` picks canary requests (seed it to reproduce)."""

    def __init__(self, name: str, loader: Loader, metrics: Metrics, *, max_batch: int = 0,
                 max_wait_ms: float = 5.0, rng: random.Random | None = None,
                 report: Callable[[str, int, str], Awaitable[None]] | None = None) -> None:
        self.name, self.loader, self.metrics = name, loader, metrics
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000.0
        self.rng = rng or random.Random()
        self.report = report
        self.primary: Slot | None = None
        self.canary: Slot | None = None
        self.canary_percent = 0.0
        self.shadow: Slot | None = None
        self.last_error: str | None = None
        self.background: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    async def _load(self, version: int) -> Slot:
        model, record = await asyncio.to_thread(self.loader, version)
        if model.input_example is not None:  # warm: the first real request should not pay for it
            await asyncio.to_thread(model.predict, model.input_example)
        batcher = None
        if self.max_batch > 1 and model.batchable:
            batcher = Batcher(model, self.max_batch, self.max_wait_s, self.metrics)
        slot = Slot(model, version, record, batcher)
        slot.idle.set()
        return slot

    def _retire(self, old: Slot | None, keep: tuple[Slot | None, ...]) -> None:
        if old is not None and all(old is not k for k in keep):
            self.spawn(old.retire())

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _slot(self, version: int, fresh: list[Slot]) -> Slot:
        """A live slot of ``version`` if there is one (no reload), else a newly loaded one."""
        for slot in (self.primary, self.canary, self.shadow, *fresh):
            if slot is not None and slot.version == version:
                return slot
        slot = await self._load(version)
        fresh.append(slot)
        return slot

    async def set_versions(self, primary: int, canary: tuple[int, float] | None = None,
                           shadow: int | None = None) -> bool:
        """Make the given versions live; True when all loaded. On a failure nothing changes: the
        current slots keep serving and ``last_error`` says why (also reported as "failed")."""
        async with self._lock:
            fresh: list[Slot] = []
            try:
                new_primary = await self._slot(primary, fresh)
                new_canary = await self._slot(canary[0], fresh) if canary else None
                new_shadow = await self._slot(shadow, fresh) if shadow is not None else None
            except Exception as err:  # noqa: BLE001 - any load failure keeps the old version serving
                for slot in fresh:  # loaded before the failure: never served, stopped now
                    await slot.retire()
                self.last_error = f"version {primary} failed to load: {getattr(err, 'message', None) or err}"
                log.warning("%s", self.last_error)
                if self.report is not None:
                    await self.report("failed", primary, self.last_error)
                return False
            old = (self.primary, self.canary, self.shadow)
            self.primary, self.canary, self.shadow = new_primary, new_canary, new_shadow
            self.canary_percent = canary[1] if canary else 0.0
            self.last_error = None
            for retired in old:
                self._retire(retired, (self.primary, self.canary, self.shadow))
            self.metrics.versions = {"primary": primary}
            if new_canary is not None:
                self.metrics.versions["canary"] = new_canary.version
            if new_shadow is not None:
                self.metrics.versions["shadow"] = new_shadow.version
        if self.report is not None:
            await self.report("started", primary, "")
        return True

    def choose(self) -> tuple[Slot, str]:
        """The slot for the next request and its role."""
        assert self.primary is not None
        if self.canary is not None and self.rng.random() * 100.0 < self.canary_percent:
            return self.canary, "canary"
        return self.primary, "primary"

    async def close(self) -> None:
        for slot in {id(s): s for s in (self.primary, self.canary, self.shadow) if s is not None}.values():
            if slot.batcher is not None:
                await slot.batcher.close()
        for task in list(self.background):
            task.cancel()
