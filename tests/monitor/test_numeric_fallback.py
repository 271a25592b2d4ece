"""The numpy reference of core.profile.numeric_stats keeps part A's contract (it is the oracle
the C++ function is checked against once it lands)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from cairn.monitor._numeric_fallback import (
    SKETCH_MAX_INDEX,
    bucket_indices,
    numeric_stats,
    sketch_gamma,
)


def test_bucket_k_holds_values_between_python_pow_boundaries() -> None:
    gamma = sketch_gamma()
    ks = np.arange(-SKETCH_MAX_INDEX, SKETCH_MAX_INDEX + 1)
    bounds = np.array([gamma ** int(k) for k in ks])
    assert np.array_equal(bucket_indices(bounds), ks)  # the boundary itself: bucket k
    assert np.array_equal(bucket_indices(np.nextafter(bounds, 0)), ks)
    above = np.minimum(ks + 1, SKETCH_MAX_INDEX)
    assert np.array_equal(bucket_indices(np.nextafter(bounds, np.inf)), above)


def test_values_beyond_the_range_clamp_into_the_last_bucket() -> None:
    assert bucket_indices(np.array([1e13, 1e300]))[0] == SKETCH_MAX_INDEX
    assert bucket_indices(np.array([1e300]))[0] == SKETCH_MAX_INDEX


def test_moments_are_stable_for_large_offsets() -> None:
    values = 1e9 + np.random.default_rng(1).normal(size=10_000)
    [stats] = numeric_stats([values])
    assert stats.m2 / stats.count == pytest.approx(np.var(values), rel=1e-9)
    assert stats.mean == pytest.approx(np.mean(values), rel=1e-15)


def test_nulls_nan_and_inf_are_missing_and_zero_and_signs_are_counted() -> None:
    column = pa.array([1.0, None, float("nan"), float("inf"), -2.0, 0.0, 1e-13, 3.0])
    [stats] = numeric_stats([column], [np.array([0.0, 2.0])])
    assert (stats.count, stats.missing, stats.zero) == (5, 3, 2)
    assert (stats.min, stats.max) == (-2.0, 3.0)
    assert int(stats.pos.sum()) == 2 and int(stats.neg.sum()) == 1
    assert stats.hist.tolist() == [1, 3, 1]  # [x < 0], [0, 2), [x >= 2]


def test_integer_and_chunked_arrow_columns_and_bool_is_a_type_error() -> None:
    chunked = pa.chunked_array([pa.array([1, 2], pa.int8()), pa.array([None, 4], pa.int8())])
    [stats] = numeric_stats([chunked])
    assert (stats.count, stats.missing, stats.mean) == (3, 1, 7 / 3)
    with pytest.raises(TypeError, match="column 1"):
        numeric_stats([chunked, pa.array([True, False])])
