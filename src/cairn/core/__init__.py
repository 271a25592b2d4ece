"""Cairn's core: BLAKE3 fingerprints and metric aggregation, on the CPU and (when present) the GPU.

This typed module is the public face of the private extension ``cairn._core``.
"""

from __future__ import annotations

from typing import Any

from cairn import _core
from cairn.core.gpu import (
    GpuUnavailableError,
    blake3_gpu,
    blake3_gpu_file,
    gpu_available,
    segment_reduce_gpu,
)

__all__ = [
    "GpuUnavailableError",
    "blake3_gpu",
    "blake3_gpu_file",
    "build_info",
    "gpu_available",
    "segment_reduce_gpu",
]


def build_info() -> dict[str, Any]:
    """Facts about this build: version, compiler, SIMD level, CUDA compiled, GPU usable (and why not)."""
    return dict(_core.build_info())
