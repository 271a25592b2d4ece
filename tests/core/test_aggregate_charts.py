"""cairn.core chart and drift kernels: min/max/last downsampling, LTTB, rolling windows and
histograms, against small pure-Python/numpy references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core import downsample_minmax, lttb, rolling, segment_histogram


def reference_minmax(x: np.ndarray, y: np.ndarray, n_out: int) -> list[int]:
    n = len(x)
    if n <= n_out:
        return list(range(n))
    nb = n_out // 3
    if np.issubdtype(x.dtype, np.integer):
        x0, width = int(x[0]), int(x[-1]) - int(x[0]) + 1
        bucket = [(int(v) - x0) * nb // width for v in x]
    else:
        span = float(x[-1]) - float(x[0])
        bucket = [
            0 if span <= 0 else min(nb - 1, math.floor((float(v) - float(x[0])) / span * nb))
            for v in x
        ]
    picked: list[int] = []
    for b in sorted(set(bucket)):
        idx = [i for i in range(n) if bucket[i] == b]
        ok = [i for i in idx if not math.isnan(y[i])]
        chosen = {idx[-1]}
        if ok:
            chosen |= {min(ok, key=lambda i: (y[i], i)), max(ok, key=lambda i: (y[i], -i))}
        picked += sorted(chosen)
    return picked


def reference_lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> list[int]:
    n = len(x)
    if n <= n_out:
        return list(range(n))
    xs = [
        float(int(v) - int(x[0])) if np.issubdtype(x.dtype, np.integer) else float(v) - float(x[0])
        for v in x
    ]
    ys = [float(v) for v in y]
    nbuckets = n_out - 2

    def start(b: int) -> int:
        return 1 + b * (n - 2) // nbuckets

    picked, a = [0], 0
    for b in range(nbuckets):
        lo, hi = start(b), start(b + 1)
        nlo, nhi = hi, (start(b + 2) if b + 1 < nbuckets else n)
        cx = sum(xs[nlo:nhi]) / (nhi - nlo)
        ok = [v for v in ys[nlo:nhi] if not math.isnan(v)]
        cy = sum(ok) / len(ok) if ok else ys[a]
        best, best_area = lo, -1.0
        for k in range(lo, hi):
            area = abs((xs[a] - cx) * (ys[k] - ys[a]) - (xs[a] - xs[k]) * (cy - ys[a]))
            if area > best_area:
                best, best_area = k, area
        picked.append(best)
        a = best
    return picked + [n - 1]


def series(seed: int, n: int, int_x: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.integers(1, 5, size=n))
    x = steps.astype(np.int64) if int_x else steps * 0.37
    y = np.cumsum(rng.standard_normal(n))
    y[rng.random(n) < 0.01] = np.nan
    return x, y


@pytest.mark.parametrize("int_x", [True, False])
@pytest.mark.parametrize(("n", "n_out"), [(5_000, 300), (1_001, 999), (50, 100), (10_000, 3)])
def test_minmax_downsampling_matches_reference(int_x: bool, n: int, n_out: int) -> None:
    x, y = series(n, n, int_x)
    got = downsample_minmax(x, y, n_out)
    assert got.dtype == np.int64
    assert got.tolist() == reference_minmax(x, y, n_out)
    assert len(got) <= max(n_out, 0) and np.all(np.diff(got) > 0)


def test_minmax_downsampling_never_hides_a_spike() -> None:
    y = np.sin(np.arange(1_000_000) / 1e4)
    y[123_457] = 50.0
    y[876_543] = -np.inf
    got = downsample_minmax(np.arange(len(y)), y.astype(np.float32), 1_000)
    assert {123_457, 876_543, len(y) - 1} <= set(got.tolist())
    assert len(got) <= 1_000


def test_minmax_handles_huge_integer_steps() -> None:
    x = np.array([-(2**62), 0, 2**62, 2**62 + 5], dtype=np.int64)
    y = np.array([1.0, 2.0, 3.0, 0.0])
    assert downsample_minmax(x, y, 3).tolist() == reference_minmax(x, y, 3)


@pytest.mark.parametrize("int_x", [True, False])
@pytest.mark.parametrize(("n", "n_out"), [(5_000, 300), (1_000, 3), (1_001, 1_000), (20, 50)])
def test_lttb_matches_reference(int_x: bool, n: int, n_out: int) -> None:
    x, y = series(n + 1, n, int_x)
    got = lttb(x, y, n_out)
    assert got.tolist() == reference_lttb(x, y, n_out)
    assert len(got) == min(n, n_out) and got[0] == 0 and got[-1] == n - 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=200), st.integers(3, 60))
def test_property_lttb_and_minmax_match_references(ys: list[float], n_out: int) -> None:
    y = np.array(ys)
    x = np.arange(len(y), dtype=np.int64) * 10
    assert lttb(x, y, n_out).tolist() == reference_lttb(x, y, n_out)
    assert downsample_minmax(x, y, n_out).tolist() == reference_minmax(x, y, n_out)


@pytest.mark.parametrize("fn", [downsample_minmax, lttb])
def test_downsampling_rejects_bad_x_and_n(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="sorted"):
        fn(np.array([0, 2, 1]), np.zeros(3), 3)
    with pytest.raises(ValueError, match="finite"):
        fn(np.array([0.0, np.nan, 1.0]), np.zeros(3), 3)
    with pytest.raises(ValueError, match="overflows"):
        fn(np.array([-1e308, 0.0, 1e308]), np.zeros(3), 3)
    with pytest.raises(ValueError, match=">= 3"):
        fn(np.arange(10), np.zeros(10), 2)


# ---------------------------------------------------------------------------------------------
# Rolling windows


def reference_rolling(
    values: np.ndarray, offsets: np.ndarray, window: int, min_periods: int, ddof: int
) -> dict:
    n = len(values)
    out = {k: np.full(n, np.nan) for k in ("sum", "mean", "var", "min", "max")}
    out["count"] = np.zeros(n, dtype=np.int64)
    for a, b in itertools.pairwise(offsets):
        for i in range(a, b):
            w = values[max(a, i - window + 1) : i + 1].astype(np.float64)
            w = w[~np.isnan(w)]
            out["count"][i] = len(w)
            if len(w) >= max(min_periods, 1):
                out["sum"][i], out["mean"][i] = w.sum(), w.mean()
                out["min"][i], out["max"][i] = w.min(), w.max()
                out["var"][i] = w.var(ddof=ddof) if len(w) > ddof else np.nan
    return out


@pytest.mark.parametrize(
    ("window", "min_periods", "ddof"), [(1, 1, 0), (3, 1, 0), (7, 4, 1), (50, 1, 0), (500, 2, 1)]
)
def test_rolling_matches_reference_per_segment(window: int, min_periods: int, ddof: int) -> None:
    rng = np.random.default_rng(window)
    values = rng.standard_normal(3_000) * 100 + 1e6
    values[rng.random(len(values)) < 0.05] = np.nan
    offsets = np.array([0, 0, 10, 1_000, 1_001, 2_900, 3_000], dtype=np.int64)
    ops = ("count", "sum", "mean", "var", "std", "min", "max")
    got = rolling(
        values, window, offsets=offsets, ops=ops, min_periods=min_periods, ddof=ddof, threads=2
    )
    ref = reference_rolling(values, offsets, window, min_periods, ddof)
    np.testing.assert_array_equal(got["count"], ref["count"])
    np.testing.assert_array_equal(got["min"], ref["min"])
    np.testing.assert_array_equal(got["max"], ref["max"])
    np.testing.assert_allclose(got["sum"], ref["sum"], rtol=1e-12)
    np.testing.assert_allclose(got["mean"], ref["mean"], rtol=1e-12)
    np.testing.assert_allclose(got["var"], ref["var"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got["std"], np.sqrt(ref["var"]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
def test_rolling_by_segment_ids_puts_each_output_at_its_value(id_dtype: type) -> None:
    rng = np.random.default_rng(15)
    ids = rng.integers(0, 7, size=2_000).astype(id_dtype)
    values = rng.standard_normal(len(ids))
    ops = ("count", "sum", "mean", "var", "std", "min", "max")
    got = rolling(values, 5, segment_ids=ids, ops=ops, min_periods=2, ddof=1)
    order = np.argsort(ids, kind="stable")
    offsets = np.searchsorted(ids[order], np.arange(8)).astype(np.int64)
    by_offsets = rolling(values[order], 5, offsets=offsets, ops=ops, min_periods=2, ddof=1)
    for op in ops:
        np.testing.assert_array_equal(got[op][order], by_offsets[op], err_msg=op)


def test_rolling_outside_the_offsets_is_empty() -> None:
    got = rolling(np.arange(6.0), 2, offsets=[1, 3, 4], ops=("count", "mean"))
    np.testing.assert_array_equal(got["count"], [0, 1, 2, 1, 0, 0])
    np.testing.assert_array_equal(got["mean"], [np.nan, 1.0, 1.5, 3.0, np.nan, np.nan])


def test_rolling_forgets_an_infinity_once_it_leaves_the_window() -> None:
    got = rolling([np.inf, 1.0, 2.0, 3.0, 1e300, 4.0, 5.0, 6.0], 2, ops=("mean", "var"))
    np.testing.assert_array_equal(got["mean"], [np.inf, np.inf, 1.5, 2.5, 5e299, 5e299, 4.5, 5.5])
    assert np.isnan(got["var"][:2]).all()
    np.testing.assert_array_equal(got["var"][[2, 3, 6, 7]], [0.25, 0.25, 0.25, 0.25])


def test_rolling_variance_stays_accurate_when_the_mean_dwarfs_the_spread() -> None:
    values = np.random.default_rng(14).standard_normal(5_000) * 1e-3 + 1e6
    got = rolling(values, 1_000, ops=("var",), min_periods=1_000)["var"]
    ref = np.array([np.var(values[i - 999 : i + 1]) for i in range(999, len(values))])
    np.testing.assert_allclose(got[999:], ref, rtol=1e-9)


def test_rolling_is_identical_for_every_thread_count() -> None:
    values = np.random.default_rng(9).standard_normal(300_000)
    base = rolling(values, 1_000, ops=("mean", "std", "min", "max"), threads=1)
    for threads in (2, 3):
        got = rolling(values, 1_000, ops=("mean", "std", "min", "max"), threads=threads)
        for op, arr in base.items():
            np.testing.assert_array_equal(got[op], arr, err_msg=op)


# ---------------------------------------------------------------------------------------------
# Histograms


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_histograms_match_numpy_with_under_over_and_nan(dtype: type) -> None:
    rng = np.random.default_rng(4)
    values = (rng.standard_normal(200_000) * 2).astype(dtype)
    values[::101] = np.nan
    values[::203] = np.inf
    values[5] = -np.inf
    edges = np.array([-3.0, -1.0, -0.25, 0.0, 0.5, 2.0, 3.0])
    edges_t = edges.astype(dtype).astype(np.float64)
    values[7] = edges_t[-1]  # the last edge belongs to the last bin
    offsets = np.array([0, 10, 10, 150_000, 200_000], dtype=np.int64)
    got = segment_histogram(values, edges_t, offsets=offsets, threads=2)
    assert got.counts.shape == (4, 6)
    for s in range(4):
        seg = values[offsets[s] : offsets[s + 1]].astype(np.float64)
        ok = seg[~np.isnan(seg)]
        np.testing.assert_array_equal(got.counts[s], np.histogram(ok, edges_t)[0])
        assert got.underflow[s] == np.sum(ok < edges_t[0])
        assert got.overflow[s] == np.sum(ok > edges_t[-1])
        assert got.nan_count[s] == np.isnan(seg).sum()


def test_histograms_by_segment_ids_and_bad_edges() -> None:
    got = segment_histogram(
        [0.5, 1.5, 0.1, 9.0], [0.0, 1.0, 2.0], segment_ids=np.array([1, 0, 1, 1], np.int32)
    )
    np.testing.assert_array_equal(got.counts, [[0, 1], [2, 0]])
    np.testing.assert_array_equal(got.overflow, [0, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        segment_histogram([1.0], [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        segment_histogram([1.0], [0.0, np.inf])


@pytest.mark.parametrize(
    "edges", [np.linspace(-1.0, 1.0, 11), np.linspace(0.1, 0.7, 7), np.geomspace(1e-3, 1.0, 9)]
)
def test_histogram_values_on_and_next_to_edges_land_in_numpys_bins(edges: np.ndarray) -> None:
    rng = np.random.default_rng(12)
    near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    values = np.concatenate([near, rng.uniform(edges[0] - 0.1, edges[-1] + 0.1, size=10_000)])
    got = segment_histogram(values, edges)
    np.testing.assert_array_equal(got.counts[0], np.histogram(values, edges)[0])
    assert got.underflow[0] + got.overflow[0] + got.counts.sum() == len(values)
