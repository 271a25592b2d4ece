"""The chart and histogram kernels' decomposition, emulated on the CPU, equals the CPU path.

The emulation (``_core._*_gpu_host_emulation``) runs the kernels' tiles, shared-memory
privatisation, bucket searches, per-thread picks and merges with the very arithmetic the kernels
use (cairn/charts_gpu_logic.hpp), so a machine without a GPU checks everything but the CUDA
launches. The real kernels are compared with the CPU in test_gpu_aggregate.py (marker ``gpu``).
"""

from __future__ import annotations

import numpy as np
import pytest

from cairn import _core
from cairn.core import downsample_minmax, lttb, segment_histogram


def emulated_downsample(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """What cairn.core.aggregate_gpu.downsample_minmax does with the kernel's triples."""
    if len(x) <= n_out:
        return np.arange(len(x))
    t = _core._downsample_minmax_gpu_host_emulation(x, y, n_out)
    t.sort(axis=1)
    keep = t >= 0
    keep[:, 1:] &= t[:, 1:] != t[:, :-1]
    return t[keep]


def series(seed: int, n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "int":
        x = np.cumsum(rng.integers(0, 5, size=n)).astype(np.int64) - 10**12
    elif kind == "float-ties":
        x = np.round(np.cumsum(rng.random(n)), 1)
    else:
        x = np.cumsum(rng.exponential(size=n)) * 1e-3 + 12345.678
    y = rng.standard_normal(n)
    y[rng.random(n) < 0.02] = np.nan
    y[rng.integers(0, n, 50)] = 0.5  # ties
    y[n // 3] = np.inf
    y[n // 2] = -np.inf
    y[:3] = np.nan
    return x, y


@pytest.mark.parametrize("kind", ["int", "float", "float-ties"])
@pytest.mark.parametrize("n_out", [3, 4, 7, 100, 3001])
def test_emulated_downsample_minmax_equals_cpu(kind: str, n_out: int) -> None:
    x, y = series(n_out, 60_000, kind)
    np.testing.assert_array_equal(emulated_downsample(x, y, n_out), downsample_minmax(x, y, n_out))


def test_emulated_downsample_minmax_with_constant_x_and_all_nan_buckets() -> None:
    x = np.zeros(5000)
    y = np.full(5000, np.nan)
    np.testing.assert_array_equal(emulated_downsample(x, y, 30), downsample_minmax(x, y, 30))
    x = np.arange(5000, dtype=np.int64)
    y[2000:2100] = 1.0
    np.testing.assert_array_equal(emulated_downsample(x, y, 30), downsample_minmax(x, y, 30))


@pytest.mark.parametrize("kind", ["int", "float", "float-ties"])
@pytest.mark.parametrize("n_out", [3, 5, 100, 4000])
def test_emulated_lttb_equals_cpu(kind: str, n_out: int) -> None:
    x, y = series(n_out + 1, 50_000, kind)
    np.testing.assert_array_equal(_core._lttb_gpu_host_emulation(x, y, n_out), lttb(x, y, n_out))


def test_emulated_lttb_with_nan_runs_and_huge_x() -> None:
    x = np.arange(20_000, dtype=np.int64) * (1 << 40) - (1 << 62)
    y = np.sin(np.arange(20_000) / 50.0)
    y[5000:9000] = np.nan
    np.testing.assert_array_equal(_core._lttb_gpu_host_emulation(x, y, 300), lttb(x, y, 300))


def offsets_for(seed: int, nseg: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lengths = rng.choice([0, 1, 3, 17, 300, 8191, 8192, 8193, 20_000], size=nseg)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@pytest.mark.parametrize("nbins", [1, 8, 300, 8189, 8190, 9000])
def test_emulated_histogram_equals_cpu(nbins: int) -> None:
    offs = offsets_for(nbins, 60)
    rng = np.random.default_rng(nbins)
    v = rng.standard_normal(int(offs[-1])) * 10
    v[rng.random(v.size) < 0.03] = np.nan
    v[::97] = np.inf
    v[::101] = -np.inf
    edges = np.linspace(-20.0, 25.0, nbins + 1)
    v[::89] = edges[-1]
    v[::83] = edges[nbins // 2]
    v[::79] = edges[0]
    for e in (edges, np.sort(rng.uniform(-30, 30, size=nbins + 1))):
        got = _core._segment_histogram_gpu_host_emulation(v, offs, e)
        expected = segment_histogram(v, e, offsets=offs)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_emulated_histogram_on_part_of_the_values_and_many_empty_segments() -> None:
    v = np.random.default_rng(1).standard_normal(50_000)
    offs = np.array([100] * 3000 + [100, 20_000, 20_000, 49_000], dtype=np.int64)
    edges = np.linspace(-2, 2, 7)
    got = _core._segment_histogram_gpu_host_emulation(v, offs, edges)
    expected = segment_histogram(v, edges, offsets=offs)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
