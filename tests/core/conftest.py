"""Fixtures for the core tests."""

from __future__ import annotations

from typing import Any

import pytest

from gpu_marks import GPU_USABLE


@pytest.fixture(scope="session")
def cupy() -> Any:
    """CuPy, on a machine with a usable GPU (the test skips elsewhere)."""
    if not GPU_USABLE:
        pytest.skip("no usable CUDA GPU")
    return pytest.importorskip("cupy")
