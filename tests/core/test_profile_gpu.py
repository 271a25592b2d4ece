"""numeric_stats(device="cuda"/"auto") on a real GPU gives the CPU path's statistics.

Counts, sketch buckets, histograms, min and max exactly; mean and m2 within 1e-9 relative. Device
columns (CuPy) are read in place, host columns (NumPy, Arrow with nulls, integers) copied once.
Every test here is marked ``gpu`` and skips without a usable CUDA GPU and CuPy; the kernel's logic
is checked everywhere by test_profile_gpu_emulation.py.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from test_profile_gpu_emulation import assert_same, boundary_values, mixed_column

from cairn.core.profile import numeric_stats

from gpu_marks import needs_gpu

pytestmark = [pytest.mark.gpu, needs_gpu]


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 4097, 262_145, 1_000_003])
def test_device_columns_equal_the_cpu(cp, dtype, n: int) -> None:
    x = mixed_column(n % 5, max(n, 1), dtype)[:n]
    edges = np.sort(np.random.default_rng(n).normal(0.0, 3.0, 11))
    for e in (edges, None):
        got = numeric_stats([cp.asarray(x)], [e], device="cuda")[0]
        assert_same(got, numeric_stats([x], [e], device="cpu")[0])


def test_many_columns_of_different_lengths_types_and_edges(cp) -> None:
    cols = [mixed_column(i, 1000 + 37_000 * i, np.float32 if i % 2 else np.float64) for i in range(12)]
    edges = [None if i % 3 == 0 else np.linspace(-3.0, 3.0, 2 + i * 50) for i in range(12)]
    got = numeric_stats([cp.asarray(c) for c in cols], edges, device="auto")
    for g, w in zip(got, numeric_stats(cols, edges, device="cpu")):
        assert_same(g, w)


@pytest.mark.parametrize("alpha", [0.0001, 0.02])
def test_sketch_without_shared_memory_and_other_alphas(cp, alpha: float) -> None:
    x = np.concatenate([boundary_values(alpha, np.float64), mixed_column(2, 300_000, np.float64)])
    got = numeric_stats([cp.asarray(x)], alpha=alpha, device="cuda")[0]
    assert_same(got, numeric_stats([x], alpha=alpha, device="cpu")[0])


def test_host_columns_are_copied_once_with_nulls_as_missing(cp) -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(4.0, 2.0, 50_000)
    arrow = pa.array(values, mask=rng.random(values.size) < 0.1)
    ints = rng.integers(-(2**40), 2**40, 50_000)
    chunked = pa.chunked_array([pa.array(ints[:20_000]), pa.array(ints[20_000:])])
    cols = [values, arrow, ints, chunked, values.astype(np.float32)]
    edges = [np.array([0.0, 4.0, 8.0])] * len(cols)
    for g, w in zip(numeric_stats(cols, edges, device="cuda"), numeric_stats(cols, edges, device="cpu")):
        assert_same(g, w)


def test_strided_and_integer_device_columns(cp) -> None:
    table = cp.asarray(mixed_column(4, 200_000, np.float64).reshape(-1, 4))
    ints = cp.arange(-5000, 5000, dtype=cp.int32)
    got = numeric_stats([table[:, 1], ints], device="cuda")
    want = numeric_stats([cp.asnumpy(table[:, 1]), cp.asnumpy(ints)], device="cpu")
    for g, w in zip(got, want):
        assert_same(g, w)
