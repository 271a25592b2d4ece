"""PyTorch Lightning: a ``Logger`` that records hyperparams and every logged metric with its step,
plus a callback that logs the trained module as a model ``cairn serve`` loads (``torch.export``).

    logger = CairnLogger(run, input_example=torch.randn(4, 16))
    trainer = lightning.Trainer(logger=logger, callbacks=[logger.model_callback()])

The logger only queues points (the run's metric sender ships them from its own threads), so a
training step costs a dict walk and a lock, never a request. Checkpoints that Lightning saves are
logged as the run's artifacts when training ends (``log_checkpoints=True``).
"""

from __future__ import annotations

import os
import tempfile
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.integrations.recorder import Recorder, given_or_own, require

if TYPE_CHECKING:
    from cairn.sdk.run import ActiveRun

INTEGRATION = "lightning"
_pl = require(INTEGRATION, "lightning.pytorch", "lightning")
_loggers = require(INTEGRATION, "lightning.pytorch.loggers", "lightning")
_utilities = require(INTEGRATION, "lightning.pytorch.utilities", "lightning")
_Logger: Any = _loggers.Logger
_Callback: Any = _pl.Callback


def save_module(module: Any, directory: Path, input_example: Any = None) -> tuple[Path, str]:
    """The module as a file ``cairn serve`` loads: ``torch.export`` with a dynamic batch size
    when there is an input example (TorchScript is deprecated in torch 2.13), else TorchScript
    by ``torch.jit.script``. Returns (path, flavour)."""
    import torch

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            if input_example is not None:
                example = input_example.to(module.device)
                batch = {0: torch.export.Dim.DYNAMIC}
                program = torch.export.export(module, (example,), dynamic_shapes=(batch,))
                path = directory / "model.pt2"
                torch.export.save(program, str(path))
                return path, "torch_export"
            path = directory / "model.pt"
            torch.jit.save(torch.jit.script(module), str(path))
            return path, "torchscript"
    finally:
        module.train(was_training)


class CairnLogger(_Logger):  # type: ignore[misc]
    """Lightning ``Logger`` writing into a Cairn run (``run``, or one started in ``project``)."""

    def __init__(self, run: ActiveRun | None = None, *, project: str | None = None, experiment: str = "default",
                 model_name: str | None = None, input_example: Any = None, log_models: bool = True,
                 log_checkpoints: bool = False, system_metrics: bool = False,
                 recorder: Recorder | None = None) -> None:
        super().__init__()
        # a recorder of its own (a run it starts) is closed by it; a given one is not
        self.recorder, self._closes = given_or_own(INTEGRATION, recorder, run, project=project, experiment=experiment,
                                                   model_name=model_name, log_models=log_models,
                                                   system_metrics=system_metrics)
        self.input_example = input_example
        self.log_checkpoints = log_checkpoints
        self._checkpoints: list[str] = []

    @property
    def name(self) -> str:
        return "cairn"

    @property
    def version(self) -> str:
        return self.recorder.run.id

    @_utilities.rank_zero_only  # type: ignore[misc]
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        self.recorder.log_params(dict(params))

    @_utilities.rank_zero_only  # type: ignore[misc]
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.recorder.log_metrics(metrics, 0 if step is None else step)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        path = getattr(checkpoint_callback, "best_model_path", "") or getattr(checkpoint_callback, "last_model_path", "")
        if self.log_checkpoints and path and path not in self._checkpoints:
            self._checkpoints.append(path)

    @_utilities.rank_zero_only  # type: ignore[misc]
    def finalize(self, status: str) -> None:
        for path in self._checkpoints:
            if os.path.exists(path):
                self.recorder.log_artifact(path, f"checkpoints/{os.path.basename(path)}")
        self._checkpoints.clear()
        if self._closes:
            self.recorder.close(None if status == "success" else RuntimeError(f"training ended: {status}"))

    def model_callback(self) -> Any:
        """The callback that logs the trained module when ``fit`` ends (pass it to the Trainer)."""
        return LogModel(self.recorder, self.input_example)


class LogModel(_Callback):  # type: ignore[misc]
    """Logs the LightningModule (``torch.export``, the ``torch_export`` flavour) when training ends."""

    def __init__(self, recorder: Recorder, input_example: Any = None) -> None:
        self.recorder = recorder
        self.input_example = input_example

    @_utilities.rank_zero_only  # type: ignore[misc]
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.recorder.log_models:
            return
        with tempfile.TemporaryDirectory(prefix="cairn-lightning-") as tmp:
            path, flavour = save_module(pl_module, Path(tmp), self.input_example)
            example = self.input_example
            example = example.detach().cpu().numpy() if hasattr(example, "detach") else example
            self.recorder.log_model(str(path), flavour=flavour, input_example=example)
