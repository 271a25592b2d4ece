"""Keras 3: a ``keras.callbacks.Callback`` that records the fit's settings and optimizer config as
params, every batch's logs at a global step, each epoch's logs under ``epoch/``, and the trained
model (a ``.keras`` file, the ``keras`` flavour) when training ends.

    model.fit(x, y, epochs=3, callbacks=[CairnCallback(run)])

Keras picks its backend when first imported (``KERAS_BACKEND``); this module imports keras, so
set the backend before importing it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.integrations.recorder import Recorder, given_or_own, require

if TYPE_CHECKING:
    from cairn.sdk.run import ActiveRun

INTEGRATION = "keras"
_keras = require(INTEGRATION, "keras")
_Callback: Any = _keras.callbacks.Callback


class CairnCallback(_Callback):  # type: ignore[misc]
    """Logs a ``Model.fit`` into Cairn (``run``, or one started in ``project``)."""

    def __init__(self, run: ActiveRun | None = None, *, project: str | None = None, experiment: str = "default",
                 model_name: str | None = None, input_example: Any = None, log_models: bool = True,
                 system_metrics: bool = False, recorder: Recorder | None = None) -> None:
        super().__init__()
        # a recorder of its own (a run it starts) is closed by it; a given one is not
        self.recorder, self._closes = given_or_own(INTEGRATION, recorder, run, project=project, experiment=experiment,
                                                   model_name=model_name, log_models=log_models,
                                                   system_metrics=system_metrics)
        self.input_example = input_example
        self.step = 0  # batches seen over all epochs: Keras numbers batches per epoch

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        params: dict[str, Any] = {k: v for k, v in (self.params or {}).items() if k in ("epochs", "steps")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            config = optimizer.get_config()
            params["optimizer"] = {k: v for k, v in config.items() if isinstance(v, (str, int, float, bool))}
        self.recorder.log_params(params)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if logs:
            self.recorder.log_metrics(logs, self.step)
        self.step += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs:
            self.recorder.log_metrics(logs, epoch, prefix="epoch/")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.recorder.log_models:
            with tempfile.TemporaryDirectory(prefix="cairn-keras-") as tmp:
                path = Path(tmp) / "model.keras"
                self.model.save(path)
                self.recorder.log_model(str(path), flavour="keras", input_example=self.input_example)
        if self._closes:
            self.recorder.close()
