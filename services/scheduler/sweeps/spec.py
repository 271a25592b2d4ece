"""The sweep spec: what to search, how, for which metric, within which budget. Checked once here
and stored normalised in ``sweep.created``, so every reader sees the same shape.

A YAML example is in docs/sweeps.md. Parameters are one of:

- ``{values: [...]}`` or ``{type: categorical, values: [...]}``: a choice among values;
- ``{type: float, min, max, log?, step?}`` (``uniform``; ``log_uniform`` is ``float`` with ``log``);
- ``{type: int, min, max, log?, step?}``.

Grid search needs a finite set for every parameter: ``values``, an ``int`` range, or a ``float``
range with a ``step``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cairn.kernel.errors import InvalidInput
from cairn.kernel.ids import (
    FREE_NAME_PATTERN,
    FREE_TEXT_PATTERN,
    PROJECT_NAME_PATTERN,
    anchored,
    field_pattern,
)

SWEEP_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
PARAM = r"[A-Za-z0-9_.-]{1,250}"  # trial params become job params (cairn.services.scheduler.spec)
PARAM_RE = anchored(PARAM)
MAX_GRID = 10_000
MAX_TRIALS = 10_000
ParamValue = str | int | float | bool
JOB_FIELDS = ("command", "code", "requirements", "resources", "datasets", "params", "seed", "queue",
              "priority", "timeout", "max_retries", "nodes", "env")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metric(Strict):
    name: str = Field(pattern=field_pattern(PARAM), description="the metric key the trial's run logs")
    goal: Literal["minimize", "maximize"] = "minimize"


class Parameter(Strict):
    type: Literal["categorical", "float", "int", "uniform", "log_uniform"] | None = None
    values: list[ParamValue] | None = Field(default=None, min_length=1, max_length=1000)
    min: float | None = None
    max: float | None = None
    step: float | None = Field(default=None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _normalise(self) -> Parameter:
        if self.type is None:
            if self.values is None:
                raise ValueError("give 'values' or a 'type' (categorical, float, int)")
            self.type = "categorical"
        if self.type == "uniform":
            self.type = "float"
        elif self.type == "log_uniform":
            self.type, self.log = "float", True
        if self.type == "categorical":
            if self.values is None:
                raise ValueError("a categorical parameter needs 'values'")
            if self.min is not None or self.max is not None or self.step is not None or self.log:
                raise ValueError("a categorical parameter takes only 'values'")
            if len({(type(v), v) for v in self.values}) != len(self.values):
                raise ValueError("'values' has duplicates")
            if any(isinstance(v, float) and not math.isfinite(v) for v in self.values):
                raise ValueError("'values' must be finite numbers, strings or booleans")
            return self
        if self.values is not None:
            raise ValueError(f"a {self.type} range takes min and max, not 'values' (use type: categorical)")
        if self.min is None or self.max is None:
            raise ValueError(f"a {self.type} parameter needs 'min' and 'max'")
        if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.min > self.max:
            raise ValueError(f"'min' must not exceed 'max' (got min={self.min}, max={self.max})")
        if self.log and self.min <= 0:
            raise ValueError(f"a log-scaled range needs min > 0 (got {self.min})")
        if self.step is not None and not math.isfinite(self.step):
            raise ValueError(f"'step' must be a finite number (got {self.step})")
        if self.log and self.step is not None:
            raise ValueError("'step' and 'log' cannot be combined")
        if self.type == "int":
            for name, value in (("min", self.min), ("max", self.max), ("step", self.step)):
                if value is not None and value != int(value):
                    raise ValueError(f"an int parameter needs a whole '{name}' (got {value})")
        return self

    def grid_count(self) -> int | None:
        """How many values grid search would try (None for a continuous range), without making
        them: a range like 0..10**18 is counted, not listed."""
        if self.values is not None:
            return len(self.values)
        assert self.min is not None and self.max is not None
        if self.type == "int":
            return (int(self.max) - int(self.min)) // int(self.step or 1) + 1
        if self.step is None:
            return None
        ratio = (self.max - self.min) / self.step
        return int(math.floor(ratio + 1e-9)) + 1 if math.isfinite(ratio) else MAX_GRID + 1

    def grid_values(self) -> list[ParamValue] | None:
        """Every value grid search tries, or None for a continuous range (call grid_count first)."""
        count = self.grid_count()
        if count is None:
            return None
        if self.values is not None:
            return list(self.values)
        assert self.min is not None
        if self.type == "int":
            return [int(self.min) + i * int(self.step or 1) for i in range(count)]
        assert self.step is not None
        return [round(self.min + i * self.step, 12) for i in range(count)]

    def sample_value(self) -> ParamValue:
        """Some value of the parameter (to check the job template with)."""
        if self.values is not None:
            return self.values[0]
        assert self.min is not None
        return int(self.min) if self.type == "int" else self.min


class Budget(Strict):
    max_trials: int | None = Field(default=None, ge=1, le=MAX_TRIALS)
    max_duration_s: float | None = Field(default=None, gt=0, description="wall time from creation")
    max_failed_trials: int | None = Field(default=None, ge=1, description="stop a sweep that keeps failing")


class EarlyStopping(Strict):
    type: Literal["median", "asha", "hyperband"]
    min_steps: int = Field(default=0, ge=0, description="median: steps a trial runs before it can be pruned")
    warmup_trials: int = Field(default=5, ge=0, description="median: finished trials before pruning starts")
    interval_steps: int = Field(default=1, ge=1, description="median: prune checks every N steps")
    min_resource: int = Field(default=1, ge=1, description="asha/hyperband: steps of the first rung")
    max_resource: int | None = Field(default=None, ge=1, description="hyperband: steps of a full trial")
    reduction_factor: int = Field(default=3, ge=2, le=100)

    @model_validator(mode="after")
    def _resources(self) -> EarlyStopping:
        if self.type == "hyperband" and self.max_resource is None:
            raise ValueError("hyperband needs 'max_resource' (the steps of a full trial)")
        if self.max_resource is not None and self.max_resource < self.min_resource:
            raise ValueError("'max_resource' must be at least 'min_resource'")
        return self


class JobTemplate(BaseModel):
    """The job every trial runs; its ``params`` are merged with the trial's (trial wins)."""

    model_config = ConfigDict(extra="forbid")
    command: str | list[str]
    code: dict[str, Any] | None = Field(default=None, description="a code snapshot record; the CLI makes it")
    requirements: list[str] = Field(default_factory=list)
    resources: dict[str, Any] = Field(default_factory=dict)
    datasets: list[str] = Field(default_factory=list)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    seed: int | None = None
    queue: str = "default"
    priority: int = 0
    timeout: float | None = None
    max_retries: int = 0
    nodes: int = 1
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        if value is None or value is False or (isinstance(value, str) and value.lower() == "none"):
            return None
        if isinstance(value, str):
            raise ValueError(f"code {value!r} is a folder: send the uploaded snapshot record instead "
                             "(`cairn sweeps create` uploads the folder for you), or 'none'")
        return value


class SweepSpec(Strict):
    name: str = Field(pattern=field_pattern(SWEEP_NAME))
    project: str | None = Field(default=None, pattern=PROJECT_NAME_PATTERN)
    experiment: str = Field(default="default", pattern=FREE_NAME_PATTERN)
    description: str = Field(default="", max_length=8000, pattern=FREE_TEXT_PATTERN)
    method: Literal["grid", "random", "bayes"]
    seed: int = Field(default=0, ge=0, lt=2**31)
    metric: Metric
    parameters: dict[str, Parameter] = Field(min_length=1, max_length=100)
    max_parallel: int = Field(default=1, ge=1, le=1000)
    budget: Budget = Field(default_factory=Budget)
    early_stopping: EarlyStopping | None = None
    job: JobTemplate

    @model_validator(mode="after")
    def _whole(self) -> SweepSpec:
        for name in self.parameters:
            if not PARAM_RE.match(name):
                raise ValueError(f"parameter name {name!r} is not valid: letters, digits, '_', '.', '-'")
        if self.method == "grid":
            size = 1
            for name, parameter in self.parameters.items():
                count = parameter.grid_count()
                if count is None:
                    raise ValueError(f"grid search needs a finite set for parameter {name!r}: give "
                                     "'values', an int range, or a float range with 'step'")
                size *= count
            if size > MAX_GRID:
                raise ValueError(f"the grid has {size} points; at most {MAX_GRID} are allowed")
        elif self.budget.max_trials is None and self.budget.max_duration_s is None:
            raise ValueError(f"{self.method} search needs a budget: set budget.max_trials "
                             "and/or budget.max_duration_s")
        return self

    def grid(self) -> dict[str, list[ParamValue]]:
        """The grid for grid search (every parameter's values)."""
        return {name: p.grid_values() or [] for name, p in self.parameters.items()}

    def grid_size(self) -> int:
        return math.prod(p.grid_count() or 0 for p in self.parameters.values())

    def max_trials(self) -> int | None:
        """The trial budget: the spec's, capped by the grid's size for grid search."""
        if self.method != "grid":
            return self.budget.max_trials
        return min(self.grid_size(), self.budget.max_trials or MAX_TRIALS)


def parse_sweep_spec(raw: Any, *, project: str | None = None) -> SweepSpec:
    """Check a sweep document; InvalidInput names the first field to fix (all in details)."""
    if not isinstance(raw, dict):
        raise InvalidInput("a sweep spec must be a mapping (YAML or JSON object)", details={"field": "(spec)"})
    if project is not None and raw.get("project") not in (None, project):
        raise InvalidInput(f"the spec names project {raw['project']!r} but it was sent to project "
                           f"{project!r}; remove 'project' or send it to that project",
                           details={"field": "project"})
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as err:
        problems = [{"field": ".".join(str(p) for p in e["loc"]) or "(spec)",
                     "message": e["msg"].removeprefix("Value error, ")} for e in err.errors()]
        first = problems[0]
        message = f"{first['field']}: {first['message']}"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s))"
        raise InvalidInput(message, details={"field": first["field"], "problems": problems}) from None
    if project is not None:
        spec.project = project
    return spec


def trial_job_spec(spec: SweepSpec, number: int, params: dict[str, Any]) -> dict[str, Any]:
    """The job spec of one trial: the template with the trial's params merged in (trial wins)."""
    job = spec.job.model_dump(mode="json", exclude_none=True)
    job["params"] = {**job.get("params", {}), **params}
    job["experiment"] = spec.experiment
    job["name"] = f"{spec.name}-{number}"
    return job
