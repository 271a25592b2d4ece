"""PyTorch Lightning: ``CairnLogger`` logs the module's hyperparams and each step's metrics at
Lightning's global step, its model callback logs the trained module (torch.export) that loads back
as ``cairn serve`` loads it and predicts the same; ``cairn.autolog`` adds both to ``Trainer.fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pl = pytest.importorskip("lightning.pytorch", reason="the Lightning integration needs lightning: pip install lightning")
torch = pytest.importorskip("torch", reason="the Lightning integration needs torch: pip install torch")

from integration_checks import model_versions, served_answers, steps_and_values  # noqa: E402

import cairn  # noqa: E402
from cairn.integrations.lightning import CairnLogger  # noqa: E402
from cairn.sdk.client import Client  # noqa: E402
from cairn.sdk.run import start_run  # noqa: E402

pytestmark = pytest.mark.shared_stack
PROJECT = "integ-lightning"


LightningModule: Any = pl.LightningModule


class Regressor(LightningModule):  # type: ignore[misc]
    def __init__(self, width: int = 4, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(width, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        self.example_input_array = torch.zeros(2, width)

    def forward(self, x: Any) -> Any:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader() -> Any:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(48, 4, generator=gen)
    y = x.sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def trainer(**kwargs: Any) -> Any:
    return pl.Trainer(max_epochs=2, accelerator="cpu", log_every_n_steps=1, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)


@pytest.fixture(scope="module")
def client(platform: Any) -> Client:
    return Client(platform.gateway, platform.token)


def test_logger_logs_hyperparams_each_step_and_a_servable_module(client: Client, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = Regressor()
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        logger = CairnLogger(run, model_name="reg", input_example=torch.zeros(2, 4))
        trainer(logger=logger, callbacks=[logger.model_callback()]).fit(module, loader())
    params = client.get_run(PROJECT, run.id)["params"]
    assert params["lr"] == "0.05" and params["width"] == "4"
    steps, values = steps_and_values(client, PROJECT, run.id, "train_loss")
    assert steps == list(range(12))  # 6 batches x 2 epochs, one point per step
    assert np.isfinite(values).all()
    rows = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    served = served_answers(client, PROJECT, "reg", logger.recorder.model_version, rows, tmp_path)
    with torch.no_grad():
        expected = module(torch.from_numpy(rows)).numpy()[:, 0]
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_autolog_adds_the_logger_and_the_model_to_fit(client: Client, tmp_path: Path) -> None:
    torch.manual_seed(1)
    module = Regressor(lr=0.01)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        cairn.autolog(["lightning"], run=run)
        try:
            trainer(logger=False).fit(module, loader())
        finally:
            cairn.autolog(["lightning"], disable=True)
    assert client.get_run(PROJECT, run.id)["params"]["lr"] == "0.01"
    steps, _ = steps_and_values(client, PROJECT, run.id, "train_loss")
    assert steps == list(range(12))
    [version] = model_versions(client, PROJECT, "lightning-model")
    rows = np.ones((3, 4), dtype=np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(rows)).numpy()[:, 0]
    np.testing.assert_allclose(served_answers(client, PROJECT, "lightning-model", version, rows, tmp_path),
                               expected, rtol=1e-5, atol=1e-6)
