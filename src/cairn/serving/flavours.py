"""Flavours: how each kind of model file is loaded and called.

Every flavour turns into one shape, :class:`LoadedModel` (``predict(DataFrame) -> one answer per
row``), so the HTTP layer, batching and traffic splits never care which library made the model.
Imports of the heavy libraries happen only when a model of that flavour is loaded; a missing
package is a :class:`~cairn.kernel.errors.MissingPackage` naming what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cairn.kernel.errors import InvalidInput, MissingPackage

FLAVOURS = ("sklearn", "onnx", "torchscript", "torch_export", "xgboost", "lightgbm", "mlflow", "python",
            "keras", "transformers")


@dataclass
class LoadedModel:
    """A model ready to answer: ``predict`` takes a DataFrame whose columns are the signature's
    inputs (in order) and returns one prediction per row."""

    flavour: str
    call: Callable[[pd.DataFrame], Any]
    signature: list[dict[str, str]] = field(default_factory=list)
    batchable: bool = True
    input_example: pd.DataFrame | None = None

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        out = self.call(frame)
        if isinstance(out, pd.DataFrame):
            out = out.to_numpy()
        if isinstance(out, pd.Series):
            out = out.to_numpy()
        out = np.asarray(out)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if len(out) != len(frame):
            raise InvalidInput(f"the model answered {len(out)} rows for {len(frame)} input rows")
        return out.tolist()


def _require(flavour: str, module: str, package: str | None = None) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackage(flavour, package or module) from None


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    return frame.to_numpy(dtype=np.float32)


def _sklearn(path: Path) -> Callable[[pd.DataFrame], Any]:
    _require("sklearn", "sklearn", "scikit-learn")
    if path.suffix == ".skops":
        sio = _require("sklearn", "skops.io", "skops")
        model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    else:
        joblib = _require("sklearn", "joblib")
        model = joblib.load(path)
    names = getattr(model, "feature_names_in_", None)
    return (lambda f: model.predict(f)) if names is not None else (lambda f: model.predict(f.to_numpy()))


def _onnx(path: Path) -> Callable[[pd.DataFrame], Any]:
    ort = _require("onnx", "onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return lambda f: session.run(None, {input_name: _matrix(f)})[0]


def _torchscript(path: Path) -> Callable[[pd.DataFrame], Any]:
    torch = _require("torchscript", "torch")
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def call(frame: pd.DataFrame) -> Any:
        with torch.inference_mode():
            return module(torch.from_numpy(_matrix(frame))).numpy()
    return call


def _torch_export(path: Path) -> Callable[[pd.DataFrame], Any]:
    torch = _require("torch_export", "torch")
    module = torch.export.load(str(path)).module()

    def call(frame: pd.DataFrame) -> Any:
        with torch.inference_mode():
            return module(torch.from_numpy(_matrix(frame))).numpy()
    return call


def _xgboost(path: Path) -> Callable[[pd.DataFrame], Any]:
    xgb = _require("xgboost", "xgboost")
    booster = xgb.Booster()
    booster.load_model(str(path))
    return lambda f: booster.predict(xgb.DMatrix(_matrix(f)))


def _lightgbm(path: Path) -> Callable[[pd.DataFrame], Any]:
    lgb = _require("lightgbm", "lightgbm")
    booster = lgb.Booster(model_file=str(path))
    return lambda f: booster.predict(_matrix(f))


def _mlflow(path: Path) -> Callable[[pd.DataFrame], Any]:
    pyfunc = _require("mlflow", "mlflow.pyfunc", "mlflow-skinny")
    model = pyfunc.load_model(str(path))
    return lambda f: model.predict(f)


def _keras(path: Path) -> Callable[[pd.DataFrame], Any]:
    """A Keras 3 ``.keras`` file. Keras picks its backend at import: without ``KERAS_BACKEND`` and
    without TensorFlow, torch (which serves the other torch flavours) is the one chosen."""
    if "keras" not in sys.modules and "KERAS_BACKEND" not in os.environ \
            and importlib.util.find_spec("tensorflow") is None and importlib.util.find_spec("torch") is not None:
        os.environ["KERAS_BACKEND"] = "torch"
    keras = _require("keras", "keras")
    model = keras.saving.load_model(str(path))
    return lambda f: np.asarray(model.predict(_matrix(f), verbose=0))


def _transformers(path: Path) -> Callable[[pd.DataFrame], Any]:
    """A ``save_pretrained`` directory; the class comes from its config's ``architectures``. Each
    row is a sequence of token ids (the columns, in order); the answer is the model's logits
    (per row; for a language model, the next-token logits after the row's last token)."""
    transformers = _require("transformers", "transformers")
    torch = _require("transformers", "torch")
    config = transformers.AutoConfig.from_pretrained(str(path))
    architecture = (config.architectures or [None])[0]
    model_class = getattr(transformers, architecture, None) if architecture else None
    if model_class is None:
        raise InvalidInput(f"{path.name}: config.json names no architecture transformers has ({architecture!r})")
    model = model_class.from_pretrained(str(path)).eval()

    def call(frame: pd.DataFrame) -> Any:
        ids = torch.from_numpy(frame.to_numpy(dtype=np.int64))
        with torch.inference_mode():
            logits = model(input_ids=ids).logits
        return (logits[:, -1, :] if logits.ndim == 3 else logits).numpy()
    return call


def _python(path: Path) -> Callable[[pd.DataFrame], Any]:
    """A module file with ``predict(batch: DataFrame)``; loaded under a name of its own so two
    versions of one model can be held at once during a switch."""
    name = f"cairn_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{path.name} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    predict = getattr(module, "predict", None)
    if not callable(predict):
        raise InvalidInput(f"{path.name} has no predict(batch) function")
    return predict


LOADERS: dict[str, Callable[[Path], Callable[[pd.DataFrame], Any]]] = {
    "sklearn": _sklearn, "onnx": _onnx, "torchscript": _torchscript, "torch_export": _torch_export,
    "xgboost": _xgboost, "lightgbm": _lightgbm, "mlflow": _mlflow, "python": _python,
    "keras": _keras, "transformers": _transformers,
}


def load_flavour(flavour: str, path: Path) -> Callable[[pd.DataFrame], Any]:
    """The predict function of the model file (or MLflow directory) at ``path``."""
    if flavour not in LOADERS:
        raise InvalidInput(f"unknown flavour {flavour!r}; one of {', '.join(FLAVOURS)}")
    return LOADERS[flavour](path)


def flavour_of_path(path: Path) -> str:
    """Guess a flavour from a file name (or an MLflow model directory)."""
    if path.is_dir():
        if (path / "MLmodel").exists():
            return "mlflow"
        raise InvalidInput(f"{path} is a directory without an MLmodel file; name a model file")
    by_suffix = {".pkl": "sklearn", ".joblib": "sklearn", ".skops": "sklearn", ".onnx": "onnx",
                 ".pt": "torchscript", ".pt2": "torch_export", ".ubj": "xgboost", ".xgb": "xgboost",
                 ".lgb": "lightgbm", ".py": "python", ".keras": "keras"}
    if path.suffix in by_suffix:
        return by_suffix[path.suffix]
    raise InvalidInput(f"cannot tell the flavour of {path.name}; pass flavour= ({', '.join(FLAVOURS)})")
