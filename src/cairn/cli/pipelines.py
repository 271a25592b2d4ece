"""``cairn pipelines``: pipelines (CI/CD for ML). ``validate`` checks a pipeline file here, without
a platform: every problem with its line and column, before anything runs."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import click


@click.group()
def pipelines() -> None:
    """Pipelines: steps from data to a deployed model, triggered by a push, new data or an alert.

    Example: cairn pipelines validate cairn/pipeline.yaml
    """


@pipelines.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), default=Path("cairn/pipeline.yaml"))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def validate(click_ctx: click.Context, file: Path, as_json: bool) -> None:
    """Check a pipeline file: schema, the DAG (unknown steps, cycles), inputs and conditions.

    Prints FILE:LINE:COL: message per problem and exits 1, or a summary and exits 0.

    Example: cairn pipelines validate cairn/pipeline.yaml --json
    """
    from cairn.pipelines.validate import PipelineError, Problem, load_pipeline

    as_json = as_json or bool(getattr(click_ctx.obj, "as_json", False))
    try:
        pipeline = load_pipeline(file)
    except OSError as err:
        problems = [Problem(1, 1, f"cannot read the file: {err.strerror or err}")]
    except PipelineError as err:
        problems = err.problems
    else:
        kinds = Counter(step.kind for step in pipeline.steps)
        jobs = kinds.pop("job", 0)
        summary = {"file": str(file), "valid": True, "name": pipeline.name, "digest": pipeline.digest(),
                   "steps": len(pipeline.steps), "levels": len(pipeline.levels),
                   "jobs": jobs, "special_steps": dict(sorted(kinds.items())),
                   "order": list(pipeline.order)}
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        else:
            special = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
            click.echo(f"{file}: pipeline {pipeline.name!r} is valid: {len(pipeline.steps)} steps "
                       f"({jobs} jobs; special: {special}) in {len(pipeline.levels)} levels")
            click.echo(f"order: {' -> '.join(pipeline.order)}")
        return
    if as_json:
        click.echo(json.dumps({"file": str(file), "valid": False, "problems": [p.to_dict() for p in problems]},
                              indent=2))
    else:
        for problem in problems:
            click.echo(f"{file}:{problem.line}:{problem.column}: {problem.message}")
    sys.exit(1)
