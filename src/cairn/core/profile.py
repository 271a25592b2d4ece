"""Numeric column statistics for data profiles, in one pass of the C++ core (GIL released).

For each column: how many values are finite and how many missing, min/max, mean and M2 (mergeable
with Chan's formula), a log-bucket quantile sketch (mergeable by adding buckets) and, when edges
are given, a histogram. The monitor's profiles (cairn.monitor.profile) are built from these.

Columns are read where they lie: Arrow arrays through their buffers (validity bitmap and offset
honoured, ChunkedArrays chunk by chunk), numpy arrays through the buffer protocol; no copy of a
column is made (a non-contiguous or non-native-endian numpy array is made contiguous first).
The contract, the bucket definition and the sketch's error bound are in docs/core.md, "Column
statistics for profiles".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]

from cairn import _core
from cairn.core import device as _device
from cairn.core import profile_gpu
from cairn.core.device import Device

__all__ = [
    "SKETCH_ALPHA",
    "SKETCH_MAX_INDEX",
    "SKETCH_MIN",
    "NumericStats",
    "numeric_stats",
    "sketch_gamma",
]

SKETCH_ALPHA = 0.005
"""Relative accuracy of the log-bucket quantile sketch."""
SKETCH_MIN = 1e-12
"""Magnitudes below this (and 0) are counted in ``zero``, not in a bucket."""
_SKETCH_MAX_MAGNITUDE = 1e12


def sketch_gamma(alpha: float = SKETCH_ALPHA) -> float:
    """Ratio between consecutive bucket boundaries: ``(1 + alpha) / (1 - alpha)``."""
    return (1 + alpha) / (1 - alpha)


def sketch_max_index(alpha: float = SKETCH_ALPHA) -> int:
    """The largest bucket index for ``alpha``; larger magnitudes are clamped into it."""
    return math.ceil(math.log(_SKETCH_MAX_MAGNITUDE) / math.log(sketch_gamma(alpha)))


SKETCH_MAX_INDEX: int = sketch_max_index()
"""The largest bucket index at SKETCH_ALPHA (2764)."""

_ARROW_TYPES = {
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.uint8(): "uint8",
    pa.uint16(): "uint16",
    pa.uint32(): "uint32",
    pa.uint64(): "uint64",
}
_NUMPY_TYPES = {np.dtype(name): name for name in _ARROW_TYPES.values()}
_ACCEPTED = "float32/float64, int8..int64 or uint8..uint64"


@dataclass(frozen=True)
class NumericStats:
    """Statistics of one numeric column.

    ``count`` values are finite; ``missing`` are null, NaN or +-inf. ``min``/``max``/``mean`` are
    NaN and ``m2`` is 0 when ``count == 0``. ``pos[i]`` counts the positive values in bucket
    ``pos_offset + i`` (``gamma**(k-1) < x <= gamma**k``), ``neg`` the negative ones by magnitude;
    ``zero`` those with ``|x| < SKETCH_MIN``. ``hist[j]`` counts the finite values with exactly
    ``j`` edges ``<= x``; None when no edges were given.
    """

    count: int
    missing: int
    min: float
    max: float
    mean: float
    m2: float
    zero: int
    pos_offset: int
    pos: npt.NDArray[np.int64]
    neg_offset: int
    neg: npt.NDArray[np.int64]
    hist: npt.NDArray[np.int64] | None


def _arrow_pieces(chunks: Sequence[Any], index: int) -> list[tuple[Any, Any, int, int]]:
    pieces = []
    for chunk in chunks:
        validity, data = chunk.buffers()[:2]
        if data is None and len(chunk) and chunk.null_count != len(chunk):
            raise ValueError(f"column {index}: an Arrow array without a data buffer")
        pieces.append((data, validity, chunk.offset, len(chunk)))
    return pieces


def _column_spec(column: Any, index: int) -> tuple[str, list[tuple[Any, Any, int, int]]]:
    """(value type name, pieces) of one column, reading its buffers in place."""
    if isinstance(column, pa.ChunkedArray | pa.Array):
        name = _ARROW_TYPES.get(column.type)
        if name is None:
            raise TypeError(
                f"column {index}: Arrow type {column.type} is not numeric; expected {_ACCEPTED}"
            )
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        return name, _arrow_pieces(chunks, index)
    if isinstance(column, np.ndarray):
        if column.ndim != 1:
            raise ValueError(
                f"column {index}: a numpy column must be 1-D, got shape {column.shape}"
            )
        name = _NUMPY_TYPES.get(column.dtype.newbyteorder("="))
        if name is None:
            raise TypeError(
                f"column {index}: dtype {column.dtype} is not numeric; expected {_ACCEPTED}"
            )
        if not column.dtype.isnative or not column.flags.c_contiguous:
            column = np.ascontiguousarray(column, dtype=column.dtype.newbyteorder("="))
        return name, [(column, None, 0, len(column))]
    raise TypeError(
        f"column {index}: expected a pyarrow Array/ChunkedArray or a numpy array, got {type(column).__name__}"
    )


def _to_host(column: Any) -> Any:
    """A NumPy copy of a device column for the CPU path; anything else unchanged."""
    if not _device.is_device_array(column):
        return column
    return profile_gpu.to_numpy(column)


def _edges(edges: Any, index: int) -> npt.NDArray[np.float64] | None:
    if edges is None:
        return None
    e = np.ascontiguousarray(edges, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"column {index}: edges must be 1-D, got shape {e.shape}")
    if np.isnan(e).any():
        raise ValueError(f"column {index}: edges contain NaN; give sorted numbers")
    if (np.diff(e) < 0).any():
        raise ValueError(f"column {index}: edges are not sorted; sort them ascending")
    return e


def numeric_stats(
    columns: Sequence[pa.Array | pa.ChunkedArray | np.ndarray],
    edges: Sequence[np.ndarray | None] | None = None,
    *,
    alpha: float = SKETCH_ALPHA,
    threads: int | None = None,
    device: Device = "auto",
) -> list[NumericStats]:
    """Statistics of each column in one pass; ``edges[i]`` (sorted float64, or None) gives column
    ``i`` a histogram.

    Work is spread over ``threads`` threads (None: CAIRN_THREADS or every core), by column and,
    for long columns, by row range; the results are identical for any thread count. Bad input
    (a non-numeric column, unsorted or NaN edges, ``len(edges) != len(columns)``) raises
    TypeError/ValueError naming the column, before any work is done.

    ``device``: ``"cpu"``, ``"cuda"`` (GpuUnavailableError without a usable GPU; host columns are
    copied to the device once) or ``"auto"`` (the GPU when a column is a device array, e.g. CuPy,
    and a GPU is usable; else the CPU, device columns copied to the host). On the GPU, counts,
    sketch buckets, histograms, min and max equal the CPU's; mean and m2 agree within 1e-9
    relative (cairn.core.profile_gpu, docs/gpu.md).

    >>> s = numeric_stats([np.array([1.0, 2.0, np.nan])], [np.array([1.5])])[0]
    >>> (s.count, s.missing, s.mean, s.hist.tolist())
    (2, 1, 1.5, [1, 1])
    """
    if edges is not None and len(edges) != len(columns):
        raise ValueError(
            f"edges has {len(edges)} entries for {len(columns)} columns; give one per column (None for none)"
        )
    if not (0.0001 <= alpha <= 0.5):
        raise ValueError(f"alpha must be in [0.0001, 0.5], got {alpha}")
    if threads is not None and threads < 1:
        raise ValueError("threads must be >= 1 (or None for CAIRN_THREADS / every core)")
    _device.check_device(device)
    es: list[np.ndarray | None] = (
        [None] * len(columns) if edges is None else [_edges(e, i) for i, e in enumerate(edges)]
    )
    if device == "cuda" or (device == "auto" and profile_gpu.wants_gpu(columns)):
        return [NumericStats(*r) for r in profile_gpu.numeric_stats_cuda(columns, es, alpha)]
    specs = [_column_spec(_to_host(c), i) for i, c in enumerate(columns)]
    raw = _core.profile_numeric(specs, es, float(alpha), 0 if threads is None else int(threads))
    return [NumericStats(*r) for r in raw]
