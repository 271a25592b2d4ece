"""The drift statistics themselves, on exact inputs (raw arrays, counts) and on sketches.

Written here rather than called from scipy so that the monitor computes them from profiles
(sketches and histograms) without the rows; scipy is the oracle in the tests and supplies only
the Kolmogorov distribution for p-values. Formulas and error bounds: docs/monitor.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special, stats

from cairn.monitor.columns import GAMMA, SKETCH_ALPHA, SKETCH_MIN, NumericProfile, upper_boundary

PSI_EPSILON = 1e-4  # share given to a bin that is empty on one side, so PSI stays finite
NEW_CATEGORY_SHARE = 1e-4  # expected share of a category the reference never saw (chi-squared)
NORM_FLOOR = 1e-3  # Evidently's floor for the Wasserstein norm (the reference std)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sided asymptotic p-value (scipy's ks_2samp method="asymp"): the one-sample Kolmogorov
    distribution at the effective size round(n*m/(n+m))."""
    big, small = max(n, m), min(n, m)
    effective = float(np.round(big * small / (big + small)))
    return float(np.clip(stats.kstwo.sf(statistic, effective), 0.0, 1.0))


def _finite(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"{what} has no finite values")
    return array


def ks_exact(reference: Any, current: Any) -> tuple[float, float]:
    """(statistic, asymptotic p-value) of the two-sample KS test on raw values."""
    a, b = np.sort(_finite(reference, "reference")), np.sort(_finite(current, "current"))
    points = np.concatenate([a, b])
    gap = np.searchsorted(a, points, side="right") / a.size - \
        np.searchsorted(b, points, side="right") / b.size
    statistic = float(np.max(np.abs(gap)))
    return statistic, ks_p_value(statistic, a.size, b.size)


def wasserstein_exact(reference: Any, current: Any, *, weights: tuple[Any, Any] | None = None) -> float:
    """Wasserstein-1 distance, the area between the two CDFs (scipy's wasserstein_distance)."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    wa = np.ones(a.size) if weights is None else np.asarray(weights[0], dtype=np.float64)
    wb = np.ones(b.size) if weights is None else np.asarray(weights[1], dtype=np.float64)
    order_a, order_b = np.argsort(a), np.argsort(b)
    a, wa, b, wb = a[order_a], wa[order_a], b[order_b], wb[order_b]
    points = np.sort(np.concatenate([a, b]))
    widths = np.diff(points)
    cdf_a = np.concatenate([[0.0], np.cumsum(wa)])[np.searchsorted(a, points[:-1], "right")] / wa.sum()
    cdf_b = np.concatenate([[0.0], np.cumsum(wb)])[np.searchsorted(b, points[:-1], "right")] / wb.sum()
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def psi_counts(reference: Any, current: Any, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two count vectors over the same bins:
    sum((c - r) * ln(c / r)) over shares, an empty bin's share replaced by ``epsilon``."""
    r, c = _shares(reference), _shares(current)
    r, c = np.where(r == 0, epsilon, r), np.where(c == 0, epsilon, c)
    return float(np.sum((c - r) * np.log(c / r)))


def jensenshannon_counts(reference: Any, current: Any) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors over the same bins."""
    p, q = _shares(reference), _shares(current)
    m = (p + q) / 2.0
    divergence = (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))) / 2.0
    return float(math.sqrt(max(divergence, 0.0) / math.log(2.0)))


def chisquare_counts(observed: Any, expected_shares: Any) -> tuple[float, float]:
    """Pearson's chi-squared goodness of fit of observed counts to expected shares
    (scipy's chisquare with f_exp = shares * total); p-value from the chi2 distribution."""
    obs = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected_shares, dtype=np.float64)
    expected = expected / expected.sum() * obs.sum()
    statistic = float(np.sum((obs - expected) ** 2 / expected))
    dof = obs.size - 1
    if dof < 1:
        return statistic, 1.0
    return statistic, float(stats.chi2.sf(statistic, dof))


def _shares(counts: Any) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    if total <= 0:
        raise ValueError("a distribution with no values has no shares")
    return array / total


def categorical_bins(reference: dict[str, int], reference_other: int, current: dict[str, int],
                     current_other: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aligned (reference counts, current counts, expected shares) over the union of categories.

    A current value the reference did not count goes to the reference's "other" bin when the
    reference has one (it may be among the values folded there), else it is a new category,
    expected with share NEW_CATEGORY_SHARE, so that it shows as drift instead of dividing by 0.
    """
    keys = sorted(reference)
    cur_other = current_other
    new: dict[str, int] = {}
    for key, n in current.items():
        if key in reference:
            continue
        if reference_other > 0:
            cur_other += n
        else:
            new[key] = n
    ref = np.array([reference[k] for k in keys] + [0] * len(new) + [reference_other], float)
    cur = np.array([current.get(k, 0) for k in keys] + [new[k] for k in sorted(new)] + [cur_other],
                   float)
    if reference_other == 0 and cur_other == 0:
        ref, cur = ref[:-1], cur[:-1]
    shares = ref / ref.sum()
    if new:
        shares = np.where(ref == 0, NEW_CATEGORY_SHARE, shares)
        shares = shares / shares.sum()
    return ref, cur, shares


# --- sketches -----------------------------------------------------------------------------


def _aligned(reference: NumericProfile, current: NumericProfile) -> tuple[np.ndarray, ...]:
    """Bucket counts of both sketches over the union of their buckets, in value order."""
    keys_r, reps_r, counts_r = reference.buckets()
    keys_c, reps_c, counts_c = current.buckets()
    keys = np.union1d(keys_r, keys_c)
    ref = np.zeros(keys.size)
    cur = np.zeros(keys.size)
    ref[np.searchsorted(keys, keys_r)] = counts_r
    cur[np.searchsorted(keys, keys_c)] = counts_c
    reps = np.zeros(keys.size)
    reps[np.searchsorted(keys, keys_r)] = reps_r
    reps[np.searchsorted(keys, keys_c)] = reps_c
    return keys, reps, ref, cur


def ks_sketch(reference: NumericProfile, current: NumericProfile,
              p_value: bool = True) -> tuple[float, float, float]:
    """(statistic, p-value, error bound) from two sketches. The CDFs are exact between buckets,
    so the sketch's statistic is at most the true one and the true one exceeds it by at most the
    largest single-bucket mass of either sketch (the bound). ``p_value=False`` gives nan for the
    p-value (scipy's Kolmogorov distribution costs ~1.6 ms a column)."""
    _, _, ref, cur = _aligned(reference, current)
    gap = np.cumsum(ref) / reference.count - np.cumsum(cur) / current.count
    statistic = float(np.max(np.abs(gap)))
    bound = float(max(ref.max() / reference.count, cur.max() / current.count))
    p = ks_p_value(statistic, reference.count, current.count) if p_value else math.nan
    return statistic, p, bound


def _representation_error(profile: NumericProfile) -> float:
    """E|X - r(X)|, bounded: alpha * gamma**k per value in bucket k (the bucket's half-width in
    relative terms), SKETCH_MIN per value counted as zero, and for the clamped last bucket the
    distance to the column's extreme value."""
    total = profile.zero * SKETCH_MIN
    for offset, counts, extreme in ((profile.pos_offset, profile.pos, abs(profile.max)),
                                    (profile.neg_offset, profile.neg, abs(profile.min))):
        if counts.size == 0:
            continue
        upper = upper_boundary(offset + np.arange(counts.size))
        total += float(np.sum(counts * SKETCH_ALPHA * upper))
        last_rep = 2.0 * upper[-1] / (GAMMA + 1.0)
        if math.isfinite(extreme) and extreme > upper[-1]:  # clamped values beyond the last bucket
            total += float(counts[-1]) * (extreme - last_rep)
    return total / profile.count


def wasserstein_sketch(reference: NumericProfile, current: NumericProfile) -> tuple[float, float]:
    """(Wasserstein-1 normed by the reference std, error bound of that normed value)."""
    _, reps, ref, cur = _aligned(reference, current)
    cdf_gap = np.abs(np.cumsum(ref)[:-1] / reference.count - np.cumsum(cur)[:-1] / current.count)
    distance = float(np.sum(cdf_gap * np.diff(reps)))
    norm = wasserstein_norm(reference)
    bound = _representation_error(reference) + _representation_error(current)
    return distance / norm, bound / norm


def wasserstein_norm(reference: NumericProfile) -> float:
    """Evidently's norm: the reference's population std (ddof=0), at least NORM_FLOOR."""
    return max(math.sqrt(reference.m2 / reference.count), NORM_FLOOR) if reference.count else 1.0


# --- exact functions on raw arrays (what the sketches are checked against) -----------------


def _value_counts(values: Any) -> dict[str, int]:
    keys, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return {str(k): int(n) for k, n in zip(keys, counts)}


def binned_counts(reference: Any, current: Any,
                  edges: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both samples on the same bins: the histogram [x < e0], [e0, e1), ...,
    [x >= e_last] when ``edges`` is given, else one bin per distinct value (categories)."""
    if edges is None:
        ref, cur, _ = categorical_bins(_value_counts(reference), 0, _value_counts(current), 0)
        return ref, cur
    cut = np.asarray(edges, dtype=np.float64)
    a, b = _finite(reference, "reference"), _finite(current, "current")
    return (np.bincount(np.searchsorted(cut, a, side="right"), minlength=cut.size + 1),
            np.bincount(np.searchsorted(cut, b, side="right"), minlength=cut.size + 1))


def psi_exact(reference: Any, current: Any, *, edges: Any | None = None) -> float:
    """PSI of two raw samples on ``edges`` (or per category when edges is None)."""
    return psi_counts(*binned_counts(reference, current, edges))


def jensenshannon_exact(reference: Any, current: Any, *, edges: Any | None = None) -> float:
    """Jensen-Shannon distance (base 2) of two raw samples on ``edges`` (or per category)."""
    return jensenshannon_counts(*binned_counts(reference, current, edges))


def chisquare_exact(reference: Any, current: Any) -> tuple[float, float]:
    """(statistic, p-value) of the current values' counts against the reference's shares."""
    _, cur, shares = categorical_bins(_value_counts(reference), 0, _value_counts(current), 0)
    return chisquare_counts(cur, shares)
