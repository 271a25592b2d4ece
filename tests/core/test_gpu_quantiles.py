"""segment_quantiles(device="cuda"): the CPU's values exactly.

The GPU path (cairn.core.aggregate_gpu.segment_quantiles) is written against the NumPy-compatible
part of CuPy, so the unmarked tests run its exact sequence of operations with NumPy standing in
for CuPy, everywhere; the tests marked ``gpu`` run it on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

import cairn.core
from cairn.core import aggregate_gpu, segment_quantiles

from gpu_marks import GPU_USABLE, needs_gpu

QS = np.array([0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.75, 0.9, 0.99, 1.0])


def data(dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 40, size=3_000)
    lengths[:4] = [0, 1, 2, 5000]
    offsets = 7 + np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.normal(2.0, 10.0, size=offsets[-1] + 3).astype(dtype)
    values[rng.random(values.size) < 0.1] = np.nan
    values[rng.random(values.size) < 0.01] = np.inf
    values[rng.random(values.size) < 0.01] = -np.inf
    values[rng.random(values.size) < 0.05] = 0.0
    values[offsets[10] : offsets[11]] = np.nan  # a segment of NaN only
    values[offsets[12] : offsets[13]] = 3.25  # ties
    return values, offsets


@pytest.fixture
def numpy_as_cupy(monkeypatch):
    monkeypatch.setattr(aggregate_gpu, "cupy_module", lambda: np)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns on inf - inf; CuPy does not
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_algorithm_with_numpy_equals_the_cpu(numpy_as_cupy, dtype) -> None:
    values, offsets = data(dtype)
    expected = segment_quantiles(values, QS, offsets=offsets, device="cpu")
    got = aggregate_gpu.segment_quantiles(values, offsets, QS)
    np.testing.assert_array_equal(got, expected)
    rng = np.random.default_rng(1)
    qs = rng.random(50)
    np.testing.assert_array_equal(
        aggregate_gpu.segment_quantiles(values, offsets, qs),
        segment_quantiles(values, qs, offsets=offsets, device="cpu"),
    )


def test_gpu_algorithm_edge_cases(numpy_as_cupy) -> None:
    values = np.array([np.nan, 1.0, 2.0], dtype=np.float64)
    empty = aggregate_gpu.segment_quantiles(values, np.array([1, 1], dtype=np.int64), QS)
    assert empty.shape == (1, len(QS)) and np.isnan(empty).all()
    none = aggregate_gpu.segment_quantiles(values, np.array([0], dtype=np.int64), QS)
    assert none.shape == (0, len(QS))
    with pytest.raises(ValueError, match="outside"):
        aggregate_gpu.segment_quantiles(values, np.array([0, 3], dtype=np.int64), np.array([1.5]))




@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_quantiles_equal_the_cpu(cupy, dtype) -> None:
    values, offsets = data(dtype, seed=3)
    expected = segment_quantiles(values, QS, offsets=offsets, device="cpu")
    got = segment_quantiles(cupy.asarray(values), QS, offsets=cupy.asarray(offsets))
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(got), expected)
    scalar = segment_quantiles(values, 0.9, offsets=offsets, device="cuda", out="numpy")
    np.testing.assert_array_equal(scalar, expected[:, QS.tolist().index(0.9)])


@pytest.mark.gpu
@needs_gpu
def test_gpu_quantiles_with_segment_ids_equal_the_cpu(cupy) -> None:
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 500, size=100_000)
    values = rng.standard_normal(100_000)
    values[rng.random(values.size) < 0.05] = np.nan
    expected = segment_quantiles(values, QS, segment_ids=ids, num_segments=600, device="cpu")
    got = segment_quantiles(
        cupy.asarray(values), QS, segment_ids=cupy.asarray(ids), num_segments=600, out="numpy"
    )
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="outside"):
        segment_quantiles(cupy.asarray(values), [2.0], segment_ids=cupy.asarray(ids))


@pytest.mark.skipif(GPU_USABLE, reason="a GPU is usable here")
def test_without_gpu_cuda_raises_and_auto_uses_the_cpu() -> None:
    from cairn.core.errors import GpuUnavailableError

    with pytest.raises(GpuUnavailableError, match="segment_quantiles"):
        segment_quantiles([1.0, 2.0], 0.5, device="cuda")
    with pytest.raises(GpuUnavailableError):
        cairn.core.segment_quantiles_gpu(np.ones(3), 0.5, np.array([0, 3]))
    assert segment_quantiles([1.0, 2.0], 0.5, device="auto")[0] == 1.5


@pytest.mark.gpu
@needs_gpu
def test_segment_quantiles_gpu_returns_cupy(cupy) -> None:
    got = cairn.core.segment_quantiles_gpu(cupy.arange(10.0), [0.5], cupy.asarray([0, 4, 10]))
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(got), [[1.5], [6.5]])


def test_gpu_algorithm_all_nan_and_single_values(numpy_as_cupy) -> None:
    values = np.array([np.nan, np.nan, np.nan, 4.0], dtype=np.float32)
    offsets = np.array([0, 2, 3, 4], dtype=np.int64)
    got = aggregate_gpu.segment_quantiles(values, offsets, QS)
    assert np.isnan(got[:2]).all() and (got[2] == 4.0).all()
    np.testing.assert_array_equal(got, segment_quantiles(values, QS, offsets=offsets, device="cpu"))
