"""Evidently as a second oracle: on the same small tables, with the same methods and thresholds,
the per-column drift decisions agree (Evidently 0.7.23, `ValueDrift` per column, which picks its
default test by Evidently's rule: KS / chi-squared up to 1000 reference rows, Wasserstein
normed / Jensen-Shannon above)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cairn.monitor import profile_table
from cairn.monitor.drift import dataset_drift

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from evidently_peer import evidently_decisions  # noqa: E402

NUMERIC = ["same", "mean_shift", "variance", "skewed_same"]
CATEGORICAL = ["new_category", "stable", "reweighted"]


def _tables(seed: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cats = ["a", "b", "c", "d"]

    def draw(shift: bool) -> pd.DataFrame:
        return pd.DataFrame({
            "same": rng.normal(0, 1, n),
            "mean_shift": rng.normal(0.8 if shift else 0, 1, n),
            "variance": rng.normal(0, 2.5 if shift else 1, n),
            "skewed_same": rng.lognormal(1, 0.7, n),
            "new_category": rng.choice(cats + (["e"] if shift else []), n),
            "stable": rng.choice(cats, n),
            "reweighted": rng.choice(cats, n, p=[0.55, 0.15, 0.15, 0.15] if shift else None),
        })
    return draw(False), draw(True)


@pytest.mark.parametrize(("seed", "n"), [(1, 600), (5, 900), (3, 3000), (4, 5000)])
def test_per_column_drift_decisions_agree_with_evidently(seed: int, n: int) -> None:
    reference, current = _tables(seed, n)
    ref = profile_table(pa.Table.from_pandas(reference, preserve_index=False))
    cur = profile_table(pa.Table.from_pandas(current, preserve_index=False), reference=ref)
    ours = {c.column: (c.method, c.drifted) for c in dataset_drift(ref, cur).columns}
    theirs = evidently_decisions(reference, current, numerical=NUMERIC, categorical=CATEGORICAL)
    expected_methods = {"ks": "K-S p_value", "chisquare": "chi-square p_value",
                        "wasserstein": "Wasserstein distance (normed)",
                        "jensenshannon": "Jensen-Shannon distance"}
    for column in NUMERIC + CATEGORICAL:
        method, drifted = ours[column]
        assert theirs[column][0] == expected_methods[method], column
        assert drifted == theirs[column][1], (column, method)
    assert {c for c, (_, d) in ours.items() if d} == {"mean_shift", "variance", "new_category",
                                                      "reweighted"}
