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


# Modules that take longest run first, longest of all first (seconds on a quiet 2-core machine,
# three workers, `--durations=0` summed per module, 2026-12-06; modules under 8 s keep collection
# order after them): with ``--dist loadfile`` a long module scheduled last keeps one worker busy
# while the others idle; scheduled first, the short ones fill in around it. Re-measure when a
# module grows.
SLOW_FIRST: dict[str, int] = {
    "tests/test_up_guard.py": 58, "tests/cluster/test_nats_cluster.py": 42,
    "tests/serving/test_serve_flavours.py": 41, "tests/scheduler/test_faults.py": 39,
    "tests/pipelines/test_pipeline_e2e.py": 36, "tests/mlflow_compat/test_acceptance_plugin.py": 35,
    "tests/ui/test_browser.py": 33, "tests/test_fuzz_api.py": 28,
    "tests/mlflow_compat/test_mlflow_tracking.py": 28, "tests/cluster/test_leader.py": 27,
    "tests/access/test_route_permissions.py": 25, "tests/registry/test_crash_safety.py": 25,
    "tests/ui/test_admin_pages.py": 24, "tests/scheduler/test_replica_sets.py": 24,
    "tests/ui/test_run_files.py": 23, "tests/monitor_service/test_monitor_alerts.py": 22,
    "tests/test_up_e2e.py": 20, "tests/access/test_nats_permissions.py": 19,
    "tests/scheduler/test_deployment_replicas.py": 19, "tests/cluster/test_lagging_scheduler_replica.py": 18,
    "tests/monitor_service/test_monitor_actions.py": 18, "tests/scheduler/test_inputs.py": 17,
    "tests/artifacts/test_presigned_transfers.py": 17, "tests/mlflow_compat/test_mlflow_registry.py": 16,
    "tests/cluster/test_replicas_services.py": 16, "tests/monitor_service/test_monitor_e2e.py": 16,
    "tests/scheduler/test_gang.py": 16, "tests/monitor/test_bench_monitor_smoke.py": 16,
    "tests/ui/test_mlflow_links.py": 15, "tests/access/test_path_attacks.py": 15,
    "tests/cluster/test_replicas_metrics.py": 15, "tests/access/test_webhooks.py": 15,
    "tests/test_gateway.py": 14, "tests/metrics/test_metrics_sdk.py": 14, "tests/ui/test_csp.py": 13,
    "tests/mlflow_compat/test_mlflow_traces.py": 13, "tests/pipelines/test_engine_service.py": 13,
    "tests/cluster/test_replicas_webhooks.py": 13, "tests/artifacts/test_artifacts_api.py": 12,
    "tests/test_cli_agent_link.py": 12, "tests/ui/test_compare_sweeps.py": 12,
    "tests/cluster/test_status_nats_cluster.py": 12, "tests/cluster/test_event_subscribers.py": 12,
    "tests/notebooks/test_notebook_server.py": 12, "tests/serving/test_inference_log.py": 12,
    "tests/serving/test_serve_versions.py": 11, "tests/cluster/test_replicas_artifacts.py": 11,
    "tests/metrics/test_metrics_crash.py": 11, "tests/notebooks/test_notebook_runs.py": 11,
    "tests/ui/test_datasets_experiments.py": 10, "tests/access/test_limits.py": 10,
    "tests/serving/test_serve_http.py": 10, "tests/lineage/test_scenario.py": 10,
    "tests/monitor_service/test_monitor_routes.py": 9, "tests/mlflow_compat/test_mlflow_logged_models.py": 9,
    "tests/media/test_media_api.py": 9, "tests/scheduler/test_jobs.py": 9, "tests/ui/test_deployments.py": 9,
    "tests/ui/test_run_page.py": 9, "tests/test_service_shutdown.py": 9, "tests/ui/test_pipelines_page.py": 9,
    "tests/integrations/test_integration_transformers.py": 9, "tests/mlflow_compat/test_mlflow_auth.py": 9,
    "tests/access/test_permissions.py": 8, "tests/scheduler/test_reproduce.py": 8,
    "tests/terraform/test_static_checks.py": 8, "tests/scheduler/test_sweeps_on_agents.py": 8,
    "tests/access/test_webhook_guard.py": 8, "tests/artifacts/test_backend_contract.py": 8,
    "tests/kernel/test_names.py": 8, "tests/lineage/test_projection.py": 8,
    "tests/artifacts/test_artifacts_s3_service.py": 8, "tests/access/test_tokens.py": 8,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: -SLOW_FIRST.get(item.nodeid.split("::", 1)[0], 0))  # stable within a module


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "shared_stack: the module's tests run on the session's shared platform "
                                       "(see tests/conftest.py for what makes a module safe to share)")


@pytest.fixture(scope="session", autouse=True)
def code_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The SDK's code-snapshot cache (``cairn.sdk.code_snapshot``) in the run's temp folder, shared
    by its workers, not in the home folder: every run started from the repository reuses the
    repository's archive, as a user's training loop would."""
    os.environ.setdefault("CAIRN_CODE_CACHE", str(tmp_path_factory.getbasetemp().parent / "code-cache"))


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
