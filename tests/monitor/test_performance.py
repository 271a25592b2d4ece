"""Live performance metrics agree with scikit-learn's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics

from cairn.monitor.performance import classification_metrics, regression_metrics


@pytest.mark.parametrize("seed", range(4))
def test_binary_metrics_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 500)
    score = np.round(np.clip(truth * 0.3 + rng.random(500) * 0.8, 0, 1), 2)  # ties on purpose
    predicted = (score > 0.5).astype(int)
    result = classification_metrics(truth, predicted, score)
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted), abs=1e-12)
    assert result["precision"] == pytest.approx(metrics.precision_score(truth, predicted), abs=1e-12)
    assert result["recall"] == pytest.approx(metrics.recall_score(truth, predicted), abs=1e-12)
    assert result["f1"] == pytest.approx(metrics.f1_score(truth, predicted), abs=1e-12)
    assert result["roc_auc"] == pytest.approx(metrics.roc_auc_score(truth, score), abs=1e-12)


def test_multiclass_metrics_are_macro_averages_like_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    truth = rng.choice(["cat", "dog", "fox"], 400)
    predicted = np.where(rng.random(400) < 0.7, truth, rng.choice(["cat", "dog", "fox", "owl"], 400))
    result = classification_metrics(truth, predicted)
    for name, function in (("precision", metrics.precision_score), ("recall", metrics.recall_score),
                           ("f1", metrics.f1_score)):
        expected = function(truth, predicted, average="macro", zero_division=0)
        assert result[name] == pytest.approx(expected, abs=1e-12), name
    assert math.isnan(result["roc_auc"])


def test_a_label_flip_drops_accuracy_to_zero_and_auc_to_zero() -> None:
    truth = np.array([0, 1, 1, 0, 1])
    result = classification_metrics(truth, 1 - truth, y_score=1.0 - truth)
    assert result["accuracy"] == 0.0 and result["f1"] == 0.0 and result["roc_auc"] == 0.0


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(6)
    truth, predicted = rng.normal(size=300), rng.normal(size=300)
    result = regression_metrics(truth, predicted)
    assert result["mae"] == pytest.approx(metrics.mean_absolute_error(truth, predicted), abs=1e-12)
    assert result["rmse"] == pytest.approx(
        math.sqrt(metrics.mean_squared_error(truth, predicted)), abs=1e-12)


def test_bad_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="y_true has 2 labels and y_pred 1"):
        classification_metrics([0, 1], [0])
    with pytest.raises(ValueError, match="no labels"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match="y_score"):
        classification_metrics([0, 1], [0, 1], [0.5])
    with pytest.raises(ValueError, match="1-D"):
        regression_metrics([1.0, 2.0], [1.0])
