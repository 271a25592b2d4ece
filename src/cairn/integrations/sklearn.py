"""scikit-learn: after ``fit``, the estimator's params, its training metrics and the fitted model
(with its signature, from an input example) on a run.

scikit-learn has no callbacks, so the explicit form is one call after ``fit``::

    model.fit(X, y)
    cairn.integrations.sklearn.log_fit(run, model, X, y)

``cairn.autolog(["sklearn"])`` wraps every estimator's ``fit`` to do the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cairn.integrations.recorder import Recorder, require

if TYPE_CHECKING:
    from cairn.sdk.run import ActiveRun

INTEGRATION = "sklearn"


def training_metrics(estimator: Any, X: Any, y: Any, sample_weight: Any = None) -> dict[str, float]:
    """What MLflow users expect on a run after ``fit``: the estimator's own ``score`` and, by
    kind, accuracy/F1/log loss (classifiers) or MSE/MAE/R² (regressors) on the training data."""
    metrics_mod = require(INTEGRATION, "sklearn.metrics", "scikit-learn")
    base = require(INTEGRATION, "sklearn.base", "scikit-learn")
    out: dict[str, float] = {}
    if y is None:
        return out
    kw = {"sample_weight": sample_weight} if sample_weight is not None else {}
    predicted = estimator.predict(X)
    if base.is_classifier(estimator):
        out["training_accuracy_score"] = float(metrics_mod.accuracy_score(y, predicted, **kw))
        out["training_f1_score"] = float(metrics_mod.f1_score(y, predicted, average="weighted", **kw))
        if hasattr(estimator, "predict_proba"):
            try:
                out["training_log_loss"] = float(metrics_mod.log_loss(y, estimator.predict_proba(X), **kw))
            except (ValueError, AttributeError):  # e.g. SVC without probability=True
                pass
    elif base.is_regressor(estimator):
        out["training_mean_squared_error"] = float(metrics_mod.mean_squared_error(y, predicted, **kw))
        out["training_mean_absolute_error"] = float(metrics_mod.mean_absolute_error(y, predicted, **kw))
        out["training_r2_score"] = float(metrics_mod.r2_score(y, predicted, **kw))
    try:
        out["training_score"] = float(estimator.score(X, y, **kw))
    except (TypeError, AttributeError, ValueError):
        pass
    return out


def _example(X: Any, rows: int = 5) -> Any:
    """The first rows of the training input, as the model's input example (and so its signature)."""
    head = getattr(X, "iloc", None)
    return head[:rows] if head is not None else X[:rows]


def log_fit(run: ActiveRun | None, estimator: Any, X: Any, y: Any = None, *, sample_weight: Any = None,
            recorder: Recorder | None = None, model_name: str | None = None, log_models: bool = True,
            project: str | None = None) -> Recorder:
    """Log a fitted estimator: ``get_params(deep=False)`` as params, :func:`training_metrics` at
    step 0, and the model (joblib, the ``sklearn`` flavour) with the signature of ``X``'s first
    rows. Returns the recorder (its ``model_version`` is the registered version)."""
    require(INTEGRATION, "sklearn", "scikit-learn")
    rec = recorder or Recorder(INTEGRATION, run, project=project, model_name=model_name, log_models=log_models)
    params = {key: value for key, value in estimator.get_params(deep=False).items()
              if not hasattr(value, "get_params")}  # nested estimators: their class name, not their repr
    params.update({key: type(value).__name__ for key, value in estimator.get_params(deep=False).items()
                   if hasattr(value, "get_params")})
    params["estimator_class"] = f"{type(estimator).__module__}.{type(estimator).__name__}"
    rec.log_params(params)
    rec.log_metrics(training_metrics(estimator, X, y, sample_weight), 0)
    rec.log_model(estimator, flavour="sklearn", input_example=_example(X))
    if recorder is None:
        rec.close()  # finishes a run it started (run=None); a run passed in is left open
    return rec
