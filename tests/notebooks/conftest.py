"""Fixtures for notebook tests: a platform of the module's own (its agents run reproduce jobs), and
one real Jupyter kernel (ipykernel through jupyter_client) per module that the tests send cells to,
as a notebook front end would."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from cairn.sdk.client import Client

from platform_harness import Platform, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scheduler"))
from agent_pool import Agents  # noqa: E402 - the scheduler tests' real agent processes
from notebook_kernel import SECRET, Kernel  # noqa: E402


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running(Platform(tmp_path_factory.mktemp("platform"))) as plat:
        yield plat


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[Client]:
    with Client(platform.gateway, platform.token) as c:
        yield c


@pytest.fixture(scope="module")
def agents(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    pool = Agents(platform, tmp_path_factory.mktemp("agents"))
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def kernel(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """One kernel for the module, started as Jupyter Server starts a notebook's kernel: with
    ``JPY_SESSION_NAME`` naming the notebook (``train.ipynb`` in its folder)."""
    folder = tmp_path_factory.mktemp("notebook")
    runtime = tmp_path_factory.mktemp("jupyter-runtime")  # no Jupyter server of the machine is asked
    env = {**os.environ, "CAIRN_URL": platform.gateway, "CAIRN_TOKEN": platform.token,
           "JPY_SESSION_NAME": str(folder / "train.ipynb"), "JUPYTER_RUNTIME_DIR": str(runtime),
           "NB_SERVICE_TOKEN": SECRET, "CAIRN_SYSTEM_METRICS": "0"}
    for name in ("CAIRN_RUN_ID", "CAIRN_PROJECT", "CAIRN_NOTEBOOK_OUTPUTS"):
        env.pop(name, None)
    manager = KernelManager(kernel_name="python3", connection_file=str(runtime / "kernel-test.json"))
    manager.start_kernel(env=env, cwd=str(folder))
    kc = manager.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        yield Kernel(manager, kc, folder)
    finally:
        kc.stop_channels()
        manager.shutdown_kernel(now=True)
