"""Cairn's core: BLAKE3 fingerprints and metric aggregation, on the CPU and (when present) the GPU.

This typed module is the public face of the private extension ``cairn._core``.
"""

from __future__ import annotations

from typing import Any

from cairn import _core
from cairn.core.aggregate import (
    SegmentHistogram,
    downsample_minmax,
    lttb,
    rolling,
    segment_histogram,
    segment_quantiles,
    segment_reduce,
)

__all__ = ["build_info"]
__all__ += [
    "SegmentHistogram",
    "downsample_minmax",
    "lttb",
    "rolling",
    "segment_histogram",
    "segment_quantiles",
    "segment_reduce",
]


def build_info() -> dict[str, Any]:
    """Facts about this build: version, compiler, SIMD level, CUDA compiled, GPU usable (and why not)."""
    return dict(_core.build_info())
