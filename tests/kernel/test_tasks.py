"""stop_tasks: a loop that swallowed a cancellation (as ``asyncio.wait_for`` can on Python 3.11,
inside nats-py's fetch) is cancelled again until it ends, so a service's stop cannot hang on it."""

from __future__ import annotations

import asyncio

from cairn.kernel.tasks import stop_tasks


def _stubborn(swallow: int) -> tuple[asyncio.Task[None], list[int]]:
    """A loop that takes its first ``swallow`` cancellations for something else and goes on."""
    seen = [0]

    async def loop() -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                seen[0] += 1
                if seen[0] > swallow:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr] - what the race amounts to

    return asyncio.get_running_loop().create_task(loop()), seen


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again_until_it_ends() -> None:
    task, seen = _stubborn(swallow=2)
    await asyncio.sleep(0.02)
    task.cancel()  # what a plain stop does: the loop goes on
    await asyncio.sleep(0.1)
    assert not task.done() and seen[0] == 1
    await asyncio.wait_for(stop_tasks(task, every_s=0.05), timeout=10)
    assert task.cancelled() and seen[0] == 3


async def test_none_finished_and_failed_tasks_are_fine() -> None:
    async def fails() -> None:
        raise RuntimeError("ended badly")

    failed = asyncio.get_running_loop().create_task(fails())
    finished = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await stop_tasks(None, failed, finished)  # logged, not raised
    assert failed.done() and finished.done()
