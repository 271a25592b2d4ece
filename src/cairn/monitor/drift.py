"""Drift between a reference profile and a current one, per column and for the dataset.

Methods, defaults and thresholds follow Evidently's rules so that the decisions agree with it
(tests/monitor/test_evidently_oracle.py); what each score means and how far a sketch-based
score can be from the exact one is in docs/monitor.md ("Drift methods and thresholds").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cairn.monitor.columns import CategoricalProfile, NumericProfile
from cairn.monitor.profile import Profile
from cairn.monitor.stats import (
    categorical_bins,
    chisquare_counts,
    chisquare_exact,
    jensenshannon_counts,
    jensenshannon_exact,
    ks_exact,
    ks_sketch,
    psi_counts,
    psi_exact,
    wasserstein_exact,
    wasserstein_sketch,
)

__all__ = ["DEFAULT_THRESHOLDS", "ColumnDrift", "DatasetDrift", "chisquare_exact", "column_drift",
           "dataset_drift", "jensenshannon_exact", "ks_exact", "psi_exact", "wasserstein_exact"]

DEFAULT_THRESHOLDS: dict[str, float] = {"ks": 0.05, "chisquare": 0.05,  # p-value below: drift
                                        "wasserstein": 0.1, "psi": 0.1, "jensenshannon": 0.1}
NUMERIC_METHODS = ("ks", "wasserstein", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("chisquare", "psi", "jensenshannon")
SMALL_REFERENCE = 1000  # Evidently: at most this many reference values -> a statistical test


@dataclass
class ColumnDrift:
    """One column's drift: the deciding method's score against its threshold, every method's
    score in ``scores``, and for sketch-based scores the bound on their error."""

    column: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool
    p_value: float | None
    error_bound: float | None
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class DatasetDrift:
    """Per-column drift and the dataset's verdict: drifted when share >= drift_share."""

    columns: list[ColumnDrift]
    drifted_columns: int
    share: float
    drift_share: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN scores become None)."""
        def clean(value: Any) -> Any:
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value
        return {"columns": [{k: clean(v) for k, v in asdict(c).items()} for c in self.columns],
                "drifted_columns": self.drifted_columns, "share": self.share,
                "drift_share": self.drift_share, "drifted": self.drifted}


def default_method(reference: NumericProfile | CategoricalProfile) -> str:
    """Evidently's rule: a test with p-value for small references, a distance for large ones."""
    small = reference.count <= SMALL_REFERENCE
    if isinstance(reference, NumericProfile):
        return "ks" if small else "wasserstein"
    return "chisquare" if small else "jensenshannon"


def _numeric_scores(reference: NumericProfile, current: NumericProfile, method: str) -> tuple[dict, dict]:
    """Every method's score; the KS p-value only when KS decides (it is the one slow score)."""
    statistic, p_value, ks_bound = ks_sketch(reference, current, p_value=method == "ks")
    wasserstein, w_bound = wasserstein_sketch(reference, current)
    scores = {"ks_statistic": statistic, "wasserstein": wasserstein,
              "psi": psi_counts(reference.hist, current.hist),
              "jensenshannon": jensenshannon_counts(reference.hist, current.hist)}
    if method == "ks":
        scores["ks_p_value"] = p_value
    return scores, {"ks": ks_bound, "wasserstein": w_bound}


def _categorical_scores(reference: CategoricalProfile, current: CategoricalProfile) -> tuple[dict, dict]:
    ref, cur, shares = categorical_bins(reference.counts, reference.other, current.counts,
                                        current.other)
    statistic, p_value = chisquare_counts(cur, shares)
    scores = {"chisquare_statistic": statistic, "chisquare_p_value": p_value,
              "psi": psi_counts(ref, cur), "jensenshannon": jensenshannon_counts(ref, cur)}
    return scores, {}


def column_drift(reference: NumericProfile | CategoricalProfile,
                 current: NumericProfile | CategoricalProfile, *, method: str | None = None,
                 threshold: float | None = None, column: str = "") -> ColumnDrift:
    """Drift of one column. A column empty on either side cannot drift: score nan, not drifted."""
    if reference.kind != current.kind:
        raise ValueError(f"column {column!r} is {reference.kind} in the reference and "
                         f"{current.kind} in the current profile")
    allowed = NUMERIC_METHODS if reference.kind == "numeric" else CATEGORICAL_METHODS
    chosen = method or default_method(reference)
    if chosen not in allowed:
        raise ValueError(f"column {column!r}: method {chosen!r} does not apply to a "
                         f"{reference.kind} column; use one of {list(allowed)}")
    limit = DEFAULT_THRESHOLDS[chosen] if threshold is None else float(threshold)
    if not math.isfinite(limit) or limit < 0:
        raise ValueError(f"threshold for {chosen!r} must be a finite number >= 0, got {threshold!r}")
    if isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        if reference.edges.size != current.edges.size or (reference.edges != current.edges).any():
            raise ValueError(f"column {column!r}: the current profile has other histogram edges "
                             "than the reference; profile it with reference=<the reference>")
    if reference.count == 0 or current.count == 0:
        return ColumnDrift(column, reference.kind, chosen, math.nan, limit, False, None, None, {})
    if isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        scores, bounds = _numeric_scores(reference, current, chosen)
    else:
        scores, bounds = _categorical_scores(reference, current)  # type: ignore[arg-type]
    p_value: float | None = scores.get(f"{chosen}_p_value")
    if p_value is not None:
        score, drifted = p_value, bool(p_value < limit)
    else:
        score = scores[chosen]
        drifted = bool(score >= limit)
    return ColumnDrift(column=column, kind=reference.kind, method=chosen, score=score,
                       threshold=limit, drifted=drifted, p_value=p_value,
                       error_bound=bounds.get(chosen), scores=scores)


def dataset_drift(reference: Profile, current: Profile, *, methods: Mapping[str, str] | None = None,
                  thresholds: Mapping[str, float] | None = None, drift_share: float = 0.5,
                  columns: Sequence[str] | None = None) -> DatasetDrift:
    """Drift of each column (by default every feature and prediction column of the reference
    that the current profile has); ``methods`` per column, ``thresholds`` per method."""
    methods, thresholds = dict(methods or {}), dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise ValueError(f"thresholds for unknown methods {unknown}; methods are "
                         f"{sorted(DEFAULT_THRESHOLDS)}")
    if not 0.0 < drift_share <= 1.0:
        raise ValueError(f"drift_share must be in (0, 1], got {drift_share}")
    if columns is None:
        names = [n for n in reference.columns if n in current.columns
                 and reference.roles.get(n, "feature") in ("feature", "prediction")]
    else:
        names = list(columns)
        absent = [n for n in names if n not in reference.columns or n not in current.columns]
        if absent:
            raise ValueError(f"columns {absent} are not in both profiles")
    stray = sorted(set(methods) - set(names))
    if stray:
        raise ValueError(f"methods given for columns that are not compared: {stray}")
    results = []
    for name in names:
        method = methods.get(name)
        chosen = method or default_method(reference.columns[name])
        results.append(column_drift(reference.columns[name], current.columns[name], method=method,
                                    threshold=thresholds.get(chosen), column=name))
    drifted = sum(1 for r in results if r.drifted)
    share = drifted / len(results) if results else 0.0
    return DatasetDrift(columns=results, drifted_columns=drifted, share=share,
                        drift_share=drift_share, drifted=bool(results) and share >= drift_share)
