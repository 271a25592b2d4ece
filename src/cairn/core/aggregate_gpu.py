"""The aggregation kernels on a CUDA GPU, behind ``device=`` of :mod:`cairn.core.aggregate`.

Inputs are CuPy arrays (or anything CuPy takes: device arrays in place, NumPy copied over);
results are CuPy arrays, converted by the caller when NumPy is asked for. Inputs are validated here
with CuPy (same rules and messages as the CPU path) before the kernels, which trust them, run.
Counts, first/last, min/max and index outputs equal the CPU's exactly; sum, mean, var and std
match within the tolerance of docs/gpu.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cairn import _core
from cairn.core.gpu import _cupy, reduce_segments_into_new

KERNEL_STATS = ("count", "nan_count", "sum", "min", "max", "mean", "var")


def cupy_module() -> Any:
    return _cupy("the GPU aggregation path")


def _stream() -> int:
    return int(cupy_module().cuda.get_current_stream().ptr)


def values_array(data: Any, name: str = "values") -> Any:
    """1-D contiguous float32/float64 CuPy array (other numbers widened to float64)."""
    cp = cupy_module()
    arr = cp.asarray(data)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype not in (cp.float32, cp.float64):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(cp.float64)
    return cp.ascontiguousarray(arr)


def _check_offsets(offs: Any, n: int) -> None:
    cp = cupy_module()
    if offs.size == 0:
        raise ValueError("offsets must have at least one entry (num_segments + 1)")
    first, last = int(offs[0]), int(offs[-1])
    if first < 0:
        raise ValueError(f"offsets[0] is {first}; must be >= 0")
    if offs.size > 1:
        bad = cp.flatnonzero(offs[1:] < offs[:-1])
        if bad.size:
            k = int(bad[0]) + 1
            raise ValueError(f"offsets must be non-decreasing; offsets[{k}] < offsets[{k - 1}]")
    if last > n:
        raise ValueError(f"offsets[-1] is {last} but there are only {n} values")


def segments(
    vals: Any, offsets: Any | None, segment_ids: Any | None, num_segments: int | None
) -> tuple[Any, Any]:
    """(values in segment order, int64 CSR offsets) on the GPU. Segment ids are turned into
    offsets by a stable sort, so each segment keeps its values in index order (first/last)."""
    cp = cupy_module()
    n = int(vals.size)
    if offsets is not None and segment_ids is not None:
        raise ValueError("give offsets or segment_ids, not both")
    if segment_ids is not None:
        ids = cp.asarray(segment_ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"segment_ids must be integers, got dtype {ids.dtype}")
        ids = ids.astype(cp.int64, copy=False)
        if ids.size != n:
            raise ValueError(f"segment_ids has {ids.size} entries for {n} values")
        nseg = int(ids.max()) + 1 if n and num_segments is None else int(num_segments or 0)
        if nseg < 0:
            raise ValueError(f"num_segments must be >= 0, got {nseg}")
        if n:
            bad = cp.flatnonzero((ids < 0) | (ids >= nseg))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"segment id {int(ids[i])} at index {i} is outside [0, {nseg})")
        order = cp.argsort(ids * max(n, 1) + cp.arange(n, dtype=cp.int64))
        offs = cp.zeros(nseg + 1, dtype=cp.int64)
        if nseg:
            offs[1:] = cp.cumsum(cp.bincount(ids, minlength=nseg))
        return cp.ascontiguousarray(vals[order]), offs
    if offsets is None:
        return vals, cp.asarray([0, n], dtype=cp.int64)
    offs = cp.asarray(offsets)
    if offs.size and not np.issubdtype(offs.dtype, np.integer):
        raise TypeError(f"offsets must be integers, got dtype {offs.dtype}")
    offs = cp.ascontiguousarray(offs, dtype=cp.int64)
    _check_offsets(offs, n)
    return vals, offs


def segment_reduce(vals: Any, offs: Any, ops: Sequence[str], ddof: int) -> dict[str, Any]:
    cp = cupy_module()
    nseg = int(offs.size) - 1
    wanted = set(ops)
    kernel = {s for s in KERNEL_STATS if s in wanted}
    if "std" in wanted:
        kernel.add("var")
    result: dict[str, Any] = (
        reduce_segments_into_new(cp, vals, offs, sorted(kernel), ddof) if kernel else {}
    )
    if "std" in wanted:
        result["std"] = cp.sqrt(result["var"])
    if wanted & {"first", "last"}:
        first = cp.empty(nseg, cp.float64) if "first" in wanted else None
        last = cp.empty(nseg, cp.float64) if "last" in wanted else None
        _core.segment_first_last_cuda(
            vals.data.ptr,
            str(vals.dtype),
            offs.data.ptr,
            nseg,
            0 if first is None else first.data.ptr,
            0 if last is None else last.data.ptr,
            _stream(),
        )
        if first is not None:
            result["first"] = first
        if last is not None:
            result["last"] = last
    return {op: result[op] for op in ops}


def segment_quantiles(vals: Any, offs: Any, qs: np.ndarray) -> Any:
    """(nseg, len(qs)) float64 quantiles, the CPU's rule exactly: NaN skipped, numpy's "linear"
    interpolation (its _lerp), NaN for a segment without values.

    One stable sort of the values (NaN as +inf, so the m non-NaN values of a segment come first)
    and a stable sort of that order by segment id give every segment's values ascending; each
    quantile is then two gathers and the lerp, done as separate CuPy operations so that nothing
    is fused into an FMA (the CPU rounds every step).
    """
    cp = cupy_module()
    for q in qs:
        if not (q >= 0.0 and q <= 1.0):
            raise ValueError(f"quantile {q:f} is outside [0, 1]")
    nseg = int(offs.size) - 1
    out = cp.full((nseg, len(qs)), cp.nan, dtype=cp.float64)
    start, end = (int(offs[0]), int(offs[-1])) if nseg > 0 else (0, 0)
    if nseg == 0 or len(qs) == 0 or end == start:
        return out
    seg = vals[start:end]
    ids = cp.searchsorted(offs, cp.arange(start, end, dtype=cp.int64), side="right") - 1
    nan = cp.isnan(seg)
    key = cp.where(nan, cp.asarray(np.inf, dtype=seg.dtype), seg)
    order = cp.argsort(key, kind="stable")
    order = order[cp.argsort(ids[order], kind="stable")]
    ordered = key[order].astype(cp.float64)
    base = offs[:-1] - start
    valid = cp.zeros(end - start + 1, dtype=cp.int64)  # non-NaN values before each index
    valid[1:] = cp.cumsum(~nan, dtype=cp.int64)
    m = valid[offs[1:] - start] - valid[base]
    has = m > 0
    last = cp.maximum(m - 1, 0)
    for k, q in enumerate(qs):
        h = float(q) * last.astype(cp.float64)
        lo = cp.minimum(cp.floor(h).astype(cp.int64), last)
        t = h - lo.astype(cp.float64)
        a = ordered[cp.where(has, base + lo, 0)]
        step = has & (t > 0.0) & (lo + 1 < m)
        b = cp.where(step, ordered[cp.where(step, base + lo + 1, 0)], a)
        diff = b - a
        low = a + diff * t  # two kernels: no fused multiply-add
        high = b - diff * (1.0 - t)
        value = cp.where(t < 0.5, low, high)
        value = cp.where((t == 0.0) | (a == b), a, value)
        out[:, k] = cp.where(has, value, cp.nan)
    return out


def segment_histogram(vals: Any, offs: Any, edges: Any) -> tuple[Any, Any, Any, Any]:
    cp = cupy_module()
    e = cp.ascontiguousarray(cp.asarray(edges, dtype=cp.float64))
    if e.ndim != 1 or e.size < 2:
        raise ValueError("edges must have at least 2 entries")
    if not bool(cp.isfinite(e).all()):
        raise ValueError("edges must be finite")
    if not bool((e[1:] > e[:-1]).all()):
        raise ValueError("edges must be strictly increasing")
    nseg, nbins = int(offs.size) - 1, int(e.size) - 1
    counts = cp.empty((nseg, nbins), cp.int64)
    under, over, nan = (cp.empty(nseg, cp.int64) for _ in range(3))
    _core.segment_histogram_cuda(
        vals.data.ptr,
        str(vals.dtype),
        offs.data.ptr,
        nseg,
        e.data.ptr,
        e.size,
        counts.data.ptr,
        under.data.ptr,
        over.data.ptr,
        nan.data.ptr,
        _stream(),
    )
    return counts, under, over, nan


def xy(x: Any, y: Any, n_out: int) -> tuple[Any, Any]:
    """Validated (x as int64 or float64, y as float32/64) CuPy arrays, as the CPU checks them."""
    cp = cupy_module()
    xs = cp.asarray(x)
    if xs.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {xs.shape}")
    xs = cp.ascontiguousarray(
        xs, dtype=cp.int64 if np.issubdtype(xs.dtype, np.integer) else cp.float64
    )
    ys = values_array(y, "y")
    if xs.size != ys.size:
        raise ValueError(f"x has {xs.size} points but y has {ys.size}")
    if n_out < 3:
        raise ValueError(f"n_out must be >= 3, got {n_out}")
    if xs.dtype == cp.float64 and xs.size:
        bad = cp.flatnonzero(~cp.isfinite(xs))
        if bad.size:
            raise ValueError(f"x must be finite; x[{int(bad[0])}] is not")
    if xs.size > 1:
        bad = cp.flatnonzero(xs[1:] < xs[:-1])
        if bad.size:
            k = int(bad[0]) + 1
            raise ValueError(f"x must be sorted ascending; x[{k}] < x[{k - 1}]")
    if xs.dtype == cp.float64 and xs.size and not bool(cp.isfinite(xs[-1] - xs[0])):
        raise ValueError("x spans more than the largest float64 (x[-1] - x[0] overflows)")
    return xs, ys


def downsample_minmax(xs: Any, ys: Any, n_out: int) -> Any:
    cp = cupy_module()
    n = int(xs.size)
    if n <= n_out:
        return cp.arange(n, dtype=cp.int64)
    nb = n_out // 3
    triples = cp.empty((nb, 3), cp.int64)
    _core.downsample_minmax_cuda(
        xs.data.ptr,
        str(xs.dtype),
        ys.data.ptr,
        str(ys.dtype),
        n,
        n_out,
        triples.data.ptr,
        _stream(),
    )
    # Per bucket: its picks ascending without repeats; buckets are disjoint and in order.
    triples.sort(axis=1)
    keep = triples >= 0
    keep[:, 1:] &= triples[:, 1:] != triples[:, :-1]
    return triples[keep]


def lttb(xs: Any, ys: Any, n_out: int) -> Any:
    cp = cupy_module()
    n = int(xs.size)
    if n <= n_out:
        return cp.arange(n, dtype=cp.int64)
    out = cp.empty(n_out, cp.int64)
    _core.lttb_cuda(
        xs.data.ptr, str(xs.dtype), ys.data.ptr, str(ys.dtype), n, n_out, out.data.ptr, _stream()
    )
    return out
