"""Keras 3 (torch backend): the callback logs the fit's settings and optimizer config, each
batch's loss at a global step, each epoch's under ``epoch/``, and the model as a ``.keras`` file
that loads back through the new ``keras`` flavour (as ``cairn serve`` loads it) and predicts the
same; ``cairn.autolog`` adds the callback to ``Model.fit``."""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow here

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from integration_checks import model_versions, served_answers, steps_and_values  # noqa: E402

import cairn  # noqa: E402
from cairn.sdk.client import Client  # noqa: E402
from cairn.sdk.run import start_run  # noqa: E402

# keras (with torch) is imported by the first test, not at collection: every xdist worker collects
# every module, and importing it there cost each ~4 s
pytestmark = [pytest.mark.shared_stack,
              pytest.mark.skipif(importlib.util.find_spec("keras") is None,
                                 reason="the Keras integration needs keras: pip install keras")]
PROJECT = "integ-keras"
RNG = np.random.default_rng(2)
X = RNG.normal(size=(32, 4)).astype(np.float32)
Y = X @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32)


@pytest.fixture(scope="module")
def keras() -> Any:
    import keras

    return keras


def tiny_model(keras: Any) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.02), loss="mse")
    return model


@pytest.fixture(scope="module")
def client(platform: Any) -> Client:
    return Client(platform.gateway, platform.token)


def test_callback_logs_settings_each_batch_and_a_servable_model(client: Client, keras: Any, tmp_path: Path) -> None:
    from cairn.integrations.keras import CairnCallback  # imports keras

    model = tiny_model(keras)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        callback = CairnCallback(run, model_name="dense", input_example=X[:2])
        model.fit(X, Y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    params = client.get_run(PROJECT, run.id)["params"]
    assert params["epochs"] == "2" and params["steps"] == "4"
    assert params["optimizer.name"] == "sgd" and float(params["optimizer.learning_rate"]) == pytest.approx(0.02)
    steps, values = steps_and_values(client, PROJECT, run.id, "loss")
    assert steps == list(range(8)) and np.isfinite(values).all()  # 4 batches x 2 epochs
    assert steps_and_values(client, PROJECT, run.id, "epoch/loss")[0] == [0, 1]
    served = served_answers(client, PROJECT, "dense", callback.recorder.model_version, X[:5], tmp_path)
    np.testing.assert_allclose(served, model.predict(X[:5], verbose=0)[:, 0], rtol=1e-5, atol=1e-6)


def test_autolog_adds_the_callback_to_fit(client: Client, keras: Any, tmp_path: Path) -> None:
    model = tiny_model(keras)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        cairn.autolog(["keras"], run=run)
        try:
            model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
        finally:
            cairn.autolog(["keras"], disable=True)
    assert steps_and_values(client, PROJECT, run.id, "loss")[0] == [0, 1]
    [version] = model_versions(client, PROJECT, "keras-model")
    served = served_answers(client, PROJECT, "keras-model", version, X[:3], tmp_path)
    np.testing.assert_allclose(served, model.predict(X[:3], verbose=0)[:, 0], rtol=1e-5, atol=1e-6)
