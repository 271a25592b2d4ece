"""The serving benchmark's model, built the same way on both sides.

Imported by bench_serving.py (Cairn's venv) and by the script it runs in MLflow's side venv, so
both servers answer with the same forest: a 100-tree RandomForestClassifier on 20 features with
fixed seeds (same scikit-learn version in both venvs, so the same trees). Needs only numpy,
pandas and scikit-learn.
"""

from __future__ import annotations

from typing import Any

SEED = 7
FEATURES = 20
COLUMNS = [f"f{i}" for i in range(FEATURES)]


def make_model() -> tuple[Any, Any]:
    """(fitted model, feature DataFrame it was trained on)."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=5000, n_features=FEATURES, n_informative=10, random_state=SEED)
    frame = pd.DataFrame(x, columns=COLUMNS)
    model = RandomForestClassifier(n_estimators=100, random_state=SEED, n_jobs=1).fit(frame, y)
    return model, frame


def body_rows(frame: Any, rows: int) -> dict[str, Any]:
    """An MLflow ``dataframe_split`` body with the first ``rows`` rows."""
    part = frame.iloc[:rows]
    return {"dataframe_split": {"columns": list(part.columns), "data": part.to_numpy().tolist()}}
