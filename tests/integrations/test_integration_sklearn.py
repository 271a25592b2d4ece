"""scikit-learn: ``log_fit`` and ``cairn.autolog`` log the estimator's params, its training
metrics and the fitted model with its signature; the model loads back as ``cairn serve`` loads it
and predicts what the trained one does. Also: autolog's patches are undone by ``disable=True``,
and an integration whose framework is missing names the package to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the scikit-learn integration needs scikit-learn: pip install scikit-learn")

from integration_checks import model_versions, served_answers, steps_and_values  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import cairn  # noqa: E402
from cairn.integrations.recorder import require  # noqa: E402
from cairn.integrations.sklearn import log_fit  # noqa: E402
from cairn.kernel.errors import MissingFramework  # noqa: E402
from cairn.sdk.client import Client  # noqa: E402
from cairn.sdk.run import start_run  # noqa: E402

pytestmark = pytest.mark.shared_stack
PROJECT = "integ-sklearn"
RNG = np.random.default_rng(7)
X = RNG.normal(size=(40, 3))
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def client(platform: Any) -> Client:
    return Client(platform.gateway, platform.token)


def test_log_fit_records_params_metrics_and_a_servable_model(client: Client, tmp_path: Path) -> None:
    model = LogisticRegression(C=0.5, max_iter=200).fit(X, Y)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        rec = log_fit(run, model, X, Y, model_name="logreg")
    params = client.get_run(PROJECT, run.id)["params"]
    assert params["C"] == "0.5" and params["max_iter"] == "200"
    assert params["estimator_class"] == "sklearn.linear_model._logistic.LogisticRegression"
    steps, values = steps_and_values(client, PROJECT, run.id, "training_accuracy_score")
    assert steps == [0] and values[0] == pytest.approx(model.score(X, Y))
    assert rec.model_version is not None
    served = served_answers(client, PROJECT, "logreg", rec.model_version, X[:6], tmp_path)
    assert served.tolist() == model.predict(X[:6]).tolist()
    version = client.load_model(PROJECT, f"logreg/{rec.model_version['version']}", cache_dir=tmp_path)
    assert [c["type"] for c in version.signature] == ["double"] * 3  # from the input example


def test_autolog_logs_a_pipeline_once_and_disable_restores_fit(client: Client, tmp_path: Path) -> None:
    original_fit = Ridge.fit
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        assert "sklearn" in cairn.autolog(["sklearn"], run=run)
        try:
            assert Ridge.fit is not original_fit
            pipeline = make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(X, X[:, 0] * 3.0)
        finally:
            cairn.autolog(["sklearn"], disable=True)
    assert Ridge.fit is original_fit
    params = client.get_run(PROJECT, run.id)["params"]
    assert params["estimator_class"] == "sklearn.pipeline.Pipeline"  # the outer fit, not its steps'
    assert params["steps"]  # the pipeline's own params (its steps as JSON text)
    assert "alpha" not in params  # the inner Ridge.fit logged nothing of its own
    _, r2 = steps_and_values(client, PROJECT, run.id, "training_r2_score")
    assert r2 == [pytest.approx(pipeline.score(X, X[:, 0] * 3.0))]
    items = model_versions(client, PROJECT, "sklearn-model")
    assert [v["run_id"] for v in items] == [run.id]
    served = served_answers(client, PROJECT, "sklearn-model", items[0], X[:5], tmp_path)
    np.testing.assert_allclose(served, pipeline.predict(X[:5]))


def test_autolog_without_a_run_gives_each_fit_a_finished_run_of_its_own(client: Client, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_RECORD_ENVIRONMENT", "0")
    cairn.autolog(["sklearn"], project=PROJECT, experiment="auto", client=client)
    try:
        LogisticRegression(C=1.0).fit(X, Y)
        LogisticRegression(C=3.0).fit(X, Y)
    finally:
        cairn.autolog(disable=True)
    versions = model_versions(client, PROJECT, "sklearn-model")
    runs = [client.get_run(PROJECT, v["run_id"]) for v in versions[-2:]]
    assert [r["params"]["C"] for r in runs] == ["1.0", "3.0"]
    assert [r["status"] for r in runs] == ["finished", "finished"]


def test_an_integration_without_its_framework_names_the_package() -> None:
    with pytest.raises(MissingFramework, match=r"pip install no-such-framework"):
        require("nosuch", "cairn_no_such_framework", "no-such-framework")
    with pytest.raises(ValueError, match="one of sklearn"):
        cairn.autolog(["tensorflow"])


def test_import_cairn_and_its_autolog_import_no_framework() -> None:
    probe = ("import sys, cairn; cairn.autolog; import cairn.integrations; "
             "print(sorted(m for m in ('sklearn', 'torch', 'lightning', 'transformers', 'keras', 'xgboost', "
             "'lightgbm') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
