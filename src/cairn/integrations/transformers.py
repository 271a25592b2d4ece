"""Hugging Face Transformers: a ``TrainerCallback`` that records the training arguments and the
model's config as params, every ``on_log`` dict at the trainer's global step, and the final model
(``save_pretrained``, the ``transformers`` flavour) when training ends.

    trainer = Trainer(model, args, train_dataset=ds, callbacks=[CairnCallback(run)])
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.integrations.recorder import Recorder, require

if TYPE_CHECKING:
    from cairn.sdk.run import ActiveRun

INTEGRATION = "transformers"
_tf = require(INTEGRATION, "transformers")
_TrainerCallback: Any = _tf.TrainerCallback

# Training-argument fields that say how training ran; the rest (paths, hub tokens, logging knobs)
# would crowd the run's params without telling anyone why one run differs from another.
_SKIP_ARGS = ("hub_", "logging_", "output_dir", "push_to_hub", "report_to", "run_name", "_n_gpu")


class CairnCallback(_TrainerCallback):  # type: ignore[misc]
    """Logs a ``transformers.Trainer``'s run into Cairn (``run``, or one started in ``project``)."""

    def __init__(self, run: ActiveRun | None = None, *, project: str | None = None, experiment: str = "default",
                 model_name: str | None = None, input_example: Any = None, log_models: bool = True,
                 system_metrics: bool = False, recorder: Recorder | None = None) -> None:
        self._closes = recorder is None  # a run it started on its own is finished by it
        self.recorder = recorder or Recorder(INTEGRATION, run, project=project, experiment=experiment,
                                             model_name=model_name, log_models=log_models,
                                             system_metrics=system_metrics)
        self.input_example = input_example

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        params = {k: v for k, v in args.to_dict().items() if not k.startswith(_SKIP_ARGS)}
        config = getattr(model, "config", None)
        if config is not None:
            params["model"] = {k: v for k, v in config.to_diff_dict().items()
                               if isinstance(v, (str, int, float, bool))}
        self.recorder.log_params(params)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            self.recorder.log_metrics(logs, state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if model is not None and self.recorder.log_models:
            self._log_model(model, kwargs)
        if self._closes:
            self.recorder.close()

    def _log_model(self, model: Any, kwargs: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="cairn-transformers-") as tmp:
            model.save_pretrained(tmp)
            processor = kwargs.get("processing_class") or kwargs.get("tokenizer")
            if processor is not None and hasattr(processor, "save_pretrained"):
                processor.save_pretrained(tmp)
            self.recorder.log_model(str(Path(tmp)), flavour="transformers", input_example=self.input_example)
