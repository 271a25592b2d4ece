"""PyTorch Lightning: ``CairnLogger`` logs the module's hyperparams and each step's metrics at
Lightning's global step, its model callback logs the trained module (torch.export) that loads back
as ``cairn serve`` loads it and predicts the same; ``cairn.autolog`` adds both to ``Trainer.fit``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from integration_checks import model_versions, served_answers, steps_and_values

import cairn
from cairn.sdk.client import Client
from cairn.sdk.run import start_run

# lightning and torch are imported by the first test (lightning_case), not at collection
pytestmark = [pytest.mark.shared_stack,
              pytest.mark.skipif(importlib.util.find_spec("lightning") is None or importlib.util.find_spec("torch") is None,
                                 reason="the Lightning integration needs lightning and torch: pip install lightning")]
PROJECT = "integ-lightning"


@pytest.fixture(scope="module")
def case() -> Any:
    import lightning_case

    return lightning_case


@pytest.fixture(scope="module")
def client(platform: Any) -> Client:
    return Client(platform.gateway, platform.token)


def test_logger_logs_hyperparams_each_step_and_a_servable_module(client: Client, case: Any, tmp_path: Path) -> None:
    from cairn.integrations.lightning import CairnLogger  # imports lightning

    torch = case.torch
    torch.manual_seed(0)
    module = case.Regressor()
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        logger = CairnLogger(run, model_name="reg", input_example=torch.zeros(2, 4))
        case.trainer(logger=logger, callbacks=[logger.model_callback()]).fit(module, case.loader())
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


def test_autolog_adds_the_logger_and_the_model_to_fit(client: Client, case: Any, tmp_path: Path) -> None:
    torch = case.torch
    torch.manual_seed(1)
    module = case.Regressor(lr=0.01)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        cairn.autolog(["lightning"], run=run)
        try:
            case.trainer(logger=False).fit(module, case.loader())
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
