"""Pure-numpy reference for ``cairn.core.profile.numeric_stats`` (issue 20, part A's contract).

Used when the C++ core does not have the function yet, and by the tests as the reference the
core must agree with. Slow on purpose: it is written to be obviously correct, one column at a
time, with copies.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SKETCH_ALPHA = 0.005
SKETCH_MIN = 1e-12


def sketch_gamma(alpha: float = SKETCH_ALPHA) -> float:
    """The ratio between neighbouring bucket boundaries for a relative accuracy ``alpha``."""
    return (1 + alpha) / (1 - alpha)


SKETCH_MAX_INDEX = math.ceil(math.log(1e12) / math.log(sketch_gamma()))


@dataclass(frozen=True)
class NumericStats:
    """One column's statistics in one pass (see the contract in docs/monitor.md)."""

    count: int
    missing: int
    min: float
    max: float
    mean: float
    m2: float
    zero: int
    pos_offset: int
    pos: np.ndarray
    neg_offset: int
    neg: np.ndarray
    hist: np.ndarray | None


def _as_float_array(column: pa.Array | pa.ChunkedArray | np.ndarray, index: int) -> np.ndarray:
    """The column as float64 with nulls as NaN; bool and non-numeric types are a TypeError."""
    if isinstance(column, np.ndarray):
        if column.dtype.kind not in "iuf":
            raise TypeError(f"column {index}: dtype {column.dtype} is not numeric")
        return column.astype(np.float64, copy=False).ravel()
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        kind = column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise TypeError(f"column {index}: Arrow type {kind} is not numeric")
        as_float = pc.cast(column, pa.float64(), safe=False)
        if isinstance(as_float, pa.ChunkedArray):
            as_float = as_float.combine_chunks() if as_float.num_chunks else pa.array([], pa.float64())
        return np.asarray(as_float.to_numpy(zero_copy_only=False), dtype=np.float64)
    raise TypeError(f"column {index}: {type(column).__name__} is not an Arrow or numpy array")


@functools.lru_cache(maxsize=8)
def bucket_boundaries(alpha: float = SKETCH_ALPHA) -> tuple[int, np.ndarray]:
    """(k_min, [gamma**k for k = k_min .. max index]) computed by Python's pow (libm), the
    definition of a bucket's boundary; numpy's vectorised pow differs in the last bit."""
    gamma = sketch_gamma(alpha)
    max_index = math.ceil(math.log(1e12) / math.log(gamma))
    k_min = -max_index - 2  # gamma**k_min < SKETCH_MIN: no counted value falls below it
    return k_min, np.array([gamma ** k for k in range(k_min, max_index + 1)], dtype=np.float64)


def bucket_indices(magnitudes: np.ndarray, alpha: float = SKETCH_ALPHA) -> np.ndarray:
    """k with gamma**(k-1) < |x| <= gamma**k; larger |x| clamp into the largest bucket."""
    k_min, bounds = bucket_boundaries(alpha)
    position = np.searchsorted(bounds, magnitudes, side="left")
    return np.minimum(position, len(bounds) - 1).astype(np.int64) + k_min


def _dense(indices: np.ndarray) -> tuple[int, np.ndarray]:
    if indices.size == 0:
        return 0, np.zeros(0, dtype=np.int64)
    offset = int(indices.min())
    return offset, np.bincount(indices - offset).astype(np.int64)


def _one_column(values: np.ndarray, edges: np.ndarray | None, alpha: float) -> NumericStats:
    finite = values[np.isfinite(values)]
    count = int(finite.size)
    missing = int(values.size - count)
    if count:
        mean = float(np.mean(finite))
        m2 = float(np.sum((finite - mean) ** 2))
        low, high = float(finite.min()), float(finite.max())
    else:
        mean = m2 = 0.0
        low = high = math.nan
    magnitudes = np.abs(finite)
    is_zero = magnitudes < SKETCH_MIN
    pos_offset, pos = _dense(bucket_indices(finite[(finite > 0) & ~is_zero], alpha))
    neg_offset, neg = _dense(bucket_indices(-finite[(finite < 0) & ~is_zero], alpha))
    hist = None
    if edges is not None:
        where = np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="right")
        hist = np.bincount(where, minlength=len(edges) + 1).astype(np.int64)
    return NumericStats(count=count, missing=missing, min=low, max=high, mean=mean, m2=m2,
                        zero=int(is_zero.sum()), pos_offset=pos_offset, pos=pos,
                        neg_offset=neg_offset, neg=neg, hist=hist)


def numeric_stats(columns: Sequence[pa.Array | pa.ChunkedArray | np.ndarray],
                  edges: Sequence[np.ndarray | None] | None = None, *,
                  alpha: float = SKETCH_ALPHA, threads: int | None = None) -> list[NumericStats]:
    """Count, missing, min/max, mean/m2, log-bucket sketch and histogram of each column."""
    del threads  # one thread: this is the reference, not the fast path
    if edges is not None and len(edges) != len(columns):
        raise ValueError(f"edges has {len(edges)} entries for {len(columns)} columns")
    results = []
    for index, column in enumerate(columns):
        column_edges = None if edges is None else edges[index]
        results.append(_one_column(_as_float_array(column, index), column_edges, alpha))
    return results
