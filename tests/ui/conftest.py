"""One ``cairn up`` per test process, shared by every browser test module (Playwright: one per module).

Each module works in a project of its own, so modules that land on the same worker share the
stack without seeing each other's runs; with ``--dist loadfile`` there are at most as many
stacks as workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from up_driver import Up, start_up

# The webhooks page's test delivers to a receiver on loopback, quickly given up on.
STACK_ENV = {"CAIRN_WEBHOOKS_ALLOW_PRIVATE": "true", "CAIRN_WEBHOOK_ATTEMPTS": "2",
             "CAIRN_WEBHOOK_BACKOFF_S": "0.05"}


@pytest.fixture(scope="session")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    running = start_up(tmp_path_factory.mktemp("ui") / "data", env=STACK_ENV)
    try:
        yield running.wait_healthy()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def pw() -> Iterator[Any]:
    """Per module, not per session: Playwright's sync API keeps an asyncio loop running in this
    thread while it is open, and a later module's ``asyncio.run`` on the same worker would fail."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        yield p
