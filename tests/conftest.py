"""Shared fixtures: a real platform (nats-server, registry, gateway processes) per test module."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from platform_harness import Platform  # noqa: E402

_names = itertools.count()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    plat = Platform(tmp_path_factory.mktemp("platform")).start()
    try:
        yield plat
    finally:
        plat.stop()


@pytest.fixture(scope="module")
def api(platform: Platform) -> Iterator[httpx.Client]:
    """An HTTP client for the gateway's registry routes."""
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/registry", timeout=30,
                      headers=platform.headers) as client:
        yield client


@pytest.fixture()
def project(api: httpx.Client) -> str:
    """A fresh project for one test."""
    name = f"p{os.getpid()}-{next(_names)}"
    resp = api.post("/projects", json={"name": name})
    assert resp.status_code == 201, resp.text
    return name


@pytest.fixture()
def tmp_data(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture()
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A nats-server of this test's own (files under tmp_path); modules that share one server per
    module define their own ``nats_url``."""
    from cairn.natsserver import start_nats_server

    proc, url = start_nats_server(tmp_path / "nats")
    yield url
    proc.terminate()
    proc.wait()
