"""LightGBM: the callback logs params, each round's evaluation result at the round number and the
booster, which loads back as ``cairn serve`` loads it and predicts the same; under
``cairn.autolog`` the model is logged after ``train`` returns, so early stopping keeps it."""

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

# lightgbm (and sklearn) imported by the first test (``lgb``), not at collection, where every xdist
# worker would pay ~1 s for it
pytestmark = [pytest.mark.shared_stack,
              pytest.mark.skipif(importlib.util.find_spec("lightgbm") is None,
                                 reason="the LightGBM integration needs lightgbm: pip install lightgbm")]
PROJECT = "integ-lightgbm"
RNG = np.random.default_rng(5)
X = RNG.normal(size=(80, 3)).astype(np.float32)
Y = (X[:, 1] + X[:, 2] > 0).astype(int)
PARAMS = {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 5, "verbose": -1, "learning_rate": 0.2}


@pytest.fixture(scope="module")
def lgb() -> Any:
    import lightgbm

    return lightgbm


@pytest.fixture(scope="module")
def client(platform: Any) -> Client:
    return Client(platform.gateway, platform.token)


def test_callback_logs_params_per_round_metrics_and_a_servable_booster(client: Client, lgb: Any,
                                                                       tmp_path: Path) -> None:
    from cairn.integrations.lightgbm import CairnCallback  # imports lightgbm

    train = lgb.Dataset(X, Y)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        callback = CairnCallback(run, model_name="lgb", input_example=X[:3])
        booster = lgb.train(PARAMS, train, 5, valid_sets=[train], valid_names=["train"], callbacks=[callback])
    params = client.get_run(PROJECT, run.id)["params"]
    assert params["num_leaves"] == "4" and params["objective"] == "binary"
    steps, values = steps_and_values(client, PROJECT, run.id, "train-binary_logloss")
    assert steps == list(range(5)) and values[-1] < values[0]
    served = served_answers(client, PROJECT, "lgb", callback.recorder.model_version, X[:8], tmp_path)
    np.testing.assert_allclose(served, booster.predict(X[:8]), rtol=1e-6)


def test_autolog_logs_the_model_after_early_stopping(client: Client, lgb: Any, tmp_path: Path) -> None:
    train = lgb.Dataset(X[:60], Y[:60])
    valid = lgb.Dataset(X[60:], Y[60:], reference=train)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        cairn.autolog(["lightgbm"], run=run)
        try:
            booster = lgb.train(PARAMS, train, 200, valid_sets=[valid], valid_names=["valid"],
                                callbacks=[lgb.early_stopping(2, min_delta=0.05, verbose=False)])
        finally:
            cairn.autolog(["lightgbm"], disable=True)
    assert booster.current_iteration() < 200  # it did stop early: the last round never came
    steps, _ = steps_and_values(client, PROJECT, run.id, "valid-binary_logloss")
    assert steps == list(range(len(steps))) and 0 < len(steps) < 200
    [version] = model_versions(client, PROJECT, "lightgbm-model")
    served = served_answers(client, PROJECT, "lightgbm-model", version, X[:5], tmp_path)
    np.testing.assert_allclose(served, booster.predict(X[:5]), rtol=1e-6)
