"""XGBoost: the ``TrainingCallback`` logs params, each round's evaluation metric at the round
number and the booster, which loads back as ``cairn serve`` loads it and predicts the same;
``cairn.autolog`` does the same for the scikit-learn API's ``fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost", reason="the XGBoost integration needs xgboost: pip install xgboost")

from integration_checks import model_versions, served_answers, steps_and_values  # noqa: E402

import cairn  # noqa: E402
from cairn.integrations.xgboost import CairnCallback  # noqa: E402
from cairn.sdk.client import Client  # noqa: E402
from cairn.sdk.run import start_run  # noqa: E402

pytestmark = pytest.mark.shared_stack
PROJECT = "integ-xgboost"
RNG = np.random.default_rng(11)
X = RNG.normal(size=(60, 4)).astype(np.float32)  # float32: what the flavour feeds the booster
Y = (X[:, 0] - X[:, 2] > 0).astype(int)


@pytest.fixture(scope="module")
def client(platform: Any) -> Client:
    return Client(platform.gateway, platform.token)


def test_callback_logs_params_per_round_metrics_and_a_servable_booster(client: Client, tmp_path: Path) -> None:
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3}
    dtrain = xgb.DMatrix(X, label=Y)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        callback = CairnCallback(run, params=params, model_name="xgb", input_example=X[:3])
        booster = xgb.train(params, dtrain, 6, evals=[(dtrain, "train")], callbacks=[callback], verbose_eval=False)
    assert client.get_run(PROJECT, run.id)["params"] == {"objective": "binary:logistic", "max_depth": "2",
                                                         "eta": "0.3"}
    steps, values = steps_and_values(client, PROJECT, run.id, "train-logloss")
    assert steps == list(range(6)) and values[-1] < values[0]
    served = served_answers(client, PROJECT, "xgb", callback.recorder.model_version, X[:8], tmp_path)
    np.testing.assert_allclose(served, booster.predict(xgb.DMatrix(X[:8])), rtol=1e-6)


def test_autolog_logs_the_sklearn_api_fit(client: Client, tmp_path: Path) -> None:
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        cairn.autolog(["xgboost"], run=run)
        try:
            model = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(X, Y, eval_set=[(X, Y)], verbose=False)
        finally:
            cairn.autolog(["xgboost"], disable=True)
    assert client.get_run(PROJECT, run.id)["params"]["max_depth"] == "2"
    steps, _ = steps_and_values(client, PROJECT, run.id, "validation_0-logloss")
    assert steps == list(range(4))
    [version] = model_versions(client, PROJECT, "xgboost-model")
    served = served_answers(client, PROJECT, "xgboost-model", version, X[:5], tmp_path)
    np.testing.assert_allclose(served, model.predict_proba(X[:5])[:, 1], rtol=1e-6)


def test_a_callback_without_a_run_starts_its_own_samples_the_machine_and_finishes_it(
        client: Client, platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_URL", platform.gateway)
    monkeypatch.setenv("CAIRN_TOKEN", platform.token)
    monkeypatch.setenv("CAIRN_RECORD_ENVIRONMENT", "0")
    dtrain = xgb.DMatrix(X, label=Y)
    callback = CairnCallback(project=PROJECT, model_name="xgb-own", system_metrics=True)
    xgb.train({"max_depth": 2}, dtrain, 3, evals=[(dtrain, "train")], callbacks=[callback], verbose_eval=False)
    assert callback.recorder.model_version is not None
    run_id = callback.recorder.model_version["run_id"]
    assert client.get_run(PROJECT, run_id)["status"] == "finished"
    assert client.get_run(PROJECT, run_id)["params"]["max_depth"] == "2"  # read from the booster's config
    assert steps_and_values(client, PROJECT, run_id, "train-rmse")[0] == [0, 1, 2]
    assert len(steps_and_values(client, PROJECT, run_id, "system/cpu_percent")[0]) >= 1  # opted in
