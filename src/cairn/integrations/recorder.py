"""What every framework integration shares: the run it logs into, params flattened into keys the
registry accepts, per-step metrics queued on the run's background sender, and the final model.

Nothing here sends a request from the training loop: :meth:`Recorder.log_metrics` only appends to
the run's :class:`~cairn.sdk.metrics.MetricsLogger` buffer, whose own threads ship batches. Params
(once, at the start) and the model (once, at the end) are the only synchronous requests.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from numbers import Real
from types import ModuleType
from typing import TYPE_CHECKING, Any

from cairn.kernel.errors import MissingFramework

if TYPE_CHECKING:
    from cairn.sdk.client import Client
    from cairn.sdk.metrics import MetricsLogger
    from cairn.sdk.run import ActiveRun

log = logging.getLogger(__name__)

_NOT_KEY = re.compile(r"[^A-Za-z0-9_\-./: ]")
_MAX_VALUE = 8000  # the registry's longest param value (cairn.kernel.ids.check_text)


def require(integration: str, module: str, package: str | None = None) -> ModuleType:
    """Import a framework for an integration, or say which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = err.name or ""
        if missing and not module.startswith(missing):
            raise  # the framework is there; something it needs is not (said by the error itself)
        raise MissingFramework(integration, package or module) from None


def key_of(name: object) -> str:
    """A param or metric key the registry accepts: other characters become ``_``, at most 250."""
    key = _NOT_KEY.sub("_", str(name))[:250]
    return key or "_"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        try:
            text = json.dumps(value, default=str, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings become dotted keys; ``None`` values are left out (the registry needs a
    value); everything else is text (lists and objects as JSON)."""
    out: dict[str, str] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, f"{key}."))
        elif value is not None:
            out[key_of(key)] = _text(value)
    return out


def as_number(value: Any) -> float | None:
    """A metric value as a float: Python and NumPy numbers, 0-d tensors and arrays (``.item()``);
    None for anything else (a string in a log dict is not a metric)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            got = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return float(got) if isinstance(got, Real) and not isinstance(got, bool) else None
    return None


class Recorder:
    """The run one integration logs into: ``run`` when given, else a run it starts on first use in
    ``project`` (or the job's project inside a Cairn job) and finishes in :meth:`close`."""

    def __init__(self, integration: str, run: ActiveRun | None = None, *, project: str | None = None,
                 experiment: str = "default", run_name: str | None = None, model_name: str | None = None,
                 log_models: bool = True, system_metrics: bool = False, client: Client | None = None) -> None:
        self.integration = integration
        self.client = client
        self._run = run
        self._owns_run = run is None
        self.project = project or os.environ.get("CAIRN_PROJECT")
        self.experiment = experiment
        self.run_name = run_name
        self.model_name = model_name or f"{integration}-model"
        self.log_models = log_models
        self.system_metrics = system_metrics
        self.model_version: dict[str, Any] | None = None
        self._keys: dict[str, str] = {}  # framework name -> registry key, so a step does no regex work
        self._metrics: MetricsLogger | None = None
        self._sampling = False

    @property
    def run(self) -> ActiveRun:
        """The run, started now if this recorder makes its own."""
        if self._run is None:
            from cairn.sdk.run import start_run

            if self.project is None and not os.environ.get("CAIRN_RUN_ID"):
                raise ValueError(f"the {self.integration} integration needs run= or project= (or a Cairn job)")
            self._run = start_run(self.project, self.experiment, name=self.run_name, system_metrics=False,
                                  client=self.client)
        if self.system_metrics and not self._sampling:
            self._run.start_system_metrics()  # the run's one sampler (a no-op if it samples already)
            self._sampling = True
        return self._run

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params once: keys the run already has with the same value are skipped; a different
        value is a warning, not an error, so a second ``fit`` into one run still trains."""
        run = self.run
        have = run.record.get("params") or {}
        fresh: dict[str, str] = {}
        for key, value in flatten_params(params).items():
            if key not in have:
                fresh[key] = value
            elif have[key] != value:
                log.warning("%s integration: param %r is already %r on run %s; not logging %r",
                            self.integration, key, have[key], run.id, value)
        if fresh:
            run.log_params(fresh)

    def log_metrics(self, values: Mapping[str, Any], step: int, prefix: str = "") -> None:
        """Queue the numeric values at ``step`` (non-numbers and non-finite values are left out)."""
        points: dict[str, float] = {}
        keys = self._keys
        for name, value in values.items():
            number = as_number(value)
            if number is None or not math.isfinite(number):
                continue
            full = prefix + name if prefix else name
            key = keys.get(full)
            if key is None:
                key = keys[full] = key_of(full)
            points[key] = number
        if points:
            if self._metrics is None:
                self._metrics = self.run.metrics
            self._metrics.log_many(points, int(step))

    def log_model(self, model: Any, *, flavour: str | None = None, input_example: Any = None) -> dict[str, Any] | None:
        """Register ``model`` (an object or a model file/dir) as a new version of ``model_name``
        from this run, unless ``log_models`` is off; the version record is kept."""
        if not self.log_models:
            return None
        self.model_version = self.run.log_model(model, self.model_name, flavour=flavour, input_example=input_example)
        return self.model_version

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        self.run.log_artifact(path, name)

    def close(self, error: BaseException | None = None) -> None:
        """Finish a run this recorder started (``failed`` with ``error``); a run passed in is
        left to its owner. Either way the queued metrics are on their way."""
        if self._run is None:
            return
        if self._owns_run:
            run, self._run, self._metrics, self._sampling = self._run, None, None, False
            run.__exit__(type(error) if error else None, error, None)


def given_or_own(integration: str, recorder: Recorder | None, run: ActiveRun | None, **options: Any) -> tuple[Recorder, bool]:
    """A callback's recorder: the one it was given, or one of its own over ``run`` (``options`` as
    :class:`Recorder` takes them); and whether the callback closes it (only one of its own)."""
    if recorder is not None:
        return recorder, False
    return Recorder(integration, run, **options), True
