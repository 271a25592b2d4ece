"""cairn.core.profile.numeric_stats against a numpy reference written here.

Contract (docs/core.md, "Column statistics for profiles"): counts, min, max, sketch buckets and
histograms are exact; mean within 1e-12 and m2 within 1e-9 relative of numpy's; every result is
bit-identical for any thread count. Bucket k holds gamma**(k-1) < |x| <= gamma**k with the
boundaries exactly as Python computes ``gamma ** k``.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn import _core
from cairn.core.profile import (
    SKETCH_ALPHA,
    SKETCH_MAX_INDEX,
    SKETCH_MIN,
    NumericStats,
    numeric_stats,
    sketch_gamma,
    sketch_max_index,
)

INT_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def boundaries(alpha: float) -> tuple[int, np.ndarray]:
    """(k of the first entry, gamma**k for every k from the bucket of SKETCH_MIN minus 1 to the max)."""
    gamma = sketch_gamma(alpha)
    k = math.floor(math.log(SKETCH_MIN) / math.log(gamma))
    while gamma**k < SKETCH_MIN:
        k += 1
    while gamma ** (k - 1) >= SKETCH_MIN:
        k -= 1
    return k - 1, np.array([gamma**j for j in range(k - 1, sketch_max_index(alpha) + 1)])


def dense(keys: np.ndarray) -> tuple[int, np.ndarray]:
    if len(keys) == 0:
        return 0, np.zeros(0, dtype=np.int64)
    lo = int(keys.min())
    return lo, np.bincount(keys - lo).astype(np.int64)


def as_float_and_valid(column: object) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64 values and a validity mask, the plain way (copies allowed here)."""
    if isinstance(column, np.ndarray):
        return column.astype(np.float64), np.ones(len(column), dtype=bool)
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    values = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
    return values, valid


def reference(column: object, edges: np.ndarray | None = None, alpha: float = SKETCH_ALPHA) -> dict:
    values, valid = as_float_and_valid(column)
    x = values[valid & np.isfinite(values)]
    first_k, bounds = boundaries(alpha)
    mags = np.abs(x)
    in_buckets = mags >= SKETCH_MIN
    k = np.minimum(first_k + np.searchsorted(bounds, mags, side="left"), sketch_max_index(alpha))
    pos_offset, pos = dense(k[in_buckets & (x > 0)])
    neg_offset, neg = dense(k[in_buckets & (x < 0)])
    n = len(x)
    return {
        "count": n,
        "missing": len(values) - n,
        "min": x.min() if n else np.nan,
        "max": x.max() if n else np.nan,
        "mean": x.mean() if n else np.nan,
        "m2": float(((x - x.mean()) ** 2).sum()) if n else 0.0,
        "scale": float(np.abs(x).mean()) if n else 0.0,
        "zero": int((~in_buckets).sum()),
        "pos_offset": pos_offset,
        "pos": pos,
        "neg_offset": neg_offset,
        "neg": neg,
        "hist": None
        if edges is None
        else np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1),
    }


def assert_matches(got: NumericStats, ref: dict) -> None:
    for name in ("count", "missing", "zero", "pos_offset", "neg_offset"):
        assert getattr(got, name) == ref[name], name
    np.testing.assert_array_equal(got.min, ref["min"])
    np.testing.assert_array_equal(got.max, ref["max"])
    np.testing.assert_array_equal(got.pos, ref["pos"])
    np.testing.assert_array_equal(got.neg, ref["neg"])
    assert got.pos.dtype == got.neg.dtype == np.int64
    if ref["hist"] is None:
        assert got.hist is None
    else:
        np.testing.assert_array_equal(got.hist, ref["hist"])
    # mean within 1e-12 of the mean magnitude (a cancelling sum has no relative error to speak of)
    np.testing.assert_allclose(
        got.mean, ref["mean"], rtol=0, atol=1e-12 * ref.get("scale", abs(ref["mean"])) + 1e-300
    )
    np.testing.assert_allclose(got.m2, ref["m2"], rtol=1e-9, atol=1e-300)


def stats_of(column: object, edges: np.ndarray | None = None, **kw: object) -> NumericStats:
    return numeric_stats([column], None if edges is None else [edges], **kw)[0]


MIXED = np.array(
    [1.5, -2.0, 0.0, -0.0, np.nan, np.inf, -np.inf, 1e-13, -1e-13, 1e-12, 2e-12, -3e-12,
     1e11, -1e12, 1e13, 7e150, -3e149, 1.0, 1.0, 3.25, 1e-300, 5e-324]
)  # fmt: skip
EDGES = np.array([-1e12, -1.0, 0.0, 0.0, 1.0, 2.0, 1e12])


def test_mixed_values_match_the_reference_with_duplicate_edges() -> None:
    assert_matches(stats_of(MIXED, EDGES), reference(MIXED, EDGES))


def test_arrow_nulls_and_nan_and_infinities_are_missing() -> None:
    arr = pa.array([1.0, None, float("nan"), None, -4.0, float("inf"), 0.5] * 5)
    got = stats_of(arr, np.array([0.0, 1.0]))
    assert (got.count, got.missing) == (15, 20)
    assert_matches(got, reference(arr, np.array([0.0, 1.0])))


def test_values_on_and_next_to_every_boundary_land_exactly() -> None:
    _, bounds = boundaries(SKETCH_ALPHA)
    values = np.concatenate([bounds, np.nextafter(bounds, 0), np.nextafter(bounds, np.inf)])
    values = np.concatenate([values, -values, [SKETCH_MIN, np.nextafter(SKETCH_MIN, 0)]])
    assert_matches(stats_of(values), reference(values))


@pytest.mark.parametrize(
    "edges",
    [
        np.sort(np.random.default_rng(29).lognormal(0.0, 3.0, 100)),  # uneven: the grid's guess
        np.array([-5.0, -5.0, -5.0, 0.0, 1e-9, 1e-9, 2.0, 1e6]),  # duplicates and a tiny gap
        np.array([-np.inf, -1.0, 0.0, np.inf]),  # infinite edges: searched
        np.array([3.0, 3.0]),
        np.array([0.5]),
        np.array([], dtype=np.float64),
    ],
)
def test_histograms_are_exact_on_and_next_to_every_edge(edges: np.ndarray) -> None:
    finite = edges[np.isfinite(edges)]
    rng = np.random.default_rng(31)
    values = np.concatenate(
        [finite, np.nextafter(finite, -np.inf), np.nextafter(finite, np.inf)]
        + [rng.normal(0.0, 10.0, 5000), rng.lognormal(0.0, 3.0, 5000), [-1e150, 1e150]]
    )
    assert_matches(stats_of(values, edges), reference(values, edges))


@pytest.mark.parametrize("alpha", [0.0001, 0.01, 0.5])
def test_other_alphas_match_the_reference(alpha: float) -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(0.0, 8.0, 20_000) * rng.choice([-1.0, 1.0], 20_000)
    _, bounds = boundaries(alpha)
    values = np.concatenate([values, bounds[::37], np.nextafter(bounds[::41], np.inf)])
    assert_matches(stats_of(values, alpha=alpha), reference(values, alpha=alpha))


def test_huge_magnitudes_clamp_into_the_largest_bucket() -> None:
    values = np.array([1e300, -1e300, 1e13, np.finfo(np.float64).max, 5.0])
    got = stats_of(values)
    assert got.pos_offset + len(got.pos) - 1 == SKETCH_MAX_INDEX
    assert got.pos[-1] == 3 and got.neg.tolist() == [1] and got.neg_offset == SKETCH_MAX_INDEX
    assert (got.count, got.min, got.max) == (5, -1e300, np.finfo(np.float64).max)


def test_the_core_and_the_wrapper_agree_on_the_sketch_layout() -> None:
    first_k, _ = boundaries(SKETCH_ALPHA)
    assert _core.profile_sketch_layout(SKETCH_ALPHA) == (
        sketch_gamma(),
        first_k + 1,
        SKETCH_MAX_INDEX,
    )


def test_a_bucket_representative_is_within_alpha_of_every_value_in_it() -> None:
    gamma = sketch_gamma()
    values = np.random.default_rng(3).lognormal(0.0, 5.0, 50_000)
    got = stats_of(values)
    keys = got.pos_offset + np.repeat(np.arange(len(got.pos)), got.pos)
    representative = 2 * gamma ** keys.astype(np.float64) / (gamma + 1)
    rel = np.abs(representative - np.sort(values)) / np.sort(values)
    assert rel.max() <= SKETCH_ALPHA * (1 + 1e-12)


@pytest.mark.parametrize("name", INT_TYPES)
def test_integers_of_every_width_numpy_and_arrow(name: str) -> None:
    info = np.iinfo(name)
    rng = np.random.default_rng(11)
    drawn = rng.integers(info.min, info.max, 5000, endpoint=True, dtype=name)
    values = np.concatenate([np.array([info.min, info.max, 0, 1], dtype=name), drawn])
    edges = np.array([float(info.min) / 2, 0.0, 1.0, float(info.max) / 3])
    assert_matches(stats_of(values, edges), reference(values, edges))
    mask = np.arange(len(values)) % 3 == 0
    arr = pa.array(values, mask=mask)
    assert_matches(stats_of(arr, edges), reference(arr, edges))


def test_float32_numpy_and_arrow() -> None:
    values = np.random.default_rng(5).normal(3.0, 100.0, 10_000).astype(np.float32)
    values[::17] = np.nan
    assert_matches(stats_of(values), reference(values))
    assert_matches(stats_of(pa.array(values, from_pandas=False)), reference(values))


def test_sliced_arrow_arrays_honour_offset_and_bitmap_offset() -> None:
    rng = np.random.default_rng(9)
    base = pa.array([None if i % 5 == 0 else float(v) for i, v in enumerate(rng.normal(size=1000))])
    for start, stop in [(3, 50), (1, 999), (8, 9), (13, 13), (500, 1000)]:
        piece = base[start:stop]
        assert piece.offset == start
        assert_matches(stats_of(piece, np.array([0.0])), reference(piece, np.array([0.0])))
    ints = pa.array([None, 1, 2, None, -7, 300] * 20, pa.int16())[5:77]
    assert_matches(stats_of(ints), reference(ints))


def test_chunked_arrays_accumulate_over_chunks() -> None:
    rng = np.random.default_rng(13)
    chunks = [pa.array(rng.normal(size=n)) for n in (0, 1, 70_000, 333)]
    chunks.append(pa.array([None, 2.0, None], pa.float64())[1:])
    chunked = pa.chunked_array(chunks, pa.float64())
    edges = np.linspace(-2, 2, 11)
    got = stats_of(chunked, edges)
    assert_matches(got, reference(chunked, edges))
    assert got.count == 70_335 and got.missing == 1


def test_empty_and_all_null_columns() -> None:
    empty, nulls, nans = (
        pa.array([], pa.float64()),
        pa.nulls(10, pa.int32()),
        np.full(5, np.nan),
    )
    no_chunks = pa.chunked_array([], pa.float32())
    for column, missing in [(empty, 0), (nulls, 10), (nans, 5), (no_chunks, 0)]:
        got = stats_of(column, np.array([1.0, 2.0]))
        assert (got.count, got.missing, got.zero) == (0, missing, 0)
        assert (
            math.isnan(got.min) and math.isnan(got.max) and math.isnan(got.mean) and got.m2 == 0.0
        )
        assert (got.pos_offset, got.neg_offset, len(got.pos), len(got.neg)) == (0, 0, 0, 0)
        assert got.hist.tolist() == [0, 0, 0]


def test_numpy_strided_and_big_endian_columns() -> None:
    values = np.arange(-50, 50, dtype=np.float64) / 3
    assert_matches(stats_of(values[::3]), reference(values[::3]))
    big = values.astype(">f8")
    assert_matches(stats_of(big), reference(values))


def test_results_are_identical_for_1_2_and_7_threads() -> None:
    rng = np.random.default_rng(17)
    long = rng.normal(1e6, 3.0, 300_000)
    long[::101] = np.nan
    columns = [
        long,
        pa.array(rng.integers(-1000, 1000, 200_001), mask=rng.random(200_001) < 0.1),
        long[:5],
    ]
    edges = [np.linspace(1e6 - 5, 1e6 + 5, 11), None, np.array([0.0])]
    runs = [numeric_stats(columns, edges, threads=t) for t in (1, 2, 7)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert (a.count, a.missing, a.min, a.max, a.mean, a.m2) == (
                b.count,
                b.missing,
                b.min,
                b.max,
                b.mean,
                b.m2,
            )
            assert (a.zero, a.pos_offset, a.neg_offset) == (b.zero, b.pos_offset, b.neg_offset)
            for x, y in ((a.pos, b.pos), (a.neg, b.neg), (a.hist, b.hist)):
                np.testing.assert_array_equal(x, y)
    for column, edge, got in zip(columns, edges, runs[0], strict=True):
        assert_matches(got, reference(column, edge))


def test_large_mean_with_small_noise_keeps_its_variance() -> None:
    values = 1e9 + np.random.default_rng(19).normal(0.0, 1e-3, 200_000)
    got = stats_of(values)
    np.testing.assert_allclose(got.m2 / got.count, np.var(values), rtol=1e-9)
    np.testing.assert_allclose(got.mean, np.mean(values), rtol=1e-15)


def merge(a: NumericStats, b: NumericStats) -> dict:
    """Chan's formula for the moments, addition for the counts and buckets."""
    n = a.count + b.count
    delta = b.mean - a.mean
    out = {"count": n, "missing": a.missing + b.missing, "zero": a.zero + b.zero,
           "min": min(a.min, b.min), "max": max(a.max, b.max),
           "mean": a.mean + delta * b.count / n,
           "m2": a.m2 + b.m2 + delta * delta * a.count * b.count / n,
           "hist": a.hist + b.hist}  # fmt: skip
    for side in ("pos", "neg"):
        keys = [
            getattr(s, f"{side}_offset") + np.repeat(np.arange(len(c)), c)
            for s in (a, b)
            for c in [getattr(s, side)]
        ]
        out[f"{side}_offset"], out[side] = dense(np.concatenate(keys).astype(np.int64))
    return out


def test_stats_of_two_halves_merge_into_the_stats_of_the_whole() -> None:
    rng = np.random.default_rng(23)
    whole = np.concatenate(
        [rng.normal(5.0, 2.0, 40_000), [np.nan, 0.0, -1e-15, 1e20], rng.exponential(9.0, 30_000)]
    )
    edges = np.array([0.0, 2.5, 5.0, 7.5])
    a, b, both = numeric_stats([whole[:40_002], whole[40_002:], whole], [edges] * 3)
    assert_matches(both, merge(a, b))


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(finite_or_not, st.floats(-1e6, 1e6), st.none()), max_size=300),
    edges=st.lists(st.floats(-1e6, 1e6), max_size=12).map(sorted),
    start=st.integers(0, 20),
)
def test_any_values_with_nulls_match_the_reference(values: list, edges: list, start: int) -> None:
    arr = pa.array(values, pa.float64())[min(start, len(values)) :]
    e = np.array(edges, dtype=np.float64)
    with np.errstate(all="ignore"):
        ref = reference(arr, e)
    got = stats_of(arr, e)
    if not np.isfinite(ref["m2"]) or abs(ref["mean"]) > 1e150:  # overflowing moments: counts only
        ref["m2"], ref["mean"] = got.m2, got.mean
    assert_matches(got, ref)


@pytest.mark.parametrize(
    ("columns", "edges", "error", "message"),
    [
        ([np.zeros(3), np.array([True, False])], None, TypeError, "column 1: dtype bool"),
        ([pa.array(["a"])], None, TypeError, "column 0: Arrow type string"),
        ([pa.array([True])], None, TypeError, "column 0: Arrow type bool"),
        ([np.zeros(3, np.float16)], None, TypeError, "column 0: dtype float16"),
        ([[1.0, 2.0]], None, TypeError, "column 0: expected a pyarrow"),
        ([np.zeros((2, 2))], None, ValueError, "column 0: a numpy column must be 1-D"),
        (
            [np.zeros(3), np.zeros(3)],
            [None, np.array([2.0, 1.0])],
            ValueError,
            "column 1: edges are not sorted",
        ),
        ([np.zeros(3)], [np.array([0.0, np.nan])], ValueError, "column 0: edges contain NaN"),
        ([np.zeros(3)], [None, None], ValueError, "edges has 2 entries for 1 columns"),
    ],
)
def test_bad_input_is_refused_naming_the_column(
    columns: list, edges: list | None, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        numeric_stats(columns, edges)


def test_bad_alpha_and_threads_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        numeric_stats([np.zeros(2)], alpha=0.9)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        numeric_stats([np.zeros(2)], threads=0)


def test_the_core_checks_buffers_and_edges_itself() -> None:
    data = np.zeros(4)
    with pytest.raises(ValueError, match="column 0: data buffer holds 32 bytes"):
        _core.profile_numeric([("float64", [(data, None, 2, 3)])], [None], SKETCH_ALPHA, 1)
    with pytest.raises(ValueError, match="column 0: edges are not sorted"):
        _core.profile_numeric(
            [("float64", [(data, None, 0, 4)])], [np.array([1.0, 0.0])], SKETCH_ALPHA, 1
        )
    with pytest.raises(TypeError, match="column 0: unsupported value type 'bool'"):
        _core.profile_numeric([("bool", [(data, None, 0, 4)])], [None], SKETCH_ALPHA, 1)
