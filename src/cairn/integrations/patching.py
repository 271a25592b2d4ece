"""``cairn.autolog()``: patch each framework's training entry point so that an unchanged training
script logs into Cairn through the explicit callbacks of ``cairn.integrations``.

What is patched (and undone by ``autolog(disable=True)``):

- scikit-learn: ``fit`` of every estimator class (outermost call only: a Pipeline or a search
  logs once, not once per inner fit), then :func:`cairn.integrations.sklearn.log_fit`;
- Lightning: ``Trainer.fit`` adds a :class:`~cairn.integrations.lightning.CairnLogger` and its model
  callback (the model is traced with the module's ``example_input_array`` when it has one);
- Transformers: ``Trainer.train`` adds a :class:`~cairn.integrations.transformers.CairnCallback`;
- Keras: ``Model.fit`` adds a :class:`~cairn.integrations.keras.CairnCallback`;
- XGBoost and LightGBM: ``train`` (which their scikit-learn wrappers call too) adds their callback.

Each patched call logs into ``run`` when one was given, else into a run of its own, started in
``project`` for the call and finished (``failed`` on an exception) when the call returns.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cairn.integrations.recorder import Recorder
from cairn.kernel.errors import MissingFramework

if TYPE_CHECKING:
    from cairn.sdk.client import Client
    from cairn.sdk.run import ActiveRun

log = logging.getLogger(__name__)

# integration name -> the module whose presence means the framework is installed
FRAMEWORKS = {"sklearn": "sklearn", "lightning": "lightning", "transformers": "transformers", "keras": "keras",
              "xgboost": "xgboost", "lightgbm": "lightgbm"}


@dataclass
class Settings:
    run: ActiveRun | None = None
    project: str | None = None
    experiment: str = "default"
    log_models: bool = True
    system_metrics: bool = False
    client: Client | None = None

    def recorder(self, integration: str) -> Recorder:
        return Recorder(integration, self.run, project=self.project, experiment=self.experiment,
                        log_models=self.log_models, system_metrics=self.system_metrics, client=self.client)


_settings = Settings()
_patches: dict[str, list[tuple[Any, str, Any]]] = {}  # integration -> (owner, attribute, original)
_depth = threading.local()  # nested patched calls (a Pipeline's steps) log only at the outermost


_INHERITED = object()  # the class had no attribute of its own: undoing deletes ours


def _patch(integration: str, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, name)
    if getattr(original, "__cairn_original__", None) is not None:
        return  # already ours (patched through another name)
    wrapper = make(original)
    wrapper.__cairn_original__ = original
    own = owner.__dict__.get(name, _INHERITED) if isinstance(owner, type) else original
    setattr(owner, name, wrapper)
    _patches.setdefault(integration, []).append((owner, name, own))


@contextmanager
def _outermost() -> Iterator[bool]:
    depth = getattr(_depth, "value", 0)
    _depth.value = depth + 1
    try:
        yield depth == 0
    finally:
        _depth.value = depth


def _logged_call(integration: str, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 before: Callable[[Recorder, tuple[Any, ...], dict[str, Any]], Any],
                 after: Callable[[Recorder, Any, Any], Any] | None = None) -> Any:
    """Run ``original`` with a recorder: ``before`` may change the arguments (adds a callback)
    and returns a token for ``after``, which sees the result; the recorder is closed either way."""
    with _outermost() as outermost:
        if not outermost:
            return original(*args, **kwargs)
        rec = _settings.recorder(integration)
        try:
            token = before(rec, args, kwargs)
            result = original(*args, **kwargs)
            if after is not None:
                after(rec, token, result)
        except BaseException as err:
            rec.close(err)
            raise
        rec.close()
        return result


def _sklearn() -> None:
    from sklearn.utils import all_estimators

    from cairn.integrations.sklearn import log_fit

    owners = {next(c for c in cls.__mro__ if "fit" in c.__dict__) for _, cls in all_estimators()
              if hasattr(cls, "fit")}
    for owner in sorted(owners, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        def make(original: Any) -> Any:
            @functools.wraps(original)
            def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
                X = args[0] if args else kwargs.get("X")
                y = args[1] if len(args) > 1 else kwargs.get("y")
                return _logged_call("sklearn", original, (self, *args), kwargs, lambda rec, a, k: None,
                                    lambda rec, _, result: log_fit(None, self, X, y, recorder=rec,
                                                                   sample_weight=kwargs.get("sample_weight")))
            return fit
        _patch("sklearn", owner, "fit", make)


def _lightning() -> None:
    import lightning.pytorch as pl

    from cairn.integrations.lightning import CairnLogger

    def before(rec: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        trainer, module = args[0], (args[1] if len(args) > 1 else kwargs.get("model"))
        if any(isinstance(existing, CairnLogger) for existing in trainer.loggers):
            rec.log_models = False  # the script logs on its own; do not log twice
            return
        logger = CairnLogger(recorder=rec, input_example=getattr(module, "example_input_array", None))
        trainer.loggers = [*trainer.loggers, logger]
        trainer.callbacks.append(logger.model_callback())

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def fit(*args: Any, **kwargs: Any) -> Any:
            return _logged_call("lightning", original, args, kwargs, before)
        return fit
    _patch("lightning", pl.Trainer, "fit", make)


def _transformers() -> None:
    import transformers

    from cairn.integrations.transformers import CairnCallback

    def before(rec: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        trainer = args[0]
        callback = CairnCallback(recorder=rec)
        trainer.add_callback(callback)
        return trainer, callback

    def after(rec: Recorder, token: Any, result: Any) -> None:
        trainer, callback = token
        trainer.remove_callback(callback)

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def train(*args: Any, **kwargs: Any) -> Any:
            return _logged_call("transformers", original, args, kwargs, before, after)
        return train
    _patch("transformers", transformers.Trainer, "train", make)


def _keras() -> None:
    import keras

    from cairn.integrations.keras import CairnCallback

    def before(rec: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        x: Any = args[1] if len(args) > 1 else kwargs.get("x")
        example = x[:5] if hasattr(x, "shape") else None
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), CairnCallback(recorder=rec, input_example=example)]

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def fit(*args: Any, **kwargs: Any) -> Any:
            return _logged_call("keras", original, args, kwargs, before)
        return fit
    _patch("keras", keras.Model, "fit", make)


def _xgboost() -> None:
    import xgboost
    import xgboost.sklearn
    import xgboost.training

    from cairn.integrations.xgboost import CairnCallback

    def before(rec: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        params = args[0] if args else kwargs.get("params") or {}
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), CairnCallback(recorder=rec, params=dict(params))]

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def train(*args: Any, **kwargs: Any) -> Any:
            return _logged_call("xgboost", original, args, kwargs, before)
        return train
    for owner in (xgboost.training, xgboost, xgboost.sklearn):
        _patch("xgboost", owner, "train", make)


def _lightgbm() -> None:
    import lightgbm
    import lightgbm.engine
    import lightgbm.sklearn

    from cairn.integrations.lightgbm import CairnCallback

    def before(rec: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CairnCallback:
        callback = CairnCallback(recorder=rec, log_model_at_end=False)
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), callback]
        return callback

    def after(rec: Recorder, callback: Any, booster: Any) -> None:
        callback.log_model(booster)  # after train: right with early stopping too

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def train(*args: Any, **kwargs: Any) -> Any:
            return _logged_call("lightgbm", original, args, kwargs, before, after)
        return train
    for owner in (lightgbm.engine, lightgbm, lightgbm.sklearn):
        _patch("lightgbm", owner, "train", make)


_INSTALLERS: dict[str, Callable[[], None]] = {
    "sklearn": _sklearn, "lightning": _lightning, "transformers": _transformers, "keras": _keras,
    "xgboost": _xgboost, "lightgbm": _lightgbm,
}


def _unpatch(integration: str) -> None:
    for owner, name, original in reversed(_patches.pop(integration, [])):
        if original is _INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


def autolog(frameworks: Iterable[str] | None = None, *, disable: bool = False, run: ActiveRun | None = None,
            project: str | None = None, experiment: str = "default", log_models: bool = True,
            system_metrics: bool = False, client: Client | None = None) -> list[str]:
    """Log every training call of ``frameworks`` (default: every supported one that is installed)
    into ``run``, or into a run per call in ``project`` (through ``client``, default: ``CAIRN_URL``
    and your token). ``disable=True`` undoes the patches.
    Returns the frameworks now patched (or, with ``disable``, unpatched). A framework named in
    ``frameworks`` that is missing raises :class:`~cairn.kernel.errors.MissingFramework`."""
    from cairn.integrations.recorder import require

    names = list(frameworks) if frameworks is not None else None
    for name in names or ():
        if name not in FRAMEWORKS:
            raise ValueError(f"autolog has no integration {name!r}; one of {', '.join(FRAMEWORKS)}")
    if disable:
        chosen = names if names is not None else list(_patches)
        for name in chosen:
            _unpatch(name)
        return chosen
    global _settings
    _settings = Settings(run, project, experiment, log_models, system_metrics, client)
    done: list[str] = []
    for name in names if names is not None else list(FRAMEWORKS):
        if name in _patches:
            done.append(name)
            continue
        if names is None and importlib.util.find_spec(FRAMEWORKS[name]) is None:
            continue
        try:
            require(name, FRAMEWORKS[name])
            _INSTALLERS[name]()
        except (ImportError, MissingFramework) as err:  # e.g. keras with no backend installed
            if names is not None:
                raise
            log.warning("autolog: skipping %s (%s)", name, err)
            continue
        done.append(name)
    return done
