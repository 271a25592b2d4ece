"""Each flavour end to end: logged (through the SDK, or through the MLflow API), served by a real
``cairn serve`` and answering what the model answers in process; a flavour whose package is not
installed stops ``cairn serve`` with the package to install, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serving_proc import run_serve_cli, serving
from sklearn.linear_model import LogisticRegression

from cairn.sdk.client import Client
from cairn.sdk.run import start_run

pytestmark = pytest.mark.shared_stack

PROJECT = "serve-flavours"
COLUMNS = ["a", "b", "c"]
ROWS = [[0.5, 1.2, -0.3], [-1.0, -0.5, -0.7], [0.0, 2.0, 1.0], [1.5, -2.0, 0.25]]
FRAME = pd.DataFrame(ROWS, columns=COLUMNS)


@pytest.fixture(scope="module")
def client(platform: Any) -> Client:
    return Client(platform.gateway, platform.token)


def log(client: Client, model: Any, name: str, **kwargs: Any) -> int:
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        return int(run.log_model(model, name, **kwargs)["version"])


def served_predictions(platform: Any, tmp_path: Path, ref: str, body: dict[str, Any] | None = None) -> list[Any]:
    with serving(platform, tmp_path, "-p", PROJECT, ref) as served, served.client() as http:
        resp = http.post("/invocations", json=body or {"dataframe_split": {"columns": COLUMNS, "data": ROWS}})
        assert resp.status_code == 200, resp.text
        v2 = http.post(f"/v2/models/{ref.split('/')[0]}/infer", json={"inputs": [
            {"name": "x", "shape": [len(ROWS), 3], "datatype": "FP32", "data": [v for r in ROWS for v in r]}]})
        assert v2.status_code == 200, v2.text
        assert v2.json()["outputs"][0]["data"] == resp.json()["predictions"]
        return resp.json()["predictions"]


def sklearn_model() -> LogisticRegression:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    return LogisticRegression().fit(x, (x[:, 0] - x[:, 2] > 0).astype(np.int64))


def test_onnx_model_converted_from_sklearn(platform: Any, client: Client, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the ONNX flavour needs onnxruntime (test extra)")
    skl2onnx = pytest.importorskip("skl2onnx", reason="converting to ONNX needs skl2onnx (test extra)")
    from skl2onnx.common.data_types import FloatTensorType

    model = sklearn_model()
    onnx_model = skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 3]))],
                                          target_opset=17)
    version = log(client, onnx_model, "clf-onnx", input_example=FRAME.head(1))
    got = served_predictions(platform, tmp_path, f"clf-onnx/{version}")
    assert got == model.predict(FRAME.to_numpy(dtype=np.float32)).tolist()


class Scorer:  # built lazily: torch is imported only by the tests that use it
    @staticmethod
    def make() -> Any:
        import torch

        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).eval()


def test_torchscript_model(platform: Any, client: Client, tmp_path: Path) -> None:
    import torch

    module = Scorer.make()
    version = log(client, module, "scorer-ts", input_example=FRAME.head(1))
    got = served_predictions(platform, tmp_path, f"scorer-ts/{version}")
    with torch.inference_mode():
        expected = module(torch.tensor(ROWS, dtype=torch.float32))[:, 0].tolist()
    assert np.allclose(got, expected, atol=1e-6)


def test_torch_export_model(platform: Any, client: Client, tmp_path: Path) -> None:
    import torch

    module = Scorer.make()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, (torch.zeros(2, 3),), dynamic_shapes=({0: batch},))
    version = log(client, program, "scorer-export", input_example=FRAME.head(2))
    got = served_predictions(platform, tmp_path, f"scorer-export/{version}")
    with torch.inference_mode():
        expected = module(torch.tensor(ROWS, dtype=torch.float32))[:, 0].tolist()
    assert np.allclose(got, expected, atol=1e-6)


def test_python_predict_module(platform: Any, client: Client, tmp_path: Path) -> None:
    module = tmp_path / "src" / "rules.py"
    module.parent.mkdir()
    module.write_text("def predict(batch):\n    return (batch['a'] + 2 * batch['b']).tolist()\n")
    version = log(client, module, "rules", signature=[{"name": c, "type": "double"} for c in COLUMNS])
    got = served_predictions(platform, tmp_path / "cache", f"rules/{version}")
    assert got == [r[0] + 2 * r[1] for r in ROWS]


def test_mlflow_pyfunc_registered_through_the_mlflow_api(platform: Any, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    script = tmp_path / "register.py"
    script.write_text(textwrap.dedent("""
        import json
        import mlflow
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        x = np.random.default_rng(3).normal(size=(100, 3))
        mlflow.set_experiment("serve")
        with mlflow.start_run() as run:
            model = LogisticRegression().fit(x, (x[:, 0] - x[:, 2] > 0).astype(int))
            mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "clf-mlflow")
        rows = [[0.5, 1.2, -0.3], [-1.0, -0.5, -0.7], [0.0, 2.0, 1.0], [1.5, -2.0, 0.25]]
        print(json.dumps({"version": int(version.version), "expected": model.predict(np.array(rows)).tolist()}))
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CAIRN_"))}
    env.update({"MLFLOW_TRACKING_URI": f"{platform.gateway}/mlflow/{PROJECT}", "MLFLOW_TRACKING_TOKEN": platform.token,
                "GIT_PYTHON_REFRESH": "quiet"})
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    got = served_predictions(platform, tmp_path / "cache", f"clf-mlflow/{result['version']}",
                             body={"instances": ROWS})
    assert got == result["expected"]


@pytest.mark.parametrize("flavour", ["xgboost", "lightgbm"])
def test_boosted_trees_native_files(platform: Any, client: Client, tmp_path: Path, flavour: str) -> None:
    x = np.random.default_rng(5).normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.float64)
    if flavour == "xgboost":
        import xgboost as xgb

        booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(x, label=y), 10)
        path = tmp_path / "model.ubj"
        booster.save_model(str(path))
        expected = booster.predict(xgb.DMatrix(np.array(ROWS))).tolist()
    else:
        import lightgbm as lgb

        trained = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7}, lgb.Dataset(x, label=y), 10)
        path = tmp_path / "model.lgb"
        trained.save_model(str(path))
        expected = trained.predict(np.array(ROWS)).tolist()
    version = log(client, path, f"boost-{flavour}", flavour=flavour,
                  signature=[{"name": c, "type": "double"} for c in COLUMNS])
    got = served_predictions(platform, tmp_path / "cache", f"boost-{flavour}/{version}")
    assert np.allclose(got, expected, rtol=1e-5)


def test_missing_flavour_package_is_a_clear_error(platform: Any, client: Client, tmp_path: Path) -> None:
    """skops (scikit-learn's safe format) is deliberately not a test dependency: its model cannot
    be served here, and ``cairn serve`` says which package to install."""
    with pytest.raises(ImportError):
        __import__("skops")
    model_file = tmp_path / "model.skops"
    model_file.write_bytes(b"not really a model")
    version = log(client, model_file, "safe-sklearn", flavour="sklearn")
    proc = run_serve_cli(platform, tmp_path / "cache", "-p", PROJECT, f"safe-sklearn/{version}")
    assert proc.returncode != 0
    assert "pip install skops" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
