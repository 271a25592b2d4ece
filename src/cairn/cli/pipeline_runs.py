"""``cairn pipelines run|list|show RUN_ID|logs|cancel|approve|reject``: pipeline runs on the
platform. ``run`` checks the file here first (problems with line numbers, nothing sent), then
uploads the code of the work tree around it, as ``cairn jobs submit`` does, so its steps run this
code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx

if TYPE_CHECKING:
    from cairn.pipelines.spec import Pipeline


def load_or_exit(file: Path) -> Pipeline:
    """The pipeline in ``file``; an unreadable or invalid file prints ``FILE:LINE:COL: message``
    per problem on stderr and exits 1 (nothing is sent)."""
    from cairn.pipelines.validate import PipelineError, load_pipeline

    try:
        return load_pipeline(file)
    except OSError as err:
        click.echo(f"{file}:1:1: cannot read the file: {err.strerror or err}", err=True)
        sys.exit(1)
    except PipelineError as err:
        for problem in err.problems:
            click.echo(f"{file}:{problem.line}:{problem.column}: {problem.message}", err=True)
        sys.exit(1)

RUN_COLUMNS = ["id", "pipeline", "status", "trigger_kind", "commit", "started_at", "finished_at"]
STEP_COLUMNS = ["id", "kind", "state", "attempt", "job_id", "reason"]

project_option = click.option("--project", "-p", required=True, envvar="CAIRN_PROJECT",
                              help="Project (or $CAIRN_PROJECT).")


def _json_flag(click_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    obj = click_ctx.find_object(Ctx)
    if value and obj is not None:
        obj.as_json = True


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` after the subcommand, same as ``cairn --json pipelines ...``."""
    return click.option("--json", "as_json", is_flag=True, expose_value=False, callback=_json_flag,
                        is_eager=True, help="Machine-readable JSON output.")(fn)


def parse_value(text: str) -> Any:
    """A --param value: a JSON number, bool, null, list or object when it reads as one (``5``,
    ``0.01``, ``1e-3``, ``true``), ``True``/``False`` as bools, anything else the string itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(pairs: tuple[str, ...], declared: dict[str, Any] | None = None) -> dict[str, Any]:
    """``k=v`` pairs as a params mapping; with ``declared`` (the pipeline's params), an unknown
    name is an error naming the ones there are. A value that is a string where the default is
    one stays a string (``--param tag=007`` with ``tag: "x"`` is ``"007"``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"a param looks like key=value, got {pair!r}", param_hint="--param")
        if declared is not None and key not in declared:
            known = ", ".join(sorted(declared)) or "(none)"
            raise click.BadParameter(f"the pipeline has no param {key!r}; its params: {known}",
                                     param_hint="--param")
        out[key] = value if declared is not None and isinstance(declared[key], str) else parse_value(value)
    return out


def _summary(view: dict[str, Any]) -> dict[str, Any]:
    return {k: view.get(k) for k in ("id", "project", "pipeline", "status", "started_at", "finished_at")}


def _print_run(ctx: Ctx, view: dict[str, Any]) -> None:
    if ctx.as_json:
        emit(ctx, view)
        return
    emit(ctx, _summary(view))
    emit(ctx, view.get("steps", []), columns=STEP_COLUMNS, title="steps")


@click.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@project_option
@click.option("--definition", help="Run this registered pipeline (cairn pipelines definitions list) instead of FILE.")
@click.option("--param", "params", multiple=True, help="key=value over the pipeline's params (repeatable; "
              "numbers and true/false are read as such).")
@click.option("--no-cache", is_flag=True, help="Run every step, even one an earlier run did with the same inputs.")
@click.option("--no-code", is_flag=True, help="Upload no code (steps run in the agent's own folder).")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 unless it succeeded.")
@json_option
@pass_ctx
@api_errors
def run(ctx: Ctx, file: Path | None, project: str, definition: str | None, params: tuple[str, ...],
        no_cache: bool, no_code: bool, wait: bool) -> None:
    """Start a run of a pipeline file (default cairn/pipeline.yaml) with the code of the git work
    tree around it (uncommitted changes included). The file is checked here first: problems print
    as FILE:LINE:COL: message, exit 1, and nothing is sent. --definition NAME runs a registered
    pipeline instead, with the code of the work tree around the current directory.

    Example: cairn pipelines run cairn/pipeline.yaml -p vision --param lr=0.02 --wait
    """
    from cairn.pipelines.validate import load_pipeline

    if definition is not None:
        if file is not None:
            raise click.UsageError("give FILE or --definition NAME, not both")
        registered = load_pipeline(ctx.client.pipeline_definition(project, definition)["definition"])
        view = ctx.client.start_registered_pipeline(project, definition, params=parse_params(params, registered.params),
                                                    no_cache=no_cache, code=False if no_code else None)
    else:
        file = file or Path("cairn/pipeline.yaml")
        pipeline = load_or_exit(file)
        view = ctx.client.start_pipeline(project, file, params=parse_params(params, pipeline.params),
                                         no_cache=no_cache, code=False if no_code else None)
    if view.get("skipped"):
        emit(ctx, view)
        return
    if wait:
        view = ctx.client.wait_pipeline_run(project, view["id"])
    _print_run(ctx, view)
    if wait and view["status"] != "succeeded":
        sys.exit(1)


@click.command("list")
@project_option
@click.option("--pipeline", help="Only this pipeline's runs.")
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "cancelled"]),
              help="Only runs in this state.")
@click.option("--limit", default=100, show_default=True)
@json_option
@pass_ctx
@api_errors
def runs_list(ctx: Ctx, project: str, pipeline: str | None, status: str | None, limit: int) -> None:
    """List a project's pipeline runs, newest first. Example: cairn pipelines list -p vision --status running"""
    emit(ctx, ctx.client.pipeline_runs(project, pipeline=pipeline, status=status, limit=limit),
         columns=RUN_COLUMNS)


# the text drawing's symbols and rules as ``render_text(..., ascii_only=True)`` draws them
ASCII_DRAWING = str.maketrans({"─": "-", "←": "<-", "○": ".", "●": ">", "✓": "+", "✗": "x", "⊘": "-", "↺": "=",
                               "⏸": "?"})


@api_errors
def show_run(click_ctx: click.Context, run_id: str, project: str | None, fmt: str, as_json: bool,
             ascii_only: bool = False) -> None:
    """``cairn pipelines show RUN_ID``: the run's DAG drawn by the service with each step's state
    (the text drawing in ASCII with ``--ascii`` or where the terminal cannot print its symbols)."""
    ctx = click_ctx.find_object(Ctx) or Ctx(None, as_json)
    if not project:
        raise click.UsageError(f"{run_id!r} is no file here, so it is read as a pipeline run id: give its "
                               "project with -p PROJECT (or $CAIRN_PROJECT)")
    drawing = ctx.client.pipeline_run_drawing(project, run_id, fmt)
    if fmt == "text" and ascii_only:
        drawing = drawing.translate(ASCII_DRAWING)
    if as_json or ctx.as_json:
        view = ctx.client.pipeline_run(project, run_id)
        click.echo(json.dumps({**view, "format": fmt, "drawing": drawing}, indent=2, default=str))
        return
    if fmt == "text":
        click.echo(f"run {run_id}")
    click.echo(drawing, nl=not drawing.endswith("\n"))


@click.command("logs")
@click.argument("run_id")
@project_option
@click.option("--step", help="Only this step's output (default: every job step's, in pipeline order).")
@json_option
@pass_ctx
@api_errors
def logs(ctx: Ctx, run_id: str, project: str, step: str | None) -> None:
    """Print the output of a run's job steps. Example: cairn pipelines logs -p vision RUN_ID --step train"""
    text = ctx.client.pipeline_logs(project, run_id, step)
    if ctx.as_json:
        emit(ctx, {"run": run_id, "step": step, "logs": text})
        return
    click.echo(text, nl=bool(text) and not text.endswith("\n"))


@click.command("cancel")
@click.argument("run_id")
@project_option
@click.option("--reason", default="", help="Why (kept in the run's events).")
@json_option
@pass_ctx
@api_errors
def cancel(ctx: Ctx, run_id: str, project: str, reason: str) -> None:
    """Cancel a run: running steps are stopped and no new step starts.

    Example: cairn pipelines cancel -p vision RUN_ID --reason "wrong data"
    """
    _print_run(ctx, ctx.client.cancel_pipeline_run(project, run_id, reason))


def _decision(name: str, verb: str, method: str) -> click.Command:
    @click.command(name)
    @click.argument("run_id")
    @click.argument("step")
    @project_option
    @click.option("--comment", default="", help="A note kept with the decision.")
    @json_option
    @pass_ctx
    @api_errors
    def decide(ctx: Ctx, run_id: str, step: str, project: str, comment: str) -> None:
        _print_run(ctx, getattr(ctx.client, method)(project, run_id, step, comment))

    decide.help = (f"{verb}; your role on the project must reach the step's role.\n\n"
                   f"Example: cairn pipelines {name} -p vision RUN_ID STEP --comment 'checked the report'")
    return decide


approve = _decision("approve", "Grant a run's waiting approval step (the run moves on)", "approve_step")
reject = _decision("reject", "Reject a run's waiting approval step (the run fails)", "reject_step")
