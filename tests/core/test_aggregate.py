"""cairn.core aggregation kernels against float64 numpy references.

Tolerances (the documented contract): count, nan_count, min, max, first, last and quantiles are
exact; sum and mean are within 1e-12 relative to the sum of magnitudes (|err| <= 1e-12 * sum|x|);
var and std within rtol 1e-9. Every kernel is bit-identical for any thread count.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn import _core
from cairn.core import aggregate, segment_quantiles, segment_reduce

ALL_OPS = ("count", "nan_count", "sum", "min", "max", "mean", "var", "std", "first", "last")


def reference_reduce(
    values: np.ndarray, offsets: np.ndarray, ddof: int = 0
) -> dict[str, np.ndarray]:
    """Segment by segment with numpy in float64, NaN skipped."""
    cols: dict[str, list[float]] = {op: [] for op in ALL_OPS}
    for a, b in itertools.pairwise(offsets):
        seg = values[a:b].astype(np.float64)
        ok = seg[~np.isnan(seg)]
        k = len(ok)
        cols["count"].append(k)
        cols["nan_count"].append(len(seg) - k)
        cols["sum"].append(float(np.sum(ok)))
        with np.errstate(all="ignore"):
            cols["min"].append(ok.min() if k else np.nan)
            cols["max"].append(ok.max() if k else np.nan)
            cols["mean"].append(ok.mean() if k else np.nan)
            var = ok.var(ddof=ddof) if k - ddof > 0 else np.nan
        cols["var"].append(var)
        cols["std"].append(np.sqrt(var))
        cols["first"].append(ok[0] if k else np.nan)
        cols["last"].append(ok[-1] if k else np.nan)
    out = {op: np.array(v, dtype=np.float64) for op, v in cols.items()}
    out["count"] = out["count"].astype(np.int64)
    out["nan_count"] = out["nan_count"].astype(np.int64)
    return out


def abs_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    mags = np.nan_to_num(np.abs(values.astype(np.float64)), nan=0.0)
    csum = np.concatenate([[0.0], np.cumsum(mags)])
    return csum[offsets[1:]] - csum[offsets[:-1]]


def assert_matches_reference(
    values: np.ndarray, offsets: np.ndarray, got: dict[str, np.ndarray], ddof: int = 0
) -> None:
    ref = reference_reduce(values, offsets, ddof)
    for op in ("count", "nan_count"):
        np.testing.assert_array_equal(got[op], ref[op], err_msg=op)
    for op in ("min", "max", "first", "last"):
        np.testing.assert_array_equal(got[op], ref[op], err_msg=op)
    scale = abs_sums(values, offsets)
    assert np.all(np.abs(got["sum"] - ref["sum"]) <= 1e-12 * scale), "sum"
    both_nan = np.isnan(got["mean"]) & np.isnan(ref["mean"])
    mean_err = np.abs(got["mean"] - ref["mean"])
    assert np.all(both_nan | (mean_err <= 1e-12 * scale / np.maximum(ref["count"], 1))), "mean"
    sq = np.nan_to_num(values.astype(np.float64), nan=0.0) ** 2
    # Subnormal variances (below ~2.2e-308) carry fewer significant bits, so a relative tolerance
    # cannot hold there: allow an absolute floor well above that range.
    tiny = max(1e-13 * (sq.max() if len(sq) else 0.0), 1e-300)
    for op in ("var", "std"):
        np.testing.assert_allclose(
            got[op], ref[op], rtol=1e-9, atol=np.sqrt(tiny) if op == "std" else tiny, err_msg=op
        )


def random_offsets(rng: np.random.Generator, n: int, nseg: int) -> np.ndarray:
    cuts = np.sort(rng.integers(0, n + 1, size=nseg - 1))
    return np.concatenate([[0], cuts, [n]]).astype(np.int64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reduce_matches_numpy_on_random_segments(dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300_000))
    values = (rng.standard_normal(n) * 10 ** rng.uniform(-3, 6)).astype(dtype)
    values[rng.random(n) < 0.05] = np.nan
    offsets = random_offsets(rng, n, int(rng.integers(1, 2_000)))
    got = segment_reduce(values, offsets=offsets, ops=ALL_OPS, ddof=int(seed % 2))
    assert_matches_reference(values, offsets, got, ddof=int(seed % 2))


def test_many_tiny_segments_including_empty() -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 4, size=20_000)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.standard_normal(int(offsets[-1]))
    got = segment_reduce(values, offsets=offsets, ops=ALL_OPS)
    assert_matches_reference(values, offsets, got)


@pytest.mark.parametrize("shift", [0.0, 1e9])
def test_one_huge_segment_is_accurate_and_split_across_threads(shift: float) -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_normal(3_000_000) + shift
    offsets = np.array([0, len(values)], dtype=np.int64)
    one = segment_reduce(values, offsets=offsets, ops=ALL_OPS, threads=1)
    many = segment_reduce(values, offsets=offsets, ops=ALL_OPS, threads=4)
    for op in ALL_OPS:
        np.testing.assert_array_equal(one[op], many[op], err_msg=op)
    assert_matches_reference(values, offsets, one)


def test_results_are_identical_for_every_thread_count() -> None:
    rng = np.random.default_rng(11)
    values = rng.standard_normal(400_000)
    values[::97] = np.nan
    offsets = random_offsets(rng, len(values), 37)
    base = segment_reduce(values, offsets=offsets, ops=ALL_OPS, threads=1)
    for threads in (2, 3, 5, 8):
        got = segment_reduce(values, offsets=offsets, ops=ALL_OPS, threads=threads)
        for op in ALL_OPS:
            np.testing.assert_array_equal(got[op], base[op], err_msg=f"{op} threads={threads}")


@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
# regrouped per window / folded value by value / regrouped by counting sort
@pytest.mark.parametrize("nseg", [300, 5_000, 70_000])
def test_segment_ids_match_the_reference_on_stably_sorted_values(id_dtype: type, nseg: int) -> None:
    rng = np.random.default_rng(5)
    ids = rng.integers(0, nseg - 10, size=200_000).astype(id_dtype)  # some segments stay empty
    values = rng.standard_normal(len(ids))
    values[rng.random(len(ids)) < 0.01] = np.nan
    order = np.argsort(ids, kind="stable")
    offsets = np.searchsorted(ids[order], np.arange(nseg + 1)).astype(np.int64)
    by_ids = segment_reduce(values, segment_ids=ids, num_segments=nseg, ops=ALL_OPS)
    by_offsets = segment_reduce(values[order], offsets=offsets, ops=ALL_OPS)
    regrouped = nseg > 65_536  # then the CSR kernel runs on the regrouped values: equal bit for bit
    exact = ALL_OPS if regrouped else ("count", "nan_count", "min", "max", "first", "last")
    for op in exact:
        np.testing.assert_array_equal(by_ids[op], by_offsets[op], err_msg=op)
    if not regrouped:
        assert_matches_reference(values[order], offsets, by_ids)


def test_segment_ids_results_are_identical_for_every_thread_count() -> None:
    rng = np.random.default_rng(6)
    ids = rng.integers(0, 50, size=3_500_000)  # several fixed chunks
    values = rng.standard_normal(len(ids))
    base = segment_reduce(values, segment_ids=ids, ops=ALL_OPS, threads=1)
    for threads in (2, 3):
        got = segment_reduce(values, segment_ids=ids, ops=ALL_OPS, threads=threads)
        for op in ALL_OPS:
            np.testing.assert_array_equal(got[op], base[op], err_msg=f"{op} threads={threads}")


def test_one_huge_segment_by_ids_is_accurate() -> None:
    values = np.random.default_rng(8).standard_normal(3_000_000) + 1e9
    ids = np.zeros(len(values), dtype=np.int32)
    got = segment_reduce(values, segment_ids=ids, ops=ALL_OPS)
    assert_matches_reference(values, np.array([0, len(values)]), got)


@pytest.mark.parametrize("nseg", [1, 200, 5_000])
def test_variance_stays_accurate_when_the_mean_dwarfs_the_spread(nseg: int) -> None:
    # (mean / std)^2 = 1e18: a naive sum-of-squares loses every digit, plain Welford/Chan on
    # unshifted means loses about half of them.
    rng = np.random.default_rng(13)
    values = rng.standard_normal(1_000_000) * 1e-3 + 1e6
    ids = rng.integers(0, nseg, size=len(values))
    order = np.argsort(ids, kind="stable")
    offsets = np.searchsorted(ids[order], np.arange(nseg + 1)).astype(np.int64)
    grouped = values[order]
    ref = np.array([np.var(grouped[a:b]) for a, b in itertools.pairwise(offsets)])
    by_offsets = segment_reduce(grouped, offsets=offsets, ops=("var",))["var"]
    by_ids = segment_reduce(values, segment_ids=ids, num_segments=nseg, ops=("var",))["var"]
    np.testing.assert_allclose(by_offsets, ref, rtol=1e-9)
    np.testing.assert_allclose(by_ids, ref, rtol=1e-9)


def test_empty_and_all_nan_segments_follow_the_nan_rules() -> None:
    values = np.array([np.nan, np.nan, 1.0, np.nan])
    got = segment_reduce(values, offsets=[0, 0, 2, 3, 4], ops=ALL_OPS)
    np.testing.assert_array_equal(got["count"], [0, 0, 1, 0])
    np.testing.assert_array_equal(got["nan_count"], [0, 2, 0, 1])
    np.testing.assert_array_equal(got["sum"], [0.0, 0.0, 1.0, 0.0])
    for op in ("min", "max", "mean", "first", "last"):
        np.testing.assert_array_equal(got[op], [np.nan, np.nan, 1.0, np.nan], err_msg=op)
    np.testing.assert_array_equal(got["var"], [np.nan, np.nan, 0.0, np.nan])


def test_values_outside_the_offsets_belong_to_no_segment() -> None:
    values = np.arange(10.0)
    got = segment_reduce(values, offsets=[2, 5, 7], ops=ALL_OPS)
    assert_matches_reference(values, np.array([2, 5, 7]), got)
    np.testing.assert_array_equal(got["sum"], [9.0, 11.0])


def test_no_values_at_all() -> None:
    got = segment_reduce(np.array([], dtype=np.float64), ops=ALL_OPS)
    assert got["count"].tolist() == [0] and got["sum"].tolist() == [0.0]
    assert np.isnan(got["mean"][0])
    assert segment_reduce(np.array([]), segment_ids=np.array([], dtype=np.int64))[
        "count"
    ].shape == (0,)


def test_infinities_propagate() -> None:
    inf = np.inf
    values = np.array([1.0, inf, inf, -inf, -inf, 2.0, np.nan])
    got = segment_reduce(values, offsets=[0, 2, 4, 7], ops=ALL_OPS)
    np.testing.assert_array_equal(got["sum"][[0, 2]], [inf, -inf])
    assert np.isnan(got["sum"][1])
    np.testing.assert_array_equal(got["max"], [inf, inf, 2.0])
    np.testing.assert_array_equal(got["min"], [1.0, -inf, -inf])
    np.testing.assert_array_equal(got["mean"][[0, 2]], [inf, -inf])
    assert np.isnan(got["var"]).all()
    np.testing.assert_array_equal(got["last"], [inf, -inf, 2.0])


def test_ddof_one_gives_sample_variance_and_nan_for_single_values() -> None:
    got = segment_reduce([1.0, 2.0, 4.0, 5.0], offsets=[0, 3, 4], ops=("var", "std"), ddof=1)
    assert got["var"][0] == pytest.approx(np.var([1.0, 2.0, 4.0], ddof=1), rel=1e-15)
    assert np.isnan(got["var"][1]) and np.isnan(got["std"][1])


def test_pyarrow_input_is_accepted_and_nulls_count_as_nan() -> None:
    arr = pa.chunked_array([pa.array([1.0, None, 3.0]), pa.array([4.0])])
    got = segment_reduce(arr, offsets=pa.array([0, 2, 4]), ops=("count", "nan_count", "sum"))
    np.testing.assert_array_equal(got["count"], [1, 2])
    np.testing.assert_array_equal(got["nan_count"], [1, 0])
    np.testing.assert_array_equal(got["sum"], [1.0, 7.0])
    with pytest.raises(ValueError, match="1 nulls"):
        segment_reduce([1.0, 2.0], segment_ids=pa.array([0, None]))
    no_nulls = pa.array(np.arange(5, dtype=np.float32))
    assert segment_reduce(no_nulls, ops=("sum",))["sum"][0] == 10.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_and_null_free_arrow_values_reach_the_core_without_a_copy(dtype: type) -> None:
    values = np.arange(10, dtype=dtype)
    for source in (values, pa.array(values), pa.chunked_array([pa.array(values)])):
        assert np.shares_memory(aggregate._values(source), values)


def test_the_extension_refuses_arrays_it_would_have_to_copy() -> None:
    offsets = np.array([0, 2], dtype=np.int64)
    with pytest.raises(TypeError):
        _core.segment_reduce(np.arange(2, dtype=np.int64), offsets, None, 0, ["sum"], 0, 1)
    with pytest.raises(TypeError):
        _core.segment_reduce(np.arange(4.0)[::2], offsets, None, 0, ["sum"], 0, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"offsets": [0, 3, 2]}, "non-decreasing"),
        ({"offsets": [0, 9]}, "only 4 values"),
        ({"offsets": [-1, 2]}, ">= 0"),
        ({"segment_ids": [0, 1, 5, 1], "num_segments": 3}, "outside"),
        ({"segment_ids": [0, -1, 0, 1], "num_segments": 3}, "outside"),
        ({"ops": ("median",)}, "unknown op"),
    ],
)
def test_invalid_segments_and_ops_are_value_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        segment_reduce(np.arange(4.0), **kwargs)


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, width=64)
maybe_nan = st.one_of(finite, st.just(float("nan")))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(maybe_nan, max_size=300), st.lists(st.integers(0, 300), max_size=20), st.integers(1, 4)
)
def test_property_reduce_matches_reference(
    values: list[float], cuts: list[int], threads: int
) -> None:
    vals = np.array(values, dtype=np.float64)
    offsets = np.array([0, *sorted(min(c, len(vals)) for c in cuts), len(vals)], dtype=np.int64)
    got = segment_reduce(vals, offsets=offsets, ops=ALL_OPS, threads=threads)
    assert_matches_reference(vals, offsets, got)
    ids = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    got_by_ids = segment_reduce(vals, segment_ids=ids, num_segments=len(offsets) - 1, ops=ALL_OPS)
    assert_matches_reference(vals, offsets, got_by_ids)


# ---------------------------------------------------------------------------------------------
# Quantiles


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_quantiles_equal_nanquantile_per_segment(dtype: type) -> None:
    rng = np.random.default_rng(21)
    values = rng.standard_normal(50_000).astype(dtype)
    values[rng.random(len(values)) < 0.02] = np.nan
    values[:50] = 3.0  # ties
    offsets = random_offsets(rng, len(values), 60)
    offsets[5] = offsets[4]  # an empty segment
    qs = [0.0, 0.01, 0.25, 0.5, 0.5, 0.9, 0.999, 1.0]
    got = segment_quantiles(values, qs, offsets=offsets, threads=2)
    assert got.shape == (60, len(qs))
    for s in range(60):
        seg = values[offsets[s] : offsets[s + 1]].astype(np.float64)
        if np.isnan(seg).all():
            assert np.isnan(got[s]).all()
        else:
            np.testing.assert_allclose(got[s], np.nanquantile(seg, qs), rtol=1e-15, atol=0)


def test_quantiles_scalar_q_ids_and_validation() -> None:
    values = np.array([5.0, 1.0, 3.0, np.nan, 2.0, 8.0])
    ids = np.array([1, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(segment_quantiles(values, 0.5, segment_ids=ids), [1.5, 5.0])
    with pytest.raises(ValueError, match="outside"):
        segment_quantiles(values, [1.5])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(maybe_nan, min_size=1, max_size=200), st.lists(st.floats(0, 1), min_size=1, max_size=5)
)
def test_property_quantiles_match_numpy(values: list[float], qs: list[float]) -> None:
    vals = np.array(values)
    got = segment_quantiles(vals, qs)
    if np.isnan(vals).all():
        assert np.isnan(got).all()
    else:
        np.testing.assert_allclose(got[0], np.nanquantile(vals, qs), rtol=1e-12, atol=1e-300)
