"""Pipelines (CI/CD for ML): the pipeline file's format, its validation and its DAG, and the
trigger primitives (git pushes, events of record, schedules: ``triggers``, ``cron``). Pure code, no
I/O beyond reading a file: the engine, the CLI and the API all parse a pipeline with
:func:`load_pipeline` and get the same :class:`Pipeline` (docs/pipelines.md)."""

from cairn.pipelines.spec import Pipeline, Step
from cairn.pipelines.validate import PipelineError, Problem, load_pipeline

__all__ = ["Pipeline", "PipelineError", "Problem", "Step", "load_pipeline"]
