"""Cairn's core: BLAKE3 fingerprints and metric aggregation, on the CPU and (when present) the GPU.

This typed module is the public face of the private extension ``cairn._core``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cairn import _core
from cairn.core.device import DEVICES, Device
from cairn.core.errors import (
    FileChangedError,
    FingerprintError,
    SpecialFileError,
    UnsupportedTypeError,
)
from cairn.core.fingerprint import (
    DEFAULT_LEAF_SIZE,
    FileSubtrees,
    blake3,
    file_subtrees,
    fingerprint_file,
    leaf_count,
    leaf_cv,
    refingerprint,
    refresh_file_subtrees,
    subtree_cvs,
)
from cairn.core.fingerprint_cache import FingerprintCache
from cairn.core.gpu import (
    GpuUnavailableError,
    blake3_gpu,
    blake3_gpu_file,
    gpu_available,
    segment_quantiles_gpu,
    segment_reduce_gpu,
)
from cairn.core.manifest import Manifest, ManifestEntry
from cairn.core.tree_fingerprint import fingerprint_tree

if TYPE_CHECKING:
    import pyarrow as pa

    from cairn.core.aggregate import (
        SegmentHistogram,
        downsample_minmax,
        lttb,
        rolling,
        segment_histogram,
        segment_quantiles,
        segment_reduce,
    )

__all__ = [
    "DEFAULT_LEAF_SIZE",
    "DEVICES",
    "FileChangedError",
    "FileSubtrees",
    "FingerprintCache",
    "FingerprintError",
    "Manifest",
    "ManifestEntry",
    "SpecialFileError",
    "UnsupportedTypeError",
    "blake3",
    "build_info",
    "file_subtrees",
    "fingerprint_file",
    "fingerprint_table",
    "fingerprint_tree",
    "leaf_count",
    "leaf_cv",
    "refingerprint",
    "refresh_file_subtrees",
    "subtree_cvs",
]

# The aggregation kernels' module imports numpy and pandas (a quarter second): loaded on first use
# (module __getattr__ below), so that fingerprinting (`cairn fingerprint`) does not pay for them.
_AGGREGATE = {"SegmentHistogram", "downsample_minmax", "lttb", "rolling", "segment_histogram",
              "segment_quantiles", "segment_reduce"}

__all__ += [
    "GpuUnavailableError",
    "blake3_gpu",
    "blake3_gpu_file",
    "gpu_available",
    "segment_quantiles_gpu",
    "segment_reduce_gpu",
    "SegmentHistogram",
    "downsample_minmax",
    "lttb",
    "rolling",
    "segment_histogram",
    "segment_quantiles",
    "segment_reduce",
    "threads",
]


def build_info() -> dict[str, Any]:
    """Facts about this build: version, compiler, SIMD level, CUDA compiled, GPU usable (and why not)."""
    return dict(_core.build_info())


def threads() -> int:
    """Threads every parallel core call may use, the caller's included (the size of the core's one
    thread pool plus the caller): ``CAIRN_THREADS`` when set to a positive integer, else every
    hardware thread. Read once per process, at the first call that needs it."""
    return int(_core.threads())


def fingerprint_table(table: pa.Table | pa.RecordBatch, *, device: Device = "auto") -> str:
    """Hex content fingerprint of an Arrow table, independent of chunking and storage format.

    See :mod:`cairn.core.table_fingerprint` for what it covers and for ``device``. Imports pyarrow
    on first use.
    """
    from cairn.core.table_fingerprint import fingerprint_table as _fingerprint_table

    return _fingerprint_table(table, device=device)


def __getattr__(name: str) -> Any:
    if name in _AGGREGATE:
        from cairn.core import aggregate

        return getattr(aggregate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
