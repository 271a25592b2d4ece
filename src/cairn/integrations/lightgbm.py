"""LightGBM: a callback (LightGBM's callbacks are callables taking a ``CallbackEnv``) that records
the training params on the first round, each round's evaluation results (``<dataset>-<metric>``
at the round number) and the booster (a ``.lgb`` file, the ``lightgbm`` flavour) on the last round.

    cb = CairnCallback(run)
    booster = lgb.train(params, train_set, 50, valid_sets=[train_set], callbacks=[cb])

With early stopping LightGBM ends before its last round without telling callbacks, so call
``cb.log_model(booster)`` after ``train`` returns (``cairn.autolog`` does).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.integrations.recorder import Recorder, given_or_own, require

if TYPE_CHECKING:
    from cairn.sdk.run import ActiveRun

INTEGRATION = "lightgbm"
require(INTEGRATION, "lightgbm")


class CairnCallback:
    """Logs a ``lightgbm.train`` (or a scikit-learn API ``fit``) into Cairn."""

    order = 30  # after LightGBM's own evaluation recorders (order 20), like its log_evaluation
    before_iteration = False

    def __init__(self, run: ActiveRun | None = None, *, project: str | None = None, experiment: str = "default",
                 model_name: str | None = None, input_example: Any = None, log_models: bool = True,
                 log_model_at_end: bool = True, system_metrics: bool = False,
                 recorder: Recorder | None = None) -> None:
        # a recorder of its own (a run it starts) is closed by it; a given one is not
        self.recorder, self._closes = given_or_own(INTEGRATION, recorder, run, project=project, experiment=experiment,
                                                   model_name=model_name, log_models=log_models,
                                                   system_metrics=system_metrics)
        self.input_example = input_example
        self.log_model_at_end = log_model_at_end
        self._logged_params = False
        self.model_logged = False

    def __call__(self, env: Any) -> None:
        if not self._logged_params:
            self.recorder.log_params({k: v for k, v in env.params.items() if not callable(v)})
            self._logged_params = True
        values = {f"{item[0]}-{item[1]}": item[2] for item in env.evaluation_result_list or ()}
        self.recorder.log_metrics(values, env.iteration)
        if self.log_model_at_end and env.iteration == env.end_iteration - 1:
            self.log_model(env.model)  # and finishes a run of its own

    def log_model(self, booster: Any) -> None:
        """Register the booster (its best iteration when early stopping set one), once; then
        finish the run if this callback started it."""
        if not self.model_logged and self.recorder.log_models:
            with tempfile.TemporaryDirectory(prefix="cairn-lightgbm-") as tmp:
                path = Path(tmp) / "model.lgb"
                booster.save_model(str(path))
                self.recorder.log_model(str(path), flavour="lightgbm", input_example=self.input_example)
            self.model_logged = True
        if self._closes:
            self.recorder.close()
