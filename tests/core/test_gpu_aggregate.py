"""``device=`` on the aggregation functions: the GPU gives the CPU's answers.

Counts, first/last, min/max and index outputs (downsample_minmax, lttb) must be identical to the
CPU's; sum, mean, var and std within rtol 1e-9. Unmarked tests run everywhere; tests marked ``gpu``
need a usable CUDA GPU and CuPy.
"""

from __future__ import annotations

import numpy as np
import pytest

from cairn.core import downsample_minmax, lttb, segment_histogram, segment_reduce
from cairn.core.errors import GpuUnavailableError

from gpu_marks import needs_gpu, no_gpu

RTOL = 1e-9
EXACT = ("count", "nan_count", "min", "max", "first", "last")
ALL_OPS = ("count", "nan_count", "sum", "min", "max", "mean", "var", "std", "first", "last")

X = np.arange(1000, dtype=np.float64)
Y = np.sin(X / 7.0)
EDGES = np.linspace(-1.0, 1.0, 9)


def calls(device: str) -> dict[str, object]:
    return {
        "segment_reduce": lambda: segment_reduce(Y, offsets=[0, 10, 1000], device=device),
        "segment_histogram": lambda: segment_histogram(
            Y, EDGES, offsets=[0, 500, 1000], device=device
        ),
        "downsample_minmax": lambda: downsample_minmax(X, Y, 30, device=device),
        "lttb": lambda: lttb(X, Y, 30, device=device),
    }


NAMES = list(calls("cpu"))


@pytest.mark.parametrize("name", NAMES)
def test_cpu_and_auto_equal_the_default_for_numpy_inputs(name: str) -> None:
    default = {
        "segment_reduce": lambda: segment_reduce(Y, offsets=[0, 10, 1000]),
        "segment_histogram": lambda: segment_histogram(Y, EDGES, offsets=[0, 500, 1000]),
        "downsample_minmax": lambda: downsample_minmax(X, Y, 30),
        "lttb": lambda: lttb(X, Y, 30),
    }[name]()
    for device in ("cpu", "auto"):
        got = calls(device)[name]()
        if isinstance(default, dict):
            for k in default:
                np.testing.assert_array_equal(got[k], default[k])
                assert isinstance(got[k], np.ndarray)
        elif isinstance(default, tuple):
            for a, b in zip(got, default):
                np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_array_equal(got, default)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_device_or_out_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="device must be"):
        calls("gpu")[name]()
    with pytest.raises(ValueError, match="out must be"):
        segment_reduce(Y, out="torch")


@no_gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_without_gpu_says_why(name: str) -> None:
    with pytest.raises(GpuUnavailableError, match="no usable CUDA GPU") as info:
        calls("cuda")[name]()
    assert name in str(info.value)


# ------------------------------------------------------------------------------------------------
# On a GPU.




def mixed_segments(rng: np.random.Generator, nseg: int) -> np.ndarray:
    lengths = rng.choice([0, 1, 3, 17, 40, 300, 2047, 2049, 20_000], size=nseg)
    lengths[rng.integers(0, nseg)] = 70_001
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def with_nans(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    v = (rng.standard_normal(n) * 10 + 3).astype(dtype)
    v[rng.random(n) < 0.05] = np.nan
    v[:5] = np.nan  # segments that start with NaN
    return v


def assert_reduce_equal(gpu: dict, cpu: dict) -> None:
    for op, expected in cpu.items():
        got = gpu[op]
        if op in EXACT:
            np.testing.assert_array_equal(got, expected, err_msg=op)
        else:
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0, err_msg=op)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_segment_reduce_matches_cpu_on_offsets(cupy, dtype) -> None:
    rng = np.random.default_rng(5)
    offs = mixed_segments(rng, 300)
    v = with_nans(rng, int(offs[-1]), dtype)
    v[offs[7] : offs[8]] = np.nan  # an all-NaN segment
    cpu = segment_reduce(v, offsets=offs, ops=ALL_OPS, ddof=1, device="cpu")
    gpu = segment_reduce(cupy.asarray(v), offsets=cupy.asarray(offs), ops=ALL_OPS, ddof=1)
    assert all(isinstance(a, cupy.ndarray) for a in gpu.values())
    assert_reduce_equal({k: cupy.asnumpy(a) for k, a in gpu.items()}, cpu)
    numpy_out = segment_reduce(v, offsets=offs, ops=ALL_OPS, ddof=1, device="cuda")
    assert all(isinstance(a, np.ndarray) for a in numpy_out.values())
    assert_reduce_equal(numpy_out, cpu)


@pytest.mark.gpu
@needs_gpu
def test_segment_reduce_matches_cpu_on_segment_ids(cupy) -> None:
    rng = np.random.default_rng(6)
    n = 200_000
    ids = rng.integers(0, 997, size=n)
    v = with_nans(rng, n, np.float64)
    cpu = segment_reduce(v, segment_ids=ids, num_segments=1000, ops=ALL_OPS)
    gpu = segment_reduce(
        cupy.asarray(v), segment_ids=cupy.asarray(ids), num_segments=1000, ops=ALL_OPS, out="numpy"
    )
    assert_reduce_equal(gpu, cpu)
    with pytest.raises(ValueError, match="outside"):
        segment_reduce(cupy.asarray(v), segment_ids=cupy.asarray(ids), num_segments=10)


@pytest.mark.gpu
@needs_gpu
def test_segment_reduce_refuses_bad_offsets_like_the_cpu(cupy) -> None:
    v = cupy.arange(4.0)
    bad = [([0, 3, 2], "non-decreasing"), ([0, 9], "only 4 values"), ([-1, 2], ">= 0")]
    for offs, message in bad:
        with pytest.raises(ValueError, match=message):
            segment_reduce(v, offsets=cupy.asarray(offs))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("nbins", [1, 8, 300, 9000])
def test_segment_histogram_counts_match_cpu(cupy, nbins: int) -> None:
    rng = np.random.default_rng(nbins)
    offs = mixed_segments(rng, 120)
    v = with_nans(rng, int(offs[-1]), np.float32)
    v[::97] = np.inf
    v[::101] = -np.inf
    edges = np.linspace(-20.0, 25.0, nbins + 1)
    v[::89] = edges[-1]  # the closed last bin
    v[::83] = edges[nbins // 2]
    cpu = segment_histogram(v, edges, offsets=offs)
    gpu = segment_histogram(cupy.asarray(v), edges, offsets=offs, out="numpy")
    for a, b in zip(gpu, cpu):
        np.testing.assert_array_equal(a, b)
    irregular = np.sort(rng.uniform(-30, 30, size=nbins + 1))
    cpu = segment_histogram(v, irregular, offsets=offs)
    gpu = segment_histogram(v, irregular, offsets=offs, device="cuda")
    for a, b in zip(gpu, cpu):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
@needs_gpu
def test_segment_histogram_with_ids_and_many_tiny_segments(cupy) -> None:
    rng = np.random.default_rng(8)
    n = 300_000
    ids = rng.integers(0, 50_000, size=n)
    v = rng.standard_normal(n)
    edges = np.linspace(-3, 3, 13)
    cpu = segment_histogram(v, edges, segment_ids=ids, num_segments=50_000)
    gpu = segment_histogram(v, edges, segment_ids=ids, num_segments=50_000, device="cuda")
    for a, b in zip(gpu, cpu):
        np.testing.assert_array_equal(a, b)


def series(rng: np.random.Generator, n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "int":
        x = np.cumsum(rng.integers(0, 5, size=n)).astype(np.int64) - 10**12
    elif kind == "float-ties":
        x = np.round(np.cumsum(rng.random(n)), 1)
    else:
        x = np.cumsum(rng.exponential(size=n)) * 1e-3 + 12345.678
    y = rng.standard_normal(n)
    y[rng.random(n) < 0.02] = np.nan
    y[rng.integers(0, n, 20)] = np.round(y[rng.integers(0, n, 20)], 1)  # ties
    y[n // 3] = np.inf
    y[n // 2] = -np.inf
    return x, y


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("kind", ["int", "float", "float-ties"])
@pytest.mark.parametrize("n_out", [3, 4, 100, 3001])
def test_downsample_minmax_indices_equal_cpu(cupy, kind: str, n_out: int) -> None:
    rng = np.random.default_rng(n_out)
    x, y = series(rng, 250_000, kind)
    for ydtype in (np.float64, np.float32):
        yy = y.astype(ydtype)
        cpu = downsample_minmax(x, yy, n_out)
        gpu = downsample_minmax(cupy.asarray(x), cupy.asarray(yy), n_out)
        assert isinstance(gpu, cupy.ndarray)
        np.testing.assert_array_equal(cupy.asnumpy(gpu), cpu)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("kind", ["int", "float", "float-ties"])
@pytest.mark.parametrize("n_out", [3, 5, 100, 4000])
def test_lttb_indices_equal_cpu(cupy, kind: str, n_out: int) -> None:
    rng = np.random.default_rng(n_out + 1)
    x, y = series(rng, 120_000, kind)
    for ydtype in (np.float64, np.float32):
        yy = y.astype(ydtype)
        cpu = lttb(x, yy, n_out)
        gpu = lttb(x, yy, n_out, device="cuda")
        assert isinstance(gpu, np.ndarray)
        np.testing.assert_array_equal(gpu, cpu)


@pytest.mark.gpu
@needs_gpu
def test_downsampling_short_series_and_bad_x_like_the_cpu(cupy) -> None:
    x = cupy.arange(10.0)
    y = cupy.ones(10)
    np.testing.assert_array_equal(cupy.asnumpy(lttb(x, y, 20)), np.arange(10))
    np.testing.assert_array_equal(cupy.asnumpy(downsample_minmax(x, y, 10)), np.arange(10))
    with pytest.raises(ValueError, match="sorted ascending"):
        lttb(x[::-1].copy(), y, 5)
    with pytest.raises(ValueError, match="n_out must be >= 3"):
        downsample_minmax(x, y, 2)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("start", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("flag", ["1", "0"])
def test_vector_and_scalar_tile_loads_match_cpu(cupy, monkeypatch, start: int, flag: str) -> None:
    """float4 loads in the long-segment tiles (default for float32, CAIRN_GPU_SEGMENT_VECTOR_LOADS=1)
    and the scalar tiles (=0), any alignment."""
    monkeypatch.setenv("CAIRN_GPU_SEGMENT_VECTOR_LOADS", flag)
    rng = np.random.default_rng(start)
    v = with_nans(rng, 400_003, np.float32)
    offs = np.array([start, start + 3, 16_384 * 2 + 7, 200_001, 400_003], dtype=np.int64)
    ops = ("count", "nan_count", "sum", "min", "max", "mean", "var")
    cpu = segment_reduce(v, offsets=offs, ops=ops, device="cpu")
    gpu = segment_reduce(cupy.asarray(v), offsets=cupy.asarray(offs), ops=ops, out="numpy")
    assert_reduce_equal(gpu, cpu)
