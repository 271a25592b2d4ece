"""Per-column profiles: what a profile keeps of one column, how two merge, and their JSON form.

A numeric column keeps exact moments (count, mean, m2 by Chan's merge), a log-bucket quantile
sketch (relative accuracy ``SKETCH_ALPHA``) and a fixed-edge histogram; a categorical column keeps
the ``TOP_K`` most frequent values and folds the rest into ``other``. Both merge by addition, so
the profile of a table is the merge of the profiles of its parts (docs/monitor.md, "Profiles").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cairn.core.profile import SKETCH_ALPHA, SKETCH_MAX_INDEX, SKETCH_MIN, sketch_gamma

__all__ = ["GAMMA", "SKETCH_ALPHA", "SKETCH_MAX_INDEX", "SKETCH_MIN", "TOP_K", "CategoricalProfile",
           "NumericProfile", "representative", "upper_boundary"]

TOP_K = 1000
GAMMA = sketch_gamma(SKETCH_ALPHA)


def _ints(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"{what} must be a list of integers")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError(f"{what} must not hold negative counts")
    return array


def _float(value: Any, what: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number or null, got {value!r}")
    return float(value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _add_dense(offset_a: int, a: np.ndarray, offset_b: int, b: np.ndarray) -> tuple[int, np.ndarray]:
    """Sum of two dense bucket arrays that may start at different indices."""
    if a.size == 0:
        return offset_b, b.copy()
    if b.size == 0:
        return offset_a, a.copy()
    low = min(offset_a, offset_b)
    high = max(offset_a + a.size, offset_b + b.size)
    total = np.zeros(high - low, dtype=np.int64)
    total[offset_a - low: offset_a - low + a.size] += a
    total[offset_b - low: offset_b - low + b.size] += b
    return low, total


@dataclass(eq=False)
class NumericProfile:
    """Moments, sketch and histogram of a numeric column (missing = null, NaN or +-inf)."""

    count: int
    missing: int
    min: float
    max: float
    mean: float
    m2: float
    zero: int
    pos_offset: int
    pos: np.ndarray
    neg_offset: int
    neg: np.ndarray
    edges: np.ndarray
    hist: np.ndarray
    kind: str = field(default="numeric", init=False)

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); nan below two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1)."""
        return math.sqrt(self.variance)

    def buckets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sketch in value order: (order key, representative value, count) per non-empty
        bucket. Keys of two sketches with the same gamma name the same value ranges."""
        shift = SKETCH_MAX_INDEX + 3
        neg_k = self.neg_offset + np.arange(self.neg.size)
        pos_k = self.pos_offset + np.arange(self.pos.size)
        keys = np.concatenate([-(neg_k[::-1] + shift), [0], pos_k + shift])
        reps = np.concatenate([-representative(neg_k[::-1]), [0.0], representative(pos_k)])
        counts = np.concatenate([self.neg[::-1], [self.zero], self.pos])
        keep = counts > 0
        return keys[keep], reps[keep], counts[keep]

    def quantile(self, q: float) -> float:
        """The q-quantile from the sketch, within relative SKETCH_ALPHA of a true order statistic
        (the lower one at rank q*(count-1)); nan when the column is empty."""
        return self.quantiles([q])[0]

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """``quantile`` for several q at once (the sketch is walked once)."""
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError(f"quantile q must be in [0, 1], got {list(qs)}")
        if self.count == 0:
            return [math.nan] * len(qs)
        _, reps, counts = self.buckets()
        ranks = np.asarray(qs, dtype=np.float64) * (self.count - 1)
        index = np.minimum(np.searchsorted(np.cumsum(counts), ranks, side="right"), reps.size - 1)
        return [float(min(max(v, self.min), self.max)) for v in reps[index]]

    def cdf(self, x: float) -> float:
        """Share of values <= x as the sketch sees them (each value at its bucket's representative)."""
        if self.count == 0:
            return math.nan
        _, reps, counts = self.buckets()
        return float(counts[reps <= x].sum() / self.count)

    def merge(self, other: NumericProfile) -> NumericProfile:
        """Chan's parallel update for mean/m2, bucket and histogram addition (edges must match)."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("numeric profiles have different histogram edges; profile the second "
                             "table with reference=<the first profile> so that they share edges")
        n = self.count + other.count
        if n == 0:
            mean, m2 = 0.0, 0.0
        else:
            delta = other.mean - self.mean
            mean = self.mean + delta * other.count / n
            m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
        pos_offset, pos = _add_dense(self.pos_offset, self.pos, other.pos_offset, other.pos)
        neg_offset, neg = _add_dense(self.neg_offset, self.neg, other.neg_offset, other.neg)
        return NumericProfile(
            count=n, missing=self.missing + other.missing,
            min=float(np.fmin(self.min, other.min)), max=float(np.fmax(self.max, other.max)),
            mean=mean, m2=m2, zero=self.zero + other.zero, pos_offset=pos_offset, pos=pos,
            neg_offset=neg_offset, neg=neg, edges=self.edges.copy(), hist=self.hist + other.hist)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "numeric", "count": self.count, "missing": self.missing,
                "min": _json_float(self.min), "max": _json_float(self.max),
                "mean": _json_float(self.mean), "m2": _json_float(self.m2), "zero": self.zero,
                "pos_offset": self.pos_offset, "pos": self.pos.tolist(),
                "neg_offset": self.neg_offset, "neg": self.neg.tolist(),
                "edges": [float(e) for e in self.edges], "hist": self.hist.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str) -> NumericProfile:
        where = f"column {name!r}"
        edges = np.asarray([_float(e, f"{where}: edges") for e in data.get("edges", [])],
                           dtype=np.float64)
        if edges.size and (not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0)):
            raise ValueError(f"{where}: edges must be finite and strictly increasing")
        profile = cls(
            count=_int(data.get("count"), f"{where}: count"),
            missing=_int(data.get("missing"), f"{where}: missing"),
            min=_float(data.get("min"), f"{where}: min"), max=_float(data.get("max"), f"{where}: max"),
            mean=_float(data.get("mean"), f"{where}: mean"), m2=_float(data.get("m2"), f"{where}: m2"),
            zero=_int(data.get("zero"), f"{where}: zero"),
            pos_offset=_offset(data.get("pos_offset"), f"{where}: pos_offset"),
            pos=_ints(data.get("pos", []), f"{where}: pos"),
            neg_offset=_offset(data.get("neg_offset"), f"{where}: neg_offset"),
            neg=_ints(data.get("neg", []), f"{where}: neg"),
            edges=edges, hist=_ints(data.get("hist", []), f"{where}: hist"))
        if profile.hist.size != edges.size + 1:
            raise ValueError(f"{where}: hist needs len(edges) + 1 = {edges.size + 1} counts, "
                             f"got {profile.hist.size}")
        if int(profile.hist.sum()) != profile.count:
            raise ValueError(f"{where}: hist counts sum to {int(profile.hist.sum())}, "
                             f"count is {profile.count}")
        if int(profile.pos.sum() + profile.neg.sum()) + profile.zero != profile.count:
            raise ValueError(f"{where}: sketch counts (pos + neg + zero) do not sum to count")
        return profile

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericProfile) and self.to_dict() == other.to_dict()


def _offset(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return value


def representative(k: np.ndarray) -> np.ndarray:
    """The value that stands for bucket k, 2*gamma**k/(gamma+1): within relative SKETCH_ALPHA
    of every value in (gamma**(k-1), gamma**k]."""
    return 2.0 * upper_boundary(k) / (GAMMA + 1.0)


# gamma**k for every index the core can produce, computed once with Python's pow (the buckets'
# definition): computing it per call, per bucket, was most of a drift report's time.
_LOWEST = -SKETCH_MAX_INDEX - 2
_POWERS = np.array([GAMMA ** k for k in range(_LOWEST, SKETCH_MAX_INDEX + 3)], dtype=np.float64)


def upper_boundary(k: np.ndarray) -> np.ndarray:
    """gamma**k per bucket index, as Python's pow computes it (the bucket's definition)."""
    index = np.asarray(k, dtype=np.int64) - _LOWEST
    if index.size and (index.min() < 0 or index.max() >= _POWERS.size):  # not from the core
        return np.array([GAMMA ** int(i) for i in np.asarray(k)], dtype=np.float64)
    return _POWERS[index]


@dataclass(eq=False)
class CategoricalProfile:
    """Value frequencies of a categorical column: at most TOP_K values, the rest in ``other``."""

    count: int
    missing: int
    counts: dict[str, int]
    other: int = 0
    kind: str = field(default="categorical", init=False)

    @classmethod
    def from_counts(cls, counts: dict[str, int], missing: int, other: int = 0) -> CategoricalProfile:
        """Keep the TOP_K most frequent values (ties by value, so the cut is deterministic)."""
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = dict(ranked[:TOP_K])
        folded = sum(c for _, c in ranked[TOP_K:])
        return cls(count=sum(counts.values()) + other, missing=missing, counts=kept,
                   other=other + folded)

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        """Counts add, then re-truncate to TOP_K. Approximate once either side was truncated: a
        value folded into one side's ``other`` cannot be credited back to that value."""
        total = dict(self.counts)
        for value, n in other.counts.items():
            total[value] = total.get(value, 0) + n
        return CategoricalProfile.from_counts(total, self.missing + other.missing,
                                              self.other + other.other)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "count": self.count, "missing": self.missing,
                "counts": dict(self.counts), "other": self.other}

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str) -> CategoricalProfile:
        where = f"column {name!r}"
        counts = data.get("counts")
        if not isinstance(counts, dict):
            raise ValueError(f"{where}: counts must be an object of value -> count")
        if len(counts) > TOP_K:
            raise ValueError(f"{where}: at most {TOP_K} counted values, got {len(counts)}")
        checked = {str(v): _int(n, f"{where}: counts[{v!r}]") for v, n in counts.items()}
        profile = cls(count=_int(data.get("count"), f"{where}: count"),
                      missing=_int(data.get("missing"), f"{where}: missing"),
                      counts=checked, other=_int(data.get("other", 0), f"{where}: other"))
        if sum(checked.values()) + profile.other != profile.count:
            raise ValueError(f"{where}: counts plus other do not sum to count {profile.count}")
        return profile

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalProfile) and self.to_dict() == other.to_dict()

