"""Metric aggregation kernels: segmented reductions, quantiles, chart downsampling, rolling windows
and drift histograms, computed by the C++ core with the GIL released.

Inputs may be numpy arrays, pyarrow Arrays/ChunkedArrays or sequences. float32/float64 values and
int32/int64 segment ids/offsets that are already 1-D and contiguous are passed to the core
without a copy (pyarrow arrays without nulls too); other dtypes are converted once (integers and
float16 values to float64). Arrow nulls become NaN.

Semantics (the full contract is in docs/core-aggregation.md):

* Segments are CSR ``offsets`` (int64, length ``num_segments + 1``, non-decreasing) or per-value
  ``segment_ids`` (any order; ``num_segments`` defaults to ``max(id) + 1``). With neither, all
  values form one segment.
* NaN values are skipped by every statistic and counted in ``nan_count``. A segment with no
  non-NaN value has count 0 and sum 0; every other statistic is NaN. Infinities propagate by IEEE
  arithmetic.
* Results do not depend on ``threads`` (bit-identical for any thread count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from cairn import _core
from cairn.core import device as _device
from cairn.core.device import Device

try:  # pyarrow is a dependency, but the kernels work without it
    import pyarrow as pa  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover
    pa = None

__all__ = [
    "REDUCE_OPS",
    "ROLLING_OPS",
    "SegmentHistogram",
    "downsample_minmax",
    "lttb",
    "rolling",
    "segment_histogram",
    "segment_quantiles",
    "segment_reduce",
]

# A numpy array, a pyarrow Array/ChunkedArray or a sequence of numbers.
ArrayLike: TypeAlias = Any

REDUCE_OPS = ("count", "nan_count", "sum", "min", "max", "mean", "var", "std", "first", "last")
ROLLING_OPS = ("count", "sum", "mean", "var", "std", "min", "max")
_VALUE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class SegmentHistogram(NamedTuple):
    """Per-segment histogram: ``counts`` has shape (num_segments, len(edges) - 1)."""

    counts: npt.NDArray[np.int64]
    underflow: npt.NDArray[np.int64]
    overflow: npt.NDArray[np.int64]
    nan_count: npt.NDArray[np.int64]


def _placement(what: str, device: str, out: str | None, *inputs: ArrayLike) -> tuple[bool, str]:
    """(run on the GPU?, "numpy" or "cupy" for the results) for the device rule of
    :mod:`cairn.core.device`: ``auto`` takes the GPU only for device-resident inputs."""
    _device.check_device(device)
    if out not in (None, "numpy", "cupy"):
        raise ValueError(f"out must be 'numpy', 'cupy' or None (as the input), not {out!r}")
    on_device = any(_device.is_device_array(a) for a in inputs if a is not None)
    if device == "cuda":
        _device.require_gpu(what)
        use_gpu = True
    else:
        use_gpu = device == "auto" and on_device and _device.gpu_usable()
    return use_gpu, out or ("cupy" if on_device else "numpy")


def _host(data: ArrayLike) -> ArrayLike:
    """NumPy copy of a device array (for the CPU path); anything else unchanged."""
    if data is None or not _device.is_device_array(data):
        return data
    from cairn.core.aggregate_gpu import cupy_module

    cp = cupy_module()
    arr = cp.asarray(data) if hasattr(data, "__cuda_array_interface__") else cp.from_dlpack(data)
    return cp.asnumpy(arr)


def _deliver(result: Any, kind: str) -> Any:
    """Converts an array (or a dict of them) to NumPy or CuPy."""
    if isinstance(result, dict):
        return {k: _deliver(v, kind) for k, v in result.items()}
    is_numpy = isinstance(result, np.ndarray)
    if kind == "numpy" and is_numpy or kind == "cupy" and not is_numpy:
        return result
    from cairn.core.aggregate_gpu import cupy_module

    cp = cupy_module()
    return cp.asnumpy(result) if kind == "numpy" else cp.asarray(result)


def _as_numpy(data: ArrayLike, name: str, nulls_as_nan: bool = False) -> np.ndarray:
    if pa is not None and isinstance(data, pa.ChunkedArray):
        data = data.chunk(0) if data.num_chunks == 1 else data.combine_chunks()
    if pa is not None and isinstance(data, pa.Array):
        if data.null_count == 0:
            try:
                return data.to_numpy(zero_copy_only=True)
            except pa.ArrowInvalid:
                return data.to_numpy(zero_copy_only=False)
        if not nulls_as_nan:
            raise ValueError(f"{name} has {data.null_count} nulls; it must have none")
        if pa.types.is_integer(data.type) or pa.types.is_floating(data.type):
            return data.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls -> NaN
        raise TypeError(f"{name}: unsupported Arrow type {data.type}")
    out = np.asarray(data)
    if out.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {out.shape}")
    return out


def _values(data: ArrayLike, name: str = "values") -> np.ndarray:
    arr = _as_numpy(data, name, nulls_as_nan=True)
    if arr.dtype not in _VALUE_DTYPES:
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    return np.ascontiguousarray(arr)


def _int64(data: ArrayLike, name: str) -> np.ndarray:
    arr = _as_numpy(data, name)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _segment_args(
    n: int,
    offsets: ArrayLike | None,
    segment_ids: ArrayLike | None,
    num_segments: int | None,
) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    if offsets is not None and segment_ids is not None:
        raise ValueError("give offsets or segment_ids, not both")
    if segment_ids is not None:
        ids = _as_numpy(segment_ids, "segment_ids")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"segment_ids must be integers, got dtype {ids.dtype}")
        if ids.dtype != np.int32:
            ids = ids.astype(np.int64, copy=False)
        ids = np.ascontiguousarray(ids)
        if len(ids) != n:
            raise ValueError(f"segment_ids has {len(ids)} entries for {n} values")
        if num_segments is None:
            num_segments = int(ids.max()) + 1 if len(ids) else 0
        if num_segments < 0:
            raise ValueError(f"num_segments must be >= 0, got {num_segments}")
        return None, ids, int(num_segments)
    if offsets is None:
        return np.array([0, n], dtype=np.int64), None, 1
    offs = _int64(offsets, "offsets")
    if len(offs) < 1:
        raise ValueError("offsets must have at least one entry (num_segments + 1)")
    return offs, None, len(offs) - 1


def _threads(threads: int | None) -> int:
    if threads is not None and threads < 1:
        raise ValueError("threads must be >= 1 (or None for all cores)")
    return 0 if threads is None else int(threads)


def segment_reduce(
    values: ArrayLike,
    offsets: ArrayLike | None = None,
    segment_ids: ArrayLike | None = None,
    num_segments: int | None = None,
    ops: Sequence[str] = ("count", "sum", "min", "max", "mean", "var"),
    ddof: int = 0,
    threads: int | None = None,
    device: Device = "auto",
    out: str | None = None,
) -> dict[str, Any]:
    """Reduce each segment of ``values``; returns ``{op: array of length num_segments}``.

    ``ops`` are any of REDUCE_OPS. ``count``/``nan_count`` are int64, the rest float64 (values
    accumulate in float64). ``var``/``std`` divide by ``count - ddof`` and are NaN when that is
    <= 0. ``first``/``last`` are the first/last non-NaN value in index order.

    ``device``: ``"cpu"``, ``"cuda"`` (GpuUnavailableError without a usable GPU) or ``"auto"``
    (the GPU only when the inputs are device arrays, e.g. CuPy; see :mod:`cairn.core.device`).
    Device arrays are copied to the host for the CPU, NumPy arrays to the GPU for CUDA. ``out``:
    ``"numpy"``, ``"cupy"`` or None (the kind of ``values``). GPU results match the CPU's exactly
    for counts, min, max, first and last, and within rtol 1e-9 for sum, mean, var and std.

    >>> segment_reduce([1.0, 2.0, 4.0], offsets=[0, 2, 3], ops=("sum", "mean"))["mean"]
    array([1.5, 4. ])
    """
    use_gpu, kind = _placement("segment_reduce", device, out, values, offsets, segment_ids)
    if ddof < 0:
        raise ValueError("ddof must be >= 0")
    for op in ops:
        if op not in REDUCE_OPS:
            raise ValueError(f"unknown op {op!r}; choose from {', '.join(REDUCE_OPS)}")
    if use_gpu:
        from cairn.core import aggregate_gpu

        gvals = aggregate_gpu.values_array(values)
        gvals, goffs = aggregate_gpu.segments(gvals, offsets, segment_ids, num_segments)
        return _deliver(aggregate_gpu.segment_reduce(gvals, goffs, list(ops), int(ddof)), kind)
    vals = _values(_host(values))
    offs, ids, nseg = _segment_args(len(vals), _host(offsets), _host(segment_ids), num_segments)
    result = _core.segment_reduce(vals, offs, ids, nseg, list(ops), int(ddof), _threads(threads))
    return _deliver({op: result[op] for op in ops}, kind)


def segment_quantiles(
    values: ArrayLike,
    q: float | Sequence[float] | npt.ArrayLike,
    offsets: ArrayLike | None = None,
    segment_ids: ArrayLike | None = None,
    num_segments: int | None = None,
    threads: int | None = None,
    *,
    device: Device = "auto",
    out: str | None = None,
) -> Any:
    """Exact quantiles of each segment (NaN skipped), numpy's default 'linear' interpolation.

    Returns shape (num_segments,) for a scalar ``q`` and (num_segments, len(q)) otherwise; empty
    segments give NaN. Equals ``np.nanquantile`` of each segment. ``device``/``out``: see
    :func:`segment_reduce`; the GPU (a segmented sort, then gathers) gives the CPU's values
    exactly.
    """
    use_gpu, kind = _placement("segment_quantiles", device, out, values, offsets, segment_ids)
    qs = np.ascontiguousarray(np.atleast_1d(np.asarray(_host(q), dtype=np.float64)))
    if qs.ndim != 1:
        raise ValueError("q must be a scalar or a 1-D sequence")
    if use_gpu:
        from cairn.core import aggregate_gpu

        gvals = aggregate_gpu.values_array(values)
        gvals, goffs = aggregate_gpu.segments(gvals, offsets, segment_ids, num_segments)
        result = aggregate_gpu.segment_quantiles(gvals, goffs, qs)
    else:
        vals = _values(_host(values))
        offs, ids, nseg = _segment_args(len(vals), _host(offsets), _host(segment_ids), num_segments)
        result = _core.segment_quantiles(vals, offs, ids, nseg, qs, _threads(threads))
    return _deliver(result[:, 0] if np.ndim(q) == 0 else result, kind)


def _xy(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xs = _as_numpy(x, "x")
    xs = np.ascontiguousarray(
        xs, dtype=np.int64 if np.issubdtype(xs.dtype, np.integer) else np.float64
    )
    ys = _values(y, "y")
    if len(xs) != len(ys):
        raise ValueError(f"x has {len(xs)} points but y has {len(ys)}")
    return xs, ys


def _select_points(name: str, x: ArrayLike, y: ArrayLike, n: int, device: Device, out: str | None) -> Any:
    """Run the point-selection kernel ``name`` (downsample_minmax or lttb) where it belongs."""
    use_gpu, kind = _placement(name, device, out, x, y)
    if use_gpu:
        from cairn.core import aggregate_gpu

        gx, gy = aggregate_gpu.xy(x, y, int(n))
        return _deliver(getattr(aggregate_gpu, name)(gx, gy, int(n)), kind)
    xs, ys = _xy(_host(x), _host(y))
    return _deliver(getattr(_core, name)(xs, ys, int(n)), kind)


def downsample_minmax(
    x: ArrayLike, y: ArrayLike, n: int, *, device: Device = "auto", out: str | None = None
) -> Any:
    """Indices (ascending) of at most ``n`` points: per bucket of equal x range, the min y, the
    max y and the last point, so that no spike is ever hidden.

    ``x`` must be ascending and finite (int steps or float times); ``n >= 3``; ``n // 3`` buckets.
    Every index is returned when ``len(x) <= n``. ``device``/``out``: see :func:`segment_reduce`;
    the GPU returns the same indices.
    """
    return _select_points("downsample_minmax", x, y, n, device, out)


def lttb(
    x: ArrayLike, y: ArrayLike, n: int, *, device: Device = "auto", out: str | None = None
) -> Any:
    """Indices (ascending) of ``n`` points chosen by largest-triangle-three-buckets.

    The first and last points are always kept; the rest are cut into ``n - 2`` buckets of equal
    point count. ``x`` must be ascending and finite; ``n >= 3``. ``device``/``out``: see
    :func:`segment_reduce`; the GPU returns the same indices (its float64 areas are never fused).
    """
    return _select_points("lttb", x, y, n, device, out)


def rolling(
    values: ArrayLike,
    window: int,
    offsets: ArrayLike | None = None,
    segment_ids: ArrayLike | None = None,
    num_segments: int | None = None,
    ops: Sequence[str] = ("mean", "std", "min", "max"),
    min_periods: int = 1,
    ddof: int = 0,
    threads: int | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Trailing-window statistics over the last ``window`` points of each segment.

    Returns ``{op: array of len(values)}`` for ops in ROLLING_OPS, each output at its value's
    position. With ``segment_ids`` a segment's series is its values in index order. NaN values are
    skipped; where a window holds fewer than ``min_periods`` non-NaN values every statistic but
    ``count`` is NaN.
    """
    vals = _values(values)
    offs, ids, nseg = _segment_args(len(vals), offsets, segment_ids, num_segments)
    if window < 1:
        raise ValueError("window must be >= 1")
    result = _core.rolling(
        vals,
        offs,
        ids,
        nseg,
        int(window),
        int(min_periods),
        int(ddof),
        list(ops),
        _threads(threads),
    )
    return {op: result[op] for op in ops}


def segment_histogram(
    values: ArrayLike,
    edges: ArrayLike,
    offsets: ArrayLike | None = None,
    segment_ids: ArrayLike | None = None,
    num_segments: int | None = None,
    threads: int | None = None,
    device: Device = "auto",
    out: str | None = None,
) -> SegmentHistogram:
    """Histogram of each segment over fixed ``edges`` (finite, strictly increasing).

    Bins are half-open ``[e_j, e_j+1)`` except the last, which is closed (numpy's rule); values
    below ``edges[0]`` count in ``underflow``, above ``edges[-1]`` in ``overflow``, NaN in
    ``nan_count``. ``device``/``out``: see :func:`segment_reduce`; counts are the same on the GPU.
    """
    use_gpu, kind = _placement("segment_histogram", device, out, values, offsets, segment_ids)
    if use_gpu:
        from cairn.core import aggregate_gpu

        gvals = aggregate_gpu.values_array(values)
        gvals, goffs = aggregate_gpu.segments(gvals, offsets, segment_ids, num_segments)
        parts = aggregate_gpu.segment_histogram(gvals, goffs, edges)
        return SegmentHistogram(*(_deliver(p, kind) for p in parts))
    vals = _values(_host(values))
    offs, ids, nseg = _segment_args(len(vals), _host(offsets), _host(segment_ids), num_segments)
    e = np.ascontiguousarray(_as_numpy(_host(edges), "edges"), dtype=np.float64)
    counts, under, over, nan = _core.segment_histogram(vals, offs, ids, nseg, e, _threads(threads))
    return SegmentHistogram(*(_deliver(p, kind) for p in (counts, under, over, nan)))
