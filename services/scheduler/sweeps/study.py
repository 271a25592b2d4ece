"""The optuna study behind a sweep, kept in memory and rebuilt from the sweep's events.

Live, the controller asks this study for a trial's params and shows it intermediate values; every
such call is recorded as a sweep event. On a restart the same events are folded into a fresh
``InMemoryStorage`` study in log order: started trials are added with their recorded params and
optuna's bookkeeping (``system_attrs``, e.g. the grid point), reports are shown to the pruner again
(so rung bookkeeping of ASHA comes out the same), finished trials are told their state. The
rebuilt study therefore suggests what the old one would have and never re-runs a finished trial.

Samplers other than grid are made afresh for each trial with a seed derived from the sweep's seed
and the trial number, so a suggestion depends only on the seed and the history, never on how
many suggestions a process made before it restarted.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    SuccessiveHalvingPruner,
)
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, Trial, TrialState, create_trial

from cairn.services.scheduler.sweeps.spec import SweepSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

TPE_STARTUP_TRIALS = 10


class SweepGridSampler(GridSampler):
    """optuna's grid sampler without its ``study.stop()`` once the grid is spent: a sweep runs in
    ask-and-tell mode and stops itself when its trial budget (the grid's size) is used."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        return None


def distributions(spec: SweepSpec) -> dict[str, BaseDistribution]:
    """optuna distributions for the spec's parameters (grid search: the grid's values), in name
    order: the event log stores the spec with sorted keys, and the order params are sampled in
    must not depend on whether a controller was made from the request or from the log."""
    out: dict[str, BaseDistribution] = {}
    for name, p in sorted(spec.parameters.items()):
        if spec.method == "grid":
            out[name] = CategoricalDistribution(p.grid_values() or [])
        elif p.type == "categorical":
            out[name] = CategoricalDistribution(p.values or [])
        elif p.type == "int":
            assert p.min is not None and p.max is not None
            out[name] = IntDistribution(int(p.min), int(p.max), log=p.log, step=int(p.step or 1))
        else:
            assert p.min is not None and p.max is not None
            out[name] = FloatDistribution(p.min, p.max, log=p.log, step=p.step)
    return out


def trial_seed(spec: SweepSpec, number: int) -> int:
    return int((spec.seed * 1_000_003 + number) % 2**32)


def make_sampler(spec: SweepSpec, number: int) -> BaseSampler:
    if spec.method == "grid":
        return SweepGridSampler(spec.grid(), seed=spec.seed)
    if spec.method == "random":
        return RandomSampler(seed=trial_seed(spec, number))
    return TPESampler(seed=trial_seed(spec, number), n_startup_trials=TPE_STARTUP_TRIALS,
                      constant_liar=True)


def make_pruner(spec: SweepSpec) -> BasePruner:
    rule = spec.early_stopping
    if rule is None:
        return NopPruner()
    if rule.type == "median":
        return MedianPruner(n_startup_trials=rule.warmup_trials, n_warmup_steps=rule.min_steps,
                            interval_steps=rule.interval_steps)
    if rule.type == "asha":
        return SuccessiveHalvingPruner(min_resource=rule.min_resource, reduction_factor=rule.reduction_factor)
    return HyperbandPruner(min_resource=rule.min_resource, max_resource=rule.max_resource or "auto",
                           reduction_factor=rule.reduction_factor)


def _finite(value: float | None) -> float:
    return float("nan") if value is None else float(value)


class SweepStudy:
    """One sweep's optuna study. Trial numbers are the sweep's trial numbers."""

    def __init__(self, spec: SweepSpec, sweep_id: str) -> None:
        self.spec = spec
        self.distributions = distributions(spec)
        self._grid_sampler = make_sampler(spec, 0) if spec.method == "grid" else None
        direction = optuna.study.StudyDirection.MINIMIZE if spec.metric.goal == "minimize" \
            else optuna.study.StudyDirection.MAXIMIZE
        self.study = optuna.create_study(storage=InMemoryStorage(), study_name=f"sweep-{sweep_id}",
                                         direction=direction, sampler=make_sampler(spec, 0),
                                         pruner=make_pruner(spec))
        self._trials: dict[int, Trial] = {}

    @property
    def size(self) -> int:
        """How many trials the study holds (the next trial's number)."""
        return len(self.study.get_trials(deepcopy=False))

    def _use_sampler_for(self, number: int) -> None:
        self.study.sampler = self._grid_sampler or make_sampler(self.spec, number)

    # --- live: the study decides --------------------------------------------------------------

    def ask(self) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """A new trial: its number, params and optuna's bookkeeping to record with it."""
        self._use_sampler_for(self.size)
        trial = self.study.ask(self.distributions)
        self._trials[trial.number] = trial
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        return trial.number, dict(trial.params), dict(frozen.system_attrs)

    def report(self, number: int, points: list[tuple[int, float | None]]) -> bool:
        """Show the pruner new intermediate values; True if the trial should stop early."""
        trial = self._trials[number]
        for step, value in points:
            trial.report(_finite(value), step)
        if isinstance(self.study.pruner, NopPruner) or not points:
            return False
        self._use_sampler_for(number)
        return trial.should_prune()

    # --- both: record an outcome ------------------------------------------------------------------

    def finish(self, number: int, state: str, value: float | None) -> None:
        """Tell the study how a trial ended: complete (with its value), pruned, failed, cancelled."""
        self._trials.pop(number, None)
        if state == "complete" and value is not None and math.isfinite(value):
            self.study.tell(number, value)
        elif state == "pruned":
            self.study.tell(number, state=TrialState.PRUNED)
        else:
            self.study.tell(number, state=TrialState.FAIL)

    # --- replay: the log decides -------------------------------------------------------------------

    def add_started(self, number: int, params: dict[str, Any], system_attrs: dict[str, Any]) -> None:
        """Add a trial the log says was started (its params as recorded)."""
        if number != self.size:
            raise ValueError(f"trial {number} arrives out of order: the study holds {self.size} trials")
        self.study.add_trial(create_trial(state=TrialState.RUNNING, params=params,
                                          distributions={k: self.distributions[k] for k in params},
                                          system_attrs=system_attrs))
        trial_id = self.study.get_trials(deepcopy=False)[number]._trial_id
        self._use_sampler_for(number)
        self._trials[number] = Trial(self.study, trial_id)

    def replay_report(self, number: int, points: list[tuple[int, float | None]]) -> None:
        """Show the pruner what it was shown live (its decision was recorded separately)."""
        self.report(number, points)

    def best(self) -> tuple[int, float] | None:
        try:
            trial = self.study.best_trial
        except ValueError:
            return None
        assert trial.value is not None
        return trial.number, trial.value
