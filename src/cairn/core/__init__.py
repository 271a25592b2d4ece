"""Cairn's core: BLAKE3 fingerprints and metric aggregation, on the CPU and (when present) the GPU.

This typed module is the public face of the private extension ``cairn._core``.
"""

from __future__ import annotations

from typing import Any

from cairn import _core

__all__ = ["build_info"]


def build_info() -> dict[str, Any]:
    """Facts about this build: version, compiler, SIMD level, CUDA compiled, GPU usable (and why not)."""
    return dict(_core.build_info())
