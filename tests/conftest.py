"""Shared fixtures: a real platform (nats-server and every service process).

Starting a platform costs seconds, so modules that only need *a* running stack share one per test
session (per pytest-xdist worker: each worker is a session of its own): they mark themselves ``pytestmark = pytest.mark.shared_stack`` and keep apart by project
names of their own (the ``project`` fixture, or fixed names no other shared module uses). A module
that kills or restarts services, sets service environment, measures a process, counts every event
in the log, lists every project or token, or leaves background work behind (webhooks, agents,
sweeps) keeps a stack of its own: the default, ``own_platform``. Shared modules may assert that a
request appended nothing (``stream_last_seq`` unchanged) only because no shared module leaves
anything appending in the background (the metrics service's ``metric.summarized`` after a module's
last log is waited for when the module ends): keep it that way."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from platform_harness import Platform, running, wait_metrics_settled  # noqa: E402

_names = itertools.count()


# Modules that take longest run first: with ``--dist loadfile`` a long module scheduled last keeps
# one worker busy while the other idles; scheduled first, the short ones fill in around it.
SLOW_FIRST = ("tests/ui/", "tests/test_up_e2e.py", "tests/test_fuzz_api.py", "tests/pipelines/test_pipeline_e2e.py",
              "tests/scheduler/test_inputs.py", "tests/serving/test_serve_versions.py",
              "tests/mlflow_compat/test_mlflow_registry.py", "tests/scheduler/test_faults.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def slow(item: pytest.Item) -> bool:
        path = item.nodeid.split("::", 1)[0]
        return any(path.startswith(prefix) for prefix in SLOW_FIRST)

    items.sort(key=lambda item: not slow(item))  # stable: the order within each group is kept


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "shared_stack: the module's tests run on the session's shared platform "
                                       "(see tests/conftest.py for what makes a module safe to share)")


@pytest.fixture(scope="session")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform for every ``shared_stack`` module of the session (its pipelines service may
    fetch local git repositories: the pipelines CLI tests register one by path)."""
    with running(Platform(tmp_path_factory.mktemp("shared-platform"),
                          service_env={"pipelines": {"CAIRN_PIPELINES_ALLOW_LOCAL_REPOS": "true"}})) as plat:
        yield plat


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A fresh platform for this module alone."""
    with running(Platform(tmp_path_factory.mktemp("platform"))) as plat:
        yield plat


@pytest.fixture(scope="module")
def platform(request: pytest.FixtureRequest) -> Platform:
    """The session's shared platform for a ``shared_stack`` module, else one of the module's own.
    A shared module ends when the metrics service has announced the summaries of what it logged
    (``metric.summarized`` follows a write by a moment), so it leaves no append behind."""
    if request.node.get_closest_marker("shared_stack") is not None:
        plat: Platform = request.getfixturevalue("shared_platform")
        request.addfinalizer(lambda: wait_metrics_settled(plat))
        return plat
    return request.getfixturevalue("own_platform")


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
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
