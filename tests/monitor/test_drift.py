"""Drift: exact functions agree with scipy, sketch answers stay within their reported bounds,
known shifts are found and no-shift data raises alarms at about the nominal rate."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from cairn.monitor import profile_table
from cairn.monitor.drift import (
    DEFAULT_THRESHOLDS,
    chisquare_exact,
    column_drift,
    dataset_drift,
    jensenshannon_exact,
    ks_exact,
    psi_exact,
    wasserstein_exact,
)
from cairn.monitor.stats import wasserstein_norm

TOL = 1e-9


def _pair(seed: int, n: int = 800, m: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, n), rng.normal(0.1 * (seed % 3), 1 + 0.1 * (seed % 2), m)


@pytest.mark.parametrize("seed", range(5))
def test_exact_functions_agree_with_scipy(seed: int) -> None:
    a, b = _pair(seed)
    statistic, p_value = ks_exact(a, b)
    expected = stats.ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(expected.statistic, abs=TOL)
    assert p_value == pytest.approx(expected.pvalue, abs=TOL)
    assert wasserstein_exact(a, b) == pytest.approx(stats.wasserstein_distance(a, b), abs=TOL)
    edges = np.quantile(a, np.linspace(0.1, 0.9, 9))
    ra, rb = np.histogram(a, np.r_[-np.inf, edges, np.inf])[0], np.histogram(b, np.r_[-np.inf, edges, np.inf])[0]
    assert jensenshannon_exact(a, b, edges=edges) == pytest.approx(
        jensenshannon(ra / ra.sum(), rb / rb.sum(), base=2), abs=TOL)
    pa_, pb = ra / ra.sum(), rb / rb.sum()
    assert psi_exact(a, b, edges=edges) == pytest.approx(np.sum((pb - pa_) * np.log(pb / pa_)), abs=TOL)
    rng = np.random.default_rng(seed)
    ref, cur = rng.choice(list("abcd"), 500, p=[0.4, 0.3, 0.2, 0.1]), rng.choice(list("abcd"), 300)
    counts_ref = np.array([np.sum(ref == k) for k in "abcd"])
    counts_cur = np.array([np.sum(cur == k) for k in "abcd"])
    expected_chi = stats.chisquare(counts_cur, counts_ref / counts_ref.sum() * counts_cur.sum())
    assert chisquare_exact(ref, cur) == pytest.approx(
        (expected_chi.statistic, expected_chi.pvalue), abs=TOL)


def test_psi_uses_a_small_share_for_empty_bins_and_stays_finite() -> None:
    value = psi_exact(np.array([0.0] * 10), np.array([0.0] * 5 + [5.0] * 5), edges=[1.0])
    assert math.isfinite(value) and value > 1.0


@pytest.mark.parametrize("seed", range(6))
def test_sketch_answers_are_within_their_reported_bounds(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    a = rng.lognormal(0, 1.5, 3000) * np.where(rng.random(3000) < 0.3, -1, 1)
    b = rng.lognormal(0.2 * seed, 1.5, 2000) * np.where(rng.random(2000) < 0.3, -1, 1)
    reference = profile_table(pa.table({"x": a})).columns["x"]
    current = profile_table(pa.table({"x": b}), reference=profile_table(pa.table({"x": a}))).columns["x"]
    ks = column_drift(reference, current, method="ks")
    truth = stats.ks_2samp(a, b).statistic
    assert ks.scores["ks_statistic"] <= truth + 1e-12
    assert truth <= ks.scores["ks_statistic"] + ks.error_bound + 1e-12
    w = column_drift(reference, current, method="wasserstein")
    exact = stats.wasserstein_distance(a, b) / max(np.std(a), 1e-3)
    assert abs(w.score - exact) <= w.error_bound
    assert w.error_bound < 0.05 * max(exact, 1.0)  # the bound is useful, not vacuous
    edges = reference.edges
    assert column_drift(reference, current, method="psi").score == pytest.approx(
        psi_exact(a, b, edges=edges), abs=TOL)
    assert column_drift(reference, current, method="jensenshannon").score == pytest.approx(
        jensenshannon_exact(a, b, edges=edges), abs=TOL)


def test_wasserstein_bound_holds_with_zeros_and_values_beyond_the_sketch_range() -> None:
    rng = np.random.default_rng(11)
    a = np.concatenate([rng.normal(0, 1, 1000), np.zeros(50), [1e-13, 5e12, 3e13]])
    b = np.concatenate([rng.normal(0.3, 1, 1000), np.zeros(10), [4e13]])
    ref = profile_table(pa.table({"x": a}))
    cur = profile_table(pa.table({"x": b}), reference=ref)
    w = column_drift(ref.columns["x"], cur.columns["x"], method="wasserstein")
    exact = stats.wasserstein_distance(a, b) / np.std(a)
    assert abs(w.score - exact) <= w.error_bound


def _drift(reference: dict, current: dict) -> dict[str, bool]:
    ref = profile_table(pa.table(reference))
    cur = profile_table(pa.table(current), reference=ref)
    return {c.column: c.drifted for c in dataset_drift(ref, cur).columns}


@pytest.mark.parametrize("n", [800, 5000])  # ks/chisquare below 1000 rows, distances above
def test_known_shifts_are_found_and_unshifted_columns_are_not(n: int) -> None:
    rng = np.random.default_rng(8)
    reference = {"same": rng.normal(0, 1, n), "mean": rng.normal(0, 1, n),
                 "variance": rng.normal(0, 1, n),
                 "category": rng.choice(["a", "b", "c"], n), "stable": rng.choice(["a", "b", "c"], n)}
    current = {"same": rng.normal(0, 1, n), "mean": rng.normal(1.0, 1, n),
               "variance": rng.normal(0, 3, n),
               "category": rng.choice(["a", "b", "c", "new"], n), "stable": rng.choice(["a", "b", "c"], n)}
    assert _drift(reference, current) == {"same": False, "mean": True, "variance": True,
                                          "category": True, "stable": False}


def test_a_label_flip_shows_as_drift_of_the_label_column() -> None:
    rng = np.random.default_rng(8)
    labels = rng.choice(["fraud", "ok"], 900, p=[0.1, 0.9])
    flipped = np.where(labels == "fraud", "ok", "fraud")
    ref = profile_table(pa.table({"label": labels}), roles={"label": "label"})
    cur = profile_table(pa.table({"label": flipped}), roles={"label": "label"}, reference=ref)
    assert dataset_drift(ref, cur, columns=["label"]).columns[0].drifted
    assert dataset_drift(ref, cur).columns == []  # labels are not compared unless asked


@pytest.mark.parametrize(("kind", "method"), [("numeric", "ks"), ("categorical", "chisquare"),
                                              ("numeric", "wasserstein"), ("numeric", "psi"),
                                              ("numeric", "jensenshannon")])
def test_false_alarm_rate_on_unshifted_data(kind: str, method: str) -> None:
    """200 seeded trials of same-distribution samples. The p-value tests alarm at about 5%
    (binomial 200 x 0.05: at most 20 alarms at 3.4 sigma); the distances at their thresholds
    almost never alarm at these sizes. Chi-squared tests the current counts against the
    reference's shares as if they were exact, so its nominal rate holds for a large reference
    (docs/monitor.md); KS is a two-sample test and holds for equal sizes."""
    alarms = 0
    n = 500 if method in ("ks", "chisquare") else 2000
    for trial in range(200):
        rng = np.random.default_rng(1000 + trial)
        if kind == "numeric":
            a, b = rng.normal(0, 1, n), rng.normal(0, 1, n)
        else:
            a, b = rng.choice(list("abcde"), 40 * n), rng.choice(list("abcde"), n)
        ref = profile_table(pa.table({"x": a}))
        cur = profile_table(pa.table({"x": b}), reference=ref)
        alarms += column_drift(ref.columns["x"], cur.columns["x"], method=method).drifted
    if method in ("ks", "chisquare"):
        assert 1 <= alarms <= 20
    else:
        assert alarms <= 2


def test_dataset_drift_share_and_thresholds() -> None:
    rng = np.random.default_rng(9)
    ref = profile_table(pa.table({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500)}))
    cur = profile_table(pa.table({"a": rng.normal(2, 1, 500), "b": rng.normal(0, 1, 500)}),
                        reference=ref)
    result = dataset_drift(ref, cur)
    assert (result.drifted_columns, result.share, result.drifted) == (1, 0.5, True)
    assert not dataset_drift(ref, cur, drift_share=0.75).drifted
    strict = dataset_drift(ref, cur, methods={"a": "wasserstein", "b": "wasserstein"},
                           thresholds={"wasserstein": 100.0})
    assert strict.drifted_columns == 0 and strict.columns[0].threshold == 100.0
    assert result.to_dict()["columns"][0]["method"] == "ks"
    assert DEFAULT_THRESHOLDS["ks"] == 0.05


def test_wasserstein_norm_is_the_population_std_with_a_floor() -> None:
    ref = profile_table(pa.table({"x": [1.0, 3.0]})).columns["x"]
    assert wasserstein_norm(ref) == 1.0
    assert wasserstein_norm(profile_table(pa.table({"x": [2.0, 2.0]})).columns["x"]) == 1e-3


def test_bad_drift_requests_are_value_errors() -> None:
    ref = profile_table(pa.table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
    cur = profile_table(pa.table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "b"]}), reference=ref)
    with pytest.raises(ValueError, match="does not apply"):
        column_drift(ref.columns["c"], cur.columns["c"], method="ks")
    with pytest.raises(ValueError, match="unknown methods"):
        dataset_drift(ref, cur, thresholds={"t-test": 0.1})
    with pytest.raises(ValueError, match="not in both"):
        dataset_drift(ref, cur, columns=["nope"])
    with pytest.raises(ValueError, match="other histogram edges"):
        column_drift(ref.columns["x"], profile_table(pa.table({"x": [9.0, 8.0]})).columns["x"])
    with pytest.raises(ValueError, match="numeric in the reference"):
        column_drift(ref.columns["x"], cur.columns["c"])
    with pytest.raises(ValueError, match="no finite values"):
        ks_exact([np.nan], [1.0])


def test_an_empty_current_column_does_not_drift() -> None:
    ref = profile_table(pa.table({"x": [1.0, 2.0]}))
    cur = profile_table(pa.table({"x": pa.array([None], pa.float64())}), reference=ref)
    result = column_drift(ref.columns["x"], cur.columns["x"])
    assert not result.drifted and math.isnan(result.score)
