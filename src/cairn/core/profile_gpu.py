"""The GPU path of :func:`cairn.core.profile.numeric_stats` (``device="cuda"`` / ``"auto"``).

Device columns (anything with ``__cuda_array_interface__``, e.g. CuPy arrays) are read in place;
host columns (NumPy, Arrow) are copied to the device once. A device column has no validity bitmap:
NaN and +-inf are its missing values; an Arrow column's nulls become NaN on the way over, and
integer columns become float64 (the conversion the CPU path makes per value). The kernel's logic
is shared with a CPU emulation tested on every machine (tests/core/test_profile_gpu_emulation.py);
docs/core.md "Column statistics for profiles" and docs/gpu.md say what equals the CPU exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

from cairn import _core
from cairn.core.device import gpu_usable, is_device_array, require_gpu
from cairn.core.gpu import _cupy

_FLOATS = ("float32", "float64")


def _host_values(column: Any, index: int) -> np.ndarray:
    """A host column as a 1-D float32/float64 numpy array with NaN where Arrow has nulls."""
    if isinstance(column, pa.ChunkedArray | pa.Array):
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)) or (
            pa.types.is_float16(column.type)
        ):
            raise TypeError(
                f"column {index}: Arrow type {column.type} is not numeric; expected float32/float64, "
                "int8..int64 or uint8..uint64"
            )
        if column.null_count:
            column = column.cast(pa.float64()) if pa.types.is_integer(column.type) else column
            column = column.fill_null(float("nan"))
        column = column.to_numpy()
    if not isinstance(column, np.ndarray):
        raise TypeError(
            f"column {index}: expected a CUDA device array, a pyarrow Array/ChunkedArray or a numpy "
            f"array, got {type(column).__name__}"
        )
    if column.ndim != 1:
        raise ValueError(f"column {index}: a column must be 1-D, got shape {column.shape}")
    if column.dtype.kind not in "iuf" or column.dtype.itemsize > 8 or column.dtype == np.float16:
        raise TypeError(f"column {index}: dtype {column.dtype} is not a supported number type")
    if column.dtype.name not in _FLOATS:
        column = column.astype(np.float64)
    return column


def _as_cupy(cp: Any, column: Any) -> Any:
    """A CuPy view of a device array (``__cuda_array_interface__`` or DLPack), no copy."""
    return cp.asarray(column) if hasattr(column, "__cuda_array_interface__") else cp.from_dlpack(column)


def to_numpy(column: Any) -> np.ndarray:
    """A NumPy copy of a device column, for the CPU path."""
    cp = _cupy("numeric_stats of a device column")
    return cp.asnumpy(_as_cupy(cp, column))


def _device_column(cp: Any, column: Any, index: int) -> Any:
    """A 1-D contiguous float32/float64 CuPy array for one column (a device column in place)."""
    if is_device_array(column):
        arr = _as_cupy(cp, column)
    else:
        arr = cp.asarray(_host_values(column, index))
    if arr.ndim != 1:
        raise ValueError(f"column {index}: a column must be 1-D, got shape {arr.shape}")
    if arr.dtype.name not in _FLOATS:
        if arr.dtype.kind not in "iu":
            raise TypeError(f"column {index}: dtype {arr.dtype} is not a supported number type")
        arr = arr.astype(cp.float64)
    return cp.ascontiguousarray(arr)


def _specs(cp: Any, columns: Sequence[Any], edges: Sequence[np.ndarray | None]) -> tuple[list, list]:
    """(specs for _core.profile_numeric_cuda, the device arrays they point into)."""
    held: list[Any] = []
    specs = []
    for i, (column, e) in enumerate(zip(columns, edges)):
        arr = _device_column(cp, column, i)
        held.append(arr)
        if e is None:
            eptr, nedges = 0, -1
        else:
            d = cp.asarray(e, dtype=cp.float64)
            held.append(d)
            eptr, nedges = (d.data.ptr if d.size else 0), int(d.size)
        specs.append((arr.data.ptr if arr.size else 0, arr.dtype.name, int(arr.size), eptr, nedges))
    return specs, held


def numeric_stats_cuda(
    columns: Sequence[Any], edges: Sequence[np.ndarray | None], alpha: float
) -> list[tuple]:
    """The raw per-column tuples of the profile kernel (edges already validated on the host)."""
    require_gpu("numeric_stats")
    cp = _cupy("numeric_stats on the GPU")
    specs, held = _specs(cp, columns, edges)
    stream = cp.cuda.get_current_stream()
    raw = _core.profile_numeric_cuda(specs, float(alpha), int(stream.ptr))
    del held
    return list(raw)


def kernel_seconds(
    columns: Sequence[Any], edges: Sequence[np.ndarray | None], alpha: float, repeats: int = 3
) -> float:
    """Benchmark helper: mean seconds of the kernel alone on device columns (CUDA events)."""
    require_gpu("numeric_stats")
    cp = _cupy("numeric_stats on the GPU")
    specs, held = _specs(cp, columns, edges)
    seconds = float(_core.profile_numeric_cuda_seconds(specs, float(alpha), int(repeats)))
    del held
    return seconds


def wants_gpu(columns: Sequence[Any]) -> bool:
    """``device="auto"``: the GPU when a column is already on the device and a GPU is usable."""
    return any(is_device_array(c) for c in columns) and gpu_usable()
