"""The GPU profile kernel's logic, emulated on the CPU, gives the CPU path's statistics.

``_core._profile_numeric_gpu_host_emulation`` runs the kernel's decomposition (blocks of 64
tiles of 4096 values, which thread reads which value, the shared-memory reduction trees, Chan's
merge of tiles and blocks in row order) with the very per-value code the kernel runs
(cairn/profile_gpu_logic.hpp: the sketch bucket from a logarithm's guess corrected against the
boundary table, the histogram bin by binary search). So a machine without a GPU checks all but the
CUDA launches: counts, sketch buckets, histograms, min and max exactly equal to numeric_stats on
the CPU, mean and m2 within 1e-9 relative. The real kernel is compared in test_profile_gpu.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from cairn import _core
from cairn.core.errors import GpuUnavailableError
from cairn.core.profile import SKETCH_ALPHA, SKETCH_MIN, NumericStats, numeric_stats

from gpu_marks import GPU_USABLE

RTOL = 1e-9


def emulated(columns, edges, alpha: float = SKETCH_ALPHA) -> list[NumericStats]:
    return [NumericStats(*r) for r in _core._profile_numeric_gpu_host_emulation(columns, edges, alpha)]


def assert_same(got: NumericStats, want: NumericStats) -> None:
    for name in ("count", "missing", "zero", "pos_offset", "neg_offset"):
        assert getattr(got, name) == getattr(want, name), name
    np.testing.assert_array_equal(got.pos, want.pos)
    np.testing.assert_array_equal(got.neg, want.neg)
    if want.hist is None:
        assert got.hist is None
    else:
        np.testing.assert_array_equal(got.hist, want.hist)
    if want.count == 0:
        assert np.isnan(got.min) and np.isnan(got.max) and np.isnan(got.mean) and got.m2 == 0.0
        return
    assert (got.min, got.max) == (want.min, want.max)
    np.testing.assert_allclose(got.mean, want.mean, rtol=RTOL)
    np.testing.assert_allclose(got.m2, want.m2, rtol=RTOL)


def boundary_values(alpha: float, dtype) -> np.ndarray:
    """Values on, just below and just above bucket boundaries gamma**k (as Python computes them)."""
    gamma, lo, hi = _core.profile_sketch_layout(alpha)
    ks = np.arange(lo - 1, hi + 1, max(1, (hi - lo) // 700))
    b = np.array([gamma ** int(k) for k in ks])
    v = np.concatenate([b, np.nextafter(b, 0), np.nextafter(b, np.inf)]).astype(dtype)
    return np.concatenate([v, -v])


def mixed_column(seed: int, n: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(1e3 * (seed % 3), 1.0 + seed, n)
    x[rng.random(n) < 0.02] = np.nan
    x[rng.integers(0, n, 40)] = np.inf
    x[rng.integers(0, n, 40)] = -np.inf
    x[rng.integers(0, n, 40)] = 0.0
    x[rng.integers(0, n, 20)] = SKETCH_MIN / 2  # below the sketch's floor: zero
    x[rng.integers(0, n, 20)] = 3e13  # above the largest bucket: clamped
    x = x.astype(dtype)
    special = boundary_values(SKETCH_ALPHA, dtype)
    k = min(n, special.size)
    x[:k] = special[:k]
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 262_144, 262_145, 600_000])
def test_emulation_equals_cpu_at_tile_and_block_edges(dtype, n: int) -> None:
    x = mixed_column(n % 7, max(n, 1), dtype)[:n]
    rng = np.random.default_rng(n)
    edges = np.sort(rng.normal(0.0, 3.0, 9))
    edges[3] = edges[4]  # a duplicate edge
    for e in (edges, None, np.array([]), np.array([-np.inf, 0.0, np.inf])):
        assert_same(emulated([x], [e])[0], numeric_stats([x], [e])[0])


@pytest.mark.parametrize("alpha", [0.0001, 0.001, 0.01, 0.5])
def test_emulation_equals_cpu_for_other_alphas(alpha: float) -> None:
    """A small alpha means far more buckets than shared memory holds (the global-atomic path)."""
    x = np.concatenate([boundary_values(alpha, np.float64), mixed_column(3, 50_000, np.float64)])
    edges = np.linspace(-5, 5, 21)
    got = emulated([x, x.astype(np.float32)], [edges, edges], alpha)
    want = numeric_stats([x, x.astype(np.float32)], [edges, edges], alpha=alpha)
    for g, w in zip(got, want):
        assert_same(g, w)


def test_emulation_keeps_precision_for_a_large_mean() -> None:
    """1e9 + noise: per-tile centring keeps m2 where a naive sum of squares would lose it."""
    rng = np.random.default_rng(5)
    x = 1e9 + rng.standard_normal(700_000)
    got, want = emulated([x], [None])[0], numeric_stats([x])[0]
    assert_same(got, want)
    np.testing.assert_allclose(got.m2 / got.count, 1.0, rtol=0.01)


def test_emulation_of_all_missing_and_constant_columns() -> None:
    cols = [
        np.full(5000, np.nan),
        np.full(10_000, np.inf, dtype=np.float32),
        np.full(300_000, 2.5),
        np.zeros(9000, dtype=np.float32),
    ]
    edges = [np.array([0.0, 2.5]), None, np.array([2.5]), np.array([0.0])]
    for g, w in zip(emulated(cols, edges), numeric_stats(cols, edges)):
        assert_same(g, w)


def test_emulation_checks_its_inputs() -> None:
    with pytest.raises(TypeError, match="float32 or float64"):
        _core._profile_numeric_gpu_host_emulation([np.arange(3)], [None], SKETCH_ALPHA)
    with pytest.raises(ValueError, match="not sorted"):
        _core._profile_numeric_gpu_host_emulation([np.ones(3)], [np.array([2.0, 1.0])], SKETCH_ALPHA)


def test_cuda_without_a_gpu_here_is_a_named_error_and_auto_is_the_cpu() -> None:
    """On a machine without a usable GPU: device='cuda' says why; 'auto' keeps host columns on the CPU."""
    x = mixed_column(1, 10_000, np.float64)
    assert_same(numeric_stats([x], device="auto")[0], numeric_stats([x], device="cpu")[0])
    with pytest.raises(ValueError, match="device must be"):
        numeric_stats([x], device="gpu")  # type: ignore[arg-type]
    if not GPU_USABLE:
        with pytest.raises(GpuUnavailableError, match="no usable CUDA GPU"):
            numeric_stats([x], device="cuda")
