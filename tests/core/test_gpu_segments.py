"""Segmented reductions on the GPU match a float64 NumPy reference within rtol 1e-9.

Tests marked ``gpu`` need a usable CUDA GPU and CuPy, and skip cleanly without them.
"""

from __future__ import annotations

import numpy as np
import pytest

import cairn.core
from cairn import _core
from cairn.core import gpu

from gpu_marks import GPU_USABLE, needs_gpu

RTOL = 1e-9  # float64 accumulation, shifted per-thread sums and Chan merges: ~1e-13 in practice


def reference(values: np.ndarray, offsets: np.ndarray, ddof: int = 0) -> dict[str, np.ndarray]:
    """Two-pass float64 statistics per segment, NaN skipped (vectorized, for many segments)."""
    nseg = len(offsets) - 1
    lengths = np.diff(offsets)
    ids = np.repeat(np.arange(nseg), lengths)
    seg = values[offsets[0] : offsets[-1]].astype(np.float64)
    ok = ~np.isnan(seg)
    count = np.bincount(ids[ok], minlength=nseg)
    nan_count = np.bincount(ids[~ok], minlength=nseg)
    total = np.bincount(ids[ok], weights=seg[ok], minlength=nseg)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
        dev = seg[ok] - mean[ids[ok]]
        m2 = np.bincount(ids[ok], weights=dev * dev, minlength=nseg)
        var = np.where(count > ddof, m2 / (count - ddof), np.nan)
    lo = np.full(nseg, np.nan)
    hi = np.full(nseg, np.nan)
    nonempty = np.flatnonzero(lengths > 0)
    if nonempty.size:
        starts = offsets[nonempty] - offsets[0]
        lo[nonempty] = np.fmin.reduceat(seg, starts)
        hi[nonempty] = np.fmax.reduceat(seg, starts)
    lo[count == 0] = np.nan
    hi[count == 0] = np.nan
    return {
        "count": count,
        "nan_count": nan_count,
        "sum": total,
        "min": lo,
        "max": hi,
        "mean": mean,
        "var": var,
    }


def assert_matches(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    for name in ("count", "nan_count"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    for name in ("sum", "min", "max", "mean", "var"):
        np.testing.assert_allclose(
            got[name], expected[name], rtol=RTOL, atol=0, equal_nan=True, err_msg=name
        )


def mixed_lengths(rng: np.random.Generator) -> np.ndarray:
    # Every side of the warp/tile boundary (2048 values) and of the tile size (8192 values).
    edges = [
        0,
        1,
        2,
        31,
        32,
        33,
        127,
        128,
        129,
        2047,
        2048,
        2049,
        8191,
        8192,
        8193,
        16385,
        100_000,
        0,
        0,
        3,
    ]
    return np.concatenate(
        [edges, rng.integers(0, 300, size=3000), rng.integers(2049, 40_000, size=20)]
    )


# ------------------------------------------------------------------------------------------------
# Everywhere: the kernels' decomposition (lanes, tiles, merge order) emulated on the CPU.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ddof", [0, 1])
def test_emulated_kernels_match_reference_on_mixed_sizes(dtype, ddof: int) -> None:
    rng = np.random.default_rng(3)
    lengths = mixed_lengths(rng)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.normal(3.0, 2.0, size=offsets[-1]).astype(dtype)
    values[rng.random(values.size) < 0.01] = np.nan
    values[offsets[5] : offsets[6]] = np.nan
    got = _core._segment_reduce_gpu_host_emulation(values, offsets, ddof)
    assert_matches(got, reference(values, offsets, ddof))
    assert got["count"][5] == 0 and got["sum"][5] == 0 and np.isnan(got["var"][5])


# lanes per segment (about 64 values each): 1, 2, 4, 8, 16, 32
@pytest.mark.parametrize("high", [12, 100, 200, 400, 800, 2049])
def test_emulated_kernels_match_reference_for_each_group_size(high: int) -> None:
    rng = np.random.default_rng(high)
    lengths = rng.integers(high // 2, high, size=20_000 if high < 300 else 2_000)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.normal(-5.0, 3.0, size=offsets[-1])
    values[rng.random(values.size) < 0.05] = np.nan
    got = _core._segment_reduce_gpu_host_emulation(values, offsets, 1)
    assert_matches(got, reference(values, offsets, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_emulated_short_segments_keep_precision_far_from_zero(dtype) -> None:
    """Mean 1e6, spread 1e-2 (float64) or 1 (float32), NaN first values: every lane adds about the
    segment's first finite value, so the variance keeps its digits (about 5e-14 relative here; the
    previous Chan merge of per-lane means lost them, 3e-8 for float64)."""
    rng = np.random.default_rng(21)
    lengths = rng.integers(1, 700, size=3_000)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    spread = 1e-2 if dtype == np.float64 else 1.0
    values = (1e6 + rng.normal(0.0, spread, size=offsets[-1])).astype(dtype)
    values[offsets[:-1][::3]] = np.nan  # the first lane's first value of every third segment
    values[rng.random(values.size) < 0.02] = np.nan
    got = _core._segment_reduce_gpu_host_emulation(values, offsets, 1)
    assert_matches(got, reference(values, offsets, 1))


def infinite_values() -> tuple[np.ndarray, np.ndarray]:
    """Segments holding +inf, -inf, both, and inf at a lane's first value; long and short."""
    values = np.random.default_rng(4).random(40_000)
    values[[3, 10, 11, 25, 30_000]] = [np.inf, -np.inf, np.inf, np.inf, -np.inf]
    values[20] = np.inf
    offsets = np.array([0, 8, 16, 20, 24, 26, 5_000, 40_000], dtype=np.int64)
    return values, offsets


def test_emulated_kernels_propagate_infinities_like_ieee() -> None:
    values, offsets = infinite_values()
    got = _core._segment_reduce_gpu_host_emulation(values, offsets, 0)
    assert_matches(got, reference(values, offsets))
    assert got["sum"][0] == np.inf and np.isnan(got["sum"][1]) and np.isnan(got["var"][0])


def test_emulated_kernels_match_pairwise_float64_on_one_long_segment() -> None:
    n = 3_000_017  # 367 tiles: several per merging lane
    values = (np.random.default_rng(9).standard_normal(n) + 1e4).astype(np.float32)
    got = _core._segment_reduce_gpu_host_emulation(values, np.array([0, n]), 0)
    host = values.astype(np.float64)
    np.testing.assert_allclose(got["sum"][0], host.sum(), rtol=RTOL)
    np.testing.assert_allclose(got["var"][0], host.var(), rtol=RTOL)
    assert got["min"][0] == host.min() and got["max"][0] == host.max()


def tiles_starting_with_nan_and_inf() -> tuple[np.ndarray, np.ndarray]:
    """A long segment whose tiles (16,384 values) begin with NaN runs or an infinity, far from 0."""
    rng = np.random.default_rng(12)
    values = 1e5 + rng.normal(0.0, 0.5, size=120_000)
    values[16_384 : 16_384 + 300] = np.nan  # the second tile's shift is its 301st value
    values[2 * 16_384] = np.inf  # the third tile's shift is its second value
    values[3 * 16_384 : 4 * 16_384] = np.nan  # the fourth tile has no value at all
    offsets = np.array([0, 100_000, 120_000], dtype=np.int64)
    return values, offsets


def test_emulated_tiles_take_their_first_finite_value_as_shift() -> None:
    values, offsets = tiles_starting_with_nan_and_inf()
    got = _core._segment_reduce_gpu_host_emulation(values, offsets, 0)
    assert_matches(got, reference(values, offsets))
    assert got["sum"][0] == np.inf and np.isfinite(got["var"][1])


def outliers_first() -> tuple[np.ndarray, np.ndarray]:
    """Segments (short and long) whose first value, the shift, is a huge outlier cancelled by
    another: the sum must not come from n * shift + sum(x - shift), which would lose it."""
    rng = np.random.default_rng(13)
    values = rng.random(60_000) + 1.0
    offsets = np.array([0, 50, 300, 2_000, 60_000], dtype=np.int64)
    for begin, end in zip(offsets[:-1], offsets[1:], strict=True):
        values[begin], values[end - 1] = 1e6, -1e6
    values[100] = np.nan
    return values, offsets


def test_emulated_sums_survive_an_outlier_as_shift() -> None:
    values, offsets = outliers_first()
    assert_matches(_core._segment_reduce_gpu_host_emulation(values, offsets, 1), reference(values, offsets, 1))


def test_emulated_kernels_handle_partial_offsets_and_refuse_bad_ones() -> None:
    values = np.random.default_rng(5).random(50_000)
    offsets = np.array([100, 100, 2500, 2600, 30_000, 49_000], dtype=np.int64)
    assert_matches(
        _core._segment_reduce_gpu_host_emulation(values, offsets, 0), reference(values, offsets)
    )
    with pytest.raises(ValueError, match="non-decreasing"):
        _core._segment_reduce_gpu_host_emulation(values, np.array([0, 5, 3]), 0)
    with pytest.raises(ValueError, match=r"\[0, len\(values\)\]"):
        _core._segment_reduce_gpu_host_emulation(values, np.array([0, 50_001]), 0)


def test_without_gpu_segment_reduce_raises_a_clear_error() -> None:
    if GPU_USABLE:
        pytest.skip("a GPU is usable here")
    with pytest.raises(gpu.GpuUnavailableError, match="no usable CUDA GPU"):
        cairn.core.segment_reduce_gpu(np.zeros(3, np.float32), np.array([0, 3]))




@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ddof", [0, 1])
def test_mixed_segment_sizes_match_reference(cupy, dtype, ddof: int) -> None:
    rng = np.random.default_rng(3)
    lengths = mixed_lengths(rng)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.normal(3.0, 2.0, size=offsets[-1]).astype(dtype)
    values[rng.random(values.size) < 0.01] = np.nan
    values[offsets[5] : offsets[6]] = np.nan  # a segment of NaN only
    got = cairn.core.segment_reduce_gpu(
        cupy.asarray(values), cupy.asarray(offsets), ddof=ddof, out="numpy"
    )
    assert_matches(got, reference(values, offsets, ddof))
    assert got["count"][5] == 0 and np.isnan(got["mean"][5]) and got["sum"][5] == 0


@pytest.mark.gpu
@needs_gpu
def test_offsets_may_cover_part_of_the_values(cupy) -> None:
    rng = np.random.default_rng(5)
    values = rng.random(50_000).astype(np.float32)
    offsets = np.array([100, 100, 2500, 2600, 30_000, 49_000], dtype=np.int64)
    got = cairn.core.segment_reduce_gpu(values, offsets, out="numpy")  # NumPy in: copied over
    assert_matches(got, reference(values, offsets))


@pytest.mark.gpu
@needs_gpu
def test_one_huge_segment_matches_pairwise_float64(cupy) -> None:
    n = 50_000_003
    values = cupy.random.default_rng(9).standard_normal(n, dtype=cupy.float32) + 10
    got = cairn.core.segment_reduce_gpu(values, cupy.asarray([0, n]), out="numpy")
    host = cupy.asnumpy(values).astype(np.float64)
    assert got["count"][0] == n
    np.testing.assert_allclose(got["sum"][0], host.sum(), rtol=RTOL)
    np.testing.assert_allclose(got["mean"][0], host.mean(), rtol=RTOL)
    np.testing.assert_allclose(got["var"][0], host.var(), rtol=RTOL)
    assert got["min"][0] == host.min() and got["max"][0] == host.max()


@pytest.mark.gpu
@needs_gpu
def test_tiles_take_their_first_finite_value_as_shift(cupy) -> None:
    values, offsets = tiles_starting_with_nan_and_inf()
    got = cairn.core.segment_reduce_gpu(cupy.asarray(values), cupy.asarray(offsets), out="numpy")
    assert_matches(got, reference(values, offsets))
    assert got["sum"][0] == np.inf and np.isfinite(got["var"][1])


@pytest.mark.gpu
@needs_gpu
def test_sums_survive_an_outlier_as_shift(cupy) -> None:
    values, offsets = outliers_first()
    got = cairn.core.segment_reduce_gpu(cupy.asarray(values), cupy.asarray(offsets), ddof=1, out="numpy")
    assert_matches(got, reference(values, offsets, 1))


@pytest.mark.gpu
@needs_gpu
def test_many_tiny_segments(cupy) -> None:
    rng = np.random.default_rng(11)
    lengths = rng.integers(0, 12, size=1_000_000)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.random(offsets[-1])
    got = cairn.core.segment_reduce_gpu(cupy.asarray(values), cupy.asarray(offsets), out="numpy")
    assert_matches(got, reference(values, offsets))


@pytest.mark.gpu
@needs_gpu
def test_results_are_cupy_arrays_by_default_and_deterministic(cupy) -> None:
    values = cupy.random.default_rng(2).random(3_000_000, dtype=cupy.float32)
    offsets = cupy.asarray([0, 10, 1_000_000, 3_000_000])
    first = cairn.core.segment_reduce_gpu(values, offsets)
    second = cairn.core.segment_reduce_gpu(values, offsets)
    assert isinstance(first["sum"], cupy.ndarray)
    for name in first:
        assert cupy.array_equal(first[name], second[name], equal_nan=True), name


@pytest.mark.gpu
@needs_gpu
def test_infinities_propagate_like_ieee(cupy) -> None:
    values, offsets = infinite_values()
    got = cairn.core.segment_reduce_gpu(cupy.asarray(values), cupy.asarray(offsets), out="numpy")
    assert_matches(got, reference(values, offsets))


@pytest.mark.gpu
@needs_gpu
def test_no_segments_gives_empty_arrays(cupy) -> None:
    got = cairn.core.segment_reduce_gpu(cupy.zeros(5, cupy.float32), cupy.asarray([3]), out="numpy")
    assert all(arr.shape == (0,) for arr in got.values())


@pytest.mark.gpu
@needs_gpu
def test_bad_inputs_are_refused_with_reasons(cupy) -> None:
    values = cupy.zeros(10, cupy.float32)
    with pytest.raises(ValueError, match="non-decreasing"):
        cairn.core.segment_reduce_gpu(values, cupy.asarray([0, 5, 3]))
    with pytest.raises(ValueError, match=r"\[0, len\(values\)\]"):
        cairn.core.segment_reduce_gpu(values, cupy.asarray([0, 11]))
    with pytest.raises(TypeError, match="float32 or float64"):
        cairn.core.segment_reduce_gpu(cupy.zeros(10, cupy.int32), cupy.asarray([0, 10]))
    with pytest.raises(ValueError, match="out must be"):
        cairn.core.segment_reduce_gpu(values, cupy.asarray([0, 10]), out="torch")


@pytest.mark.parametrize("start", [0, 1, 2, 3])
@pytest.mark.parametrize("high", [7, 100, 200, 400, 800, 2049])  # lanes: 1, 2, 4, 8, 16, 32
def test_emulated_vector_group_kernel_matches_reference(start: int, high: int) -> None:
    """The float4 short-segment path (float32 default): unaligned heads, tails, every group size."""
    rng = np.random.default_rng(100 + high + start)
    lengths = rng.integers(high // 2, high, size=5_000 if high < 300 else 1_000)
    offsets = start + np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.normal(-5.0, 3.0, size=offsets[-1] + 3).astype(np.float32)
    values[rng.random(values.size) < 0.05] = np.nan
    values[offsets[3] : offsets[4]] = np.nan
    got = _core._segment_reduce_gpu_host_emulation(values, offsets, 1, vector_loads=True)
    assert_matches(got, reference(values, offsets, 1))
    # The kernel's lane partition differs from the scalar one only in the summation order.
    scalar = _core._segment_reduce_gpu_host_emulation(values, offsets, 1)
    for key in ("count", "nan_count", "min", "max"):
        np.testing.assert_array_equal(got[key], scalar[key])


def test_emulated_vector_group_kernel_unaligned_pointer_falls_back() -> None:
    raw = np.random.default_rng(8).random(40_001).astype(np.float32)
    buf = np.frombuffer(raw.tobytes() + b"\0", dtype=np.uint8)[1:]  # 1-byte-offset float32 view
    values = buf[: raw.nbytes].view(np.float32) if buf.ctypes.data % 4 else raw
    offsets = np.arange(0, 40_001, 37, dtype=np.int64)
    got = _core._segment_reduce_gpu_host_emulation(values, offsets, 0, vector_loads=True)
    assert_matches(got, reference(values, offsets, 0))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("start", [0, 1, 2, 3])
@pytest.mark.parametrize("high", [9, 100, 200, 400, 800, 2049])  # lanes: 1, 2, 4, 8, 16, 32
def test_short_segment_paths_match_reference_at_every_alignment(
    cupy, monkeypatch, start: int, high: int
) -> None:
    """float32 short segments: the float4 group kernel (default) and the scalar one (=0)."""
    rng = np.random.default_rng(200 + high + start)
    lengths = rng.integers(high // 2, high, size=20_000 if high < 300 else 2_000)
    offsets = start + np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.normal(-5.0, 3.0, size=offsets[-1] + 5).astype(np.float32)
    values[rng.random(values.size) < 0.05] = np.nan
    gv, go = cupy.asarray(values), cupy.asarray(offsets)
    expected = reference(values, offsets, 1)
    results = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("CAIRN_GPU_SEGMENT_VECTOR_LOADS", flag)
        results[flag] = cairn.core.segment_reduce_gpu(gv, go, ddof=1, out="numpy")
        assert_matches(results[flag], expected)
    monkeypatch.delenv("CAIRN_GPU_SEGMENT_VECTOR_LOADS")
    default = cairn.core.segment_reduce_gpu(gv, go, ddof=1, out="numpy")
    for key in results["1"]:
        np.testing.assert_array_equal(default[key], results["1"][key], err_msg=key)
    for key in ("count", "nan_count", "min", "max"):
        np.testing.assert_array_equal(results["0"][key], results["1"][key], err_msg=key)


SHORT_KERNEL_OPTIONS = {
    "resident grid": {},
    "resident grid capped at 1 block": {"CAIRN_GPU_SEGMENT_MAX_BLOCKS": "1"},
    "resident grid capped at 3 blocks": {"CAIRN_GPU_SEGMENT_MAX_BLOCKS": "3"},
    "one group per segment": {"CAIRN_GPU_SEGMENT_GRID": "full"},
    "no register bound": {"CAIRN_GPU_SEGMENT_SHORT_OCCUPANCY": "0"},
    "4 loads in flight, capped at 4 blocks": {
        "CAIRN_GPU_SEGMENT_SHORT_BATCH": "4",
        "CAIRN_GPU_SEGMENT_MAX_BLOCKS": "4",
    },
    "4 loads in flight, 32 values per lane": {
        "CAIRN_GPU_SEGMENT_SHORT_BATCH": "4",
        "CAIRN_GPU_SEGMENT_VALUES_PER_LANE": "32",
    },
    "8 values per lane, capped at 5 blocks": {
        "CAIRN_GPU_SEGMENT_VALUES_PER_LANE": "8",
        "CAIRN_GPU_SEGMENT_MAX_BLOCKS": "5",
    },
    "scalar loads, capped at 2 blocks": {
        "CAIRN_GPU_SEGMENT_VECTOR_LOADS": "0",
        "CAIRN_GPU_SEGMENT_MAX_BLOCKS": "2",
    },
}


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", list(SHORT_KERNEL_OPTIONS))
def test_every_short_kernel_option_matches_reference(cupy, monkeypatch, option, dtype) -> None:
    """The short-segment kernel's grid (resident, capped so that warps loop over many segments, one
    group per segment), occupancy bound, group size and loads: the same counts, min and max, and
    sums and variances within the tolerance, with empty, NaN-only and infinite segments and
    segments whose first values are NaN or infinite among them."""
    rng = np.random.default_rng(31)
    lengths = np.concatenate([rng.integers(0, 200, size=30_000), [0, 0, 5, 2049, 3000]])
    lengths[20], lengths[21] = 150, 30
    offsets = 1 + np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.normal(50.0, 4.0, size=offsets[-1] + 2).astype(dtype)
    values[rng.random(values.size) < 0.03] = np.nan
    values[offsets[7] : offsets[8]] = np.nan
    values[offsets[11] + 1] = np.inf
    values[offsets[20] : offsets[20] + 40] = np.nan  # the shift is found past the first lanes
    values[offsets[21]] = -np.inf
    for name, value in SHORT_KERNEL_OPTIONS[option].items():
        monkeypatch.setenv(name, value)
    got = cairn.core.segment_reduce_gpu(
        cupy.asarray(values), cupy.asarray(offsets), ddof=1, out="numpy"
    )
    expected = reference(values, offsets, 1)
    assert_matches(got, expected)
    assert got["count"][7] == 0 and got["sum"][11] == np.inf and np.isnan(got["var"][11])
    assert got["sum"][21] == -np.inf and np.isfinite(got["var"][20])
