"""``cairn pipelines``: pipelines (CI/CD for ML). ``validate`` and ``show FILE`` check and draw a
pipeline file here, without a platform: every problem with its line and column, before anything
runs. ``run``, ``list``, ``show RUN_ID``, ``logs``, ``cancel``, ``approve`` and ``reject`` talk to
the pipelines service (cairn.cli.pipeline_runs); ``register`` and ``definitions`` manage registered
pipelines (cairn.cli.pipeline_definitions)."""

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


@pipelines.command("show")
@click.argument("target", default="cairn/pipeline.yaml")
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot"]), default="text", show_default=True,
              help="text for a terminal; mermaid (a flowchart for Markdown) or dot (Graphviz) to paste elsewhere.")
@click.option("--ascii", "ascii_only", is_flag=True, help="Draw text with ASCII characters only, without colour.")
@click.option("--project", "-p", envvar="CAIRN_PROJECT", help="Project of a RUN_ID (or $CAIRN_PROJECT).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output (the steps and the drawing).")
@click.pass_context
def show(click_ctx: click.Context, target: str, fmt: str, ascii_only: bool, project: str | None,
         as_json: bool) -> None:
    """Draw a pipeline's DAG: its steps by level, each with its kind and the steps it needs.

    TARGET is a pipeline file (default cairn/pipeline.yaml), or a pipeline run id with -p PROJECT,
    drawn with each step's live state (cairn pipelines show -p vision RUN_ID). An invalid file
    prints FILE:LINE:COL: message per problem and exits 1.

    Example: cairn pipelines show cairn/pipeline.yaml --format mermaid
    """
    from rich.console import Console

    if is_run_id(target):
        from cairn.cli.pipeline_runs import show_run

        encoding = Console().encoding
        show_run(click_ctx, target, project, fmt, as_json, ascii_only or not _can_encode(encoding, "─←✓○●✗⊘↺⏸"))
        return
    file = Path(target)
    from cairn.cli.pipeline_runs import load_or_exit
    from cairn.pipelines.render import (
        levels_of,
        render_dot,
        render_mermaid,
        render_rich,
        render_text,
    )

    as_json = as_json or bool(getattr(click_ctx.obj, "as_json", False))
    pipeline = load_or_exit(file)
    console = Console(soft_wrap=True, highlight=False)
    # a terminal that cannot print the box-drawing characters gets the ASCII drawing
    ascii_only = ascii_only or not _can_encode(console.encoding, "─←✓○●✗⊘↺⏸")
    if fmt == "mermaid":
        drawing = render_mermaid(pipeline)
    elif fmt == "dot":
        drawing = render_dot(pipeline)
    else:
        drawing = render_text(pipeline, width=console.width, ascii_only=ascii_only)
    if as_json:
        level = {step_id: k for k, ids in enumerate(levels_of(pipeline)) for step_id in ids}
        steps = [{"id": s.id, "kind": s.kind, "needs": list(s.needs), "level": level[s.id], "state": None}
                 for s in pipeline.steps]
        click.echo(json.dumps({"file": str(file), "name": pipeline.name, "digest": pipeline.digest(),
                               "levels": levels_of(pipeline), "steps": steps, "format": fmt,
                               "drawing": drawing}, indent=2))
    elif fmt == "text" and not ascii_only:
        console.print(render_rich(pipeline, width=console.width), end="")
    else:
        click.echo(drawing, nl=False)


def is_run_id(target: str) -> bool:
    """Whether ``show``'s argument names a run rather than a file: no such file, no path
    separator and no YAML suffix (run ids are bare hex/uuid strings)."""
    return (not Path(target).exists() and "/" not in target and "\\" not in target
            and not target.endswith((".yaml", ".yml", ".json")))


def _can_encode(encoding: str, text: str) -> bool:
    """Whether an output in ``encoding`` can print ``text`` (a C-locale pipe or an old console cannot)."""
    try:
        text.encode(encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def _add_platform_commands() -> None:
    """The commands that talk to the platform live in sibling modules (this one stays readable)."""
    from cairn.cli.pipeline_definitions import definitions, register
    from cairn.cli.pipeline_runs import approve, cancel, logs, run, runs_list
    from cairn.cli.pipeline_runs import reject as reject_step

    for command in (run, runs_list, logs, cancel, approve, reject_step, register, definitions):
        pipelines.add_command(command)


_add_platform_commands()
