"""The Lightning tests' module, data and trainer (tests/integrations/test_integration_lightning.py
imports this at its first test, not at collection: lightning and torch take seconds to import, and
every xdist worker collects every test module)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

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
