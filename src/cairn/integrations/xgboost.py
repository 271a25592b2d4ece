"""XGBoost: a ``TrainingCallback`` that records the booster's params, each round's evaluation
metrics (``<dataset>-<metric>`` at the round number) and the trained booster (a ``.ubj`` file, the
``xgboost`` flavour) after training.

    xgb.train(params, dtrain, 50, evals=[(dtrain, "train")], callbacks=[CairnCallback(run, params=params)])

Without ``params`` the callback reads the learner's settings from the booster's own config.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.integrations.recorder import Recorder, given_or_own, require

if TYPE_CHECKING:
    from cairn.sdk.run import ActiveRun

INTEGRATION = "xgboost"
_xgb = require(INTEGRATION, "xgboost")
_TrainingCallback: Any = _xgb.callback.TrainingCallback


def booster_params(booster: Any) -> dict[str, Any]:
    """The settings that shape training, from ``save_config()`` (the learner's, the objective's
    and the tree booster's train params)."""
    learner = json.loads(booster.save_config()).get("learner", {})
    params: dict[str, Any] = dict(learner.get("learner_train_param", {}))
    params.update(learner.get("gradient_booster", {}).get("tree_train_param", {}))
    params.update(learner.get("generic_param", {}))
    return params


class CairnCallback(_TrainingCallback):  # type: ignore[misc]
    """Logs an ``xgboost.train`` (or a scikit-learn API ``fit``) into Cairn."""

    def __init__(self, run: ActiveRun | None = None, *, params: dict[str, Any] | None = None,
                 project: str | None = None, experiment: str = "default", model_name: str | None = None,
                 input_example: Any = None, log_models: bool = True, system_metrics: bool = False,
                 recorder: Recorder | None = None) -> None:
        super().__init__()
        # a recorder of its own (a run it starts) is closed by it; a given one is not
        self.recorder, self._closes = given_or_own(INTEGRATION, recorder, run, project=project, experiment=experiment,
                                                   model_name=model_name, log_models=log_models,
                                                   system_metrics=system_metrics)
        self.params = params
        self.input_example = input_example

    def before_training(self, model: Any) -> Any:
        self.recorder.log_params(self.params if self.params is not None else booster_params(model))
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> bool:
        latest = {f"{data}-{metric}": values[-1] for data, metrics in evals_log.items()
                  for metric, values in metrics.items() if values}
        self.recorder.log_metrics({k: v[0] if isinstance(v, tuple) else v for k, v in latest.items()}, epoch)
        return False

    def after_training(self, model: Any) -> Any:
        if self.recorder.log_models:
            with tempfile.TemporaryDirectory(prefix="cairn-xgboost-") as tmp:
                path = Path(tmp) / "model.ubj"
                model.save_model(str(path))
                self.recorder.log_model(str(path), flavour="xgboost", input_example=self.input_example)
        if self._closes:
            self.recorder.close()
        return model
