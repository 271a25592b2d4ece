"""Fixtures for the MLflow-compatibility tests (the real ``mlflow`` client, from the test extra)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="the MLflow tests need the test extra (mlflow-skinny, scikit-learn)")

from mlflow_scripts import ScriptResult, run_script  # noqa: E402

RunMlflow = Callable[..., ScriptResult]


@pytest.fixture()
def run_mlflow(platform, tmp_path: Path) -> RunMlflow:
    """``run_mlflow(code, token=..., uri=...)``: run MLflow client code against the platform."""

    def run(code: str, *, token: str | None = platform.token, uri: str | None = None,
            env: dict[str, str] | None = None) -> ScriptResult:
        return run_script(tmp_path, code, uri=uri or platform.gateway, token=token, env=env)

    return run
