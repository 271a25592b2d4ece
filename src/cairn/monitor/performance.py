"""Live performance once labels arrive: classification and regression metrics of a window.

Written with numpy (no scikit-learn at run time); scikit-learn is the oracle in the tests.
Conventions follow scikit-learn's defaults: binary metrics score the class 1 (or True) when the
labels are a subset of {0, 1}, otherwise precision/recall/F1 are macro averages over the union
of classes; a ratio with a zero denominator is 0.0 (scikit-learn's zero_division default).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata


def _labels(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    return array


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _is_binary(classes: np.ndarray) -> bool:
    if classes.dtype.kind == "b":
        return True
    if classes.dtype.kind not in "iuf":
        return False
    return bool(np.isin(classes, [0, 1]).all())


def _prf(y_true: np.ndarray, y_pred: np.ndarray, positive: Any) -> tuple[float, float, float]:
    tp = float(np.sum((y_pred == positive) & (y_true == positive)))
    predicted = float(np.sum(y_pred == positive))
    actual = float(np.sum(y_true == positive))
    precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
    return precision, recall, _ratio(2 * tp, predicted + actual)


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve of binary labels (1/True positive) by the rank-sum formula, ties
    at half weight; nan when only one class is present."""
    truth = _labels(y_true, "y_true").astype(bool)
    score = np.asarray(y_score, dtype=np.float64)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rankdata(score)  # average ranks for ties
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def classification_metrics(y_true: Any, y_pred: Any, y_score: Any = None) -> dict[str, float]:
    """accuracy, precision, recall, f1 (binary for {0, 1} labels, else macro), and roc_auc
    (binary, from ``y_score``, the positive class's score; nan when not computable)."""
    truth, predicted = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if truth.size != predicted.size:
        raise ValueError(f"y_true has {truth.size} labels and y_pred {predicted.size}")
    if truth.size == 0:
        raise ValueError("no labels: classification metrics need at least one labelled sample")
    classes = np.union1d(truth, predicted)
    binary = _is_binary(classes)
    if binary:
        precision, recall, f1 = _prf(truth, predicted, 1)
    else:
        per_class = np.array([_prf(truth, predicted, c) for c in classes])
        precision, recall, f1 = (float(v) for v in per_class.mean(axis=0))
    result = {"accuracy": float(np.mean(truth == predicted)), "precision": precision,
              "recall": recall, "f1": f1, "roc_auc": math.nan}
    if y_score is not None:
        score = np.asarray(y_score, dtype=np.float64)
        if score.shape != truth.shape:
            raise ValueError(f"y_score must hold one score per label ({truth.size}), "
                             f"got shape {score.shape}")
        if binary:
            result["roc_auc"] = roc_auc(truth, score)
    return result


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Mean absolute error and root mean squared error."""
    truth = np.asarray(y_true, dtype=np.float64)
    predicted = np.asarray(y_pred, dtype=np.float64)
    if truth.shape != predicted.shape or truth.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, got {truth.shape} "
                         f"and {predicted.shape}")
    if truth.size == 0:
        raise ValueError("no labels: regression metrics need at least one labelled sample")
    error = predicted - truth
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(math.sqrt(np.mean(error ** 2)))}
