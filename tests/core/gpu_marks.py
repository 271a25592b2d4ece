"""Markers shared by the GPU tests: they run where a CUDA GPU is usable and skip cleanly elsewhere."""

from __future__ import annotations

import pytest

import cairn.core

_INFO = cairn.core.build_info()
GPU_USABLE = bool(_INFO["gpu_usable"])
needs_gpu = pytest.mark.skipif(not GPU_USABLE, reason=f"no usable CUDA GPU: {_INFO['gpu_reason']}")
no_gpu = pytest.mark.skipif(GPU_USABLE, reason="a GPU is usable here")
