"""Fixtures for scheduler tests: a platform with short agent leases, and real agent processes."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from agent_pool import Agents

from cairn.sdk.client import Client

from platform_harness import Platform, running

LEASE_S = "3"
HEARTBEAT_S = "0.5"
_names = itertools.count()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running(Platform(tmp_path_factory.mktemp("platform"), extra_env={
            "CAIRN_SCHEDULER_LEASE_S": LEASE_S, "CAIRN_SCHEDULER_HEARTBEAT_S": HEARTBEAT_S})) as plat:
        yield plat


@pytest.fixture(scope="module")
def agents(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    pool = Agents(platform, tmp_path_factory.mktemp("agents"))
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[Client]:
    with Client(platform.gateway, platform.token) as c:
        yield c


@pytest.fixture()
def queue() -> str:
    """A queue of one's own, so tests in a module do not take each other's agents."""
    return f"q{os.getpid() % 1000}-{next(_names)}"
