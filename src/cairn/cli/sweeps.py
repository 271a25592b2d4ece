"""``cairn sweeps``: hyperparameter sweeps from the command line (served by the scheduler)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx
from cairn.sdk.jobs import yaml_problem

project_option = click.option("--project", "-p", envvar="CAIRN_PROJECT",
                              help="Project name (or $CAIRN_PROJECT; create takes it from the file too).")


def _path(project: str, suffix: str = "") -> str:
    return f"/api/v1/scheduler/projects/{project}/sweeps{suffix}"


def _need(project: str | None) -> str:
    if not project:
        raise click.UsageError("which project? pass --project/-p or set $CAIRN_PROJECT")
    return project


def load_spec(file: Path) -> dict[str, Any]:
    """Read a sweep spec from YAML (or JSON, which is YAML too)."""
    try:
        doc = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise click.BadParameter(yaml_problem(file, err)) from None
    if not isinstance(doc, dict):
        raise click.BadParameter(f"{file} must hold a mapping (name, method, metric, parameters, job, ...)")
    return doc


def _prepare_job(ctx: Ctx, job: dict[str, Any], base_dir: Path, project: str) -> dict[str, Any]:
    """Upload the job template's code once for every trial (as ``cairn jobs submit`` does: the
    work tree around the sweep file unless ``code: none``), and read a requirements file."""
    try:
        from cairn.sdk.jobs import prepare_spec  # comes with the scheduler's SDK
    except ImportError:
        return job
    return prepare_spec(ctx.client, job, base_dir, project)


@click.group()
def sweeps() -> None:
    """Hyperparameter sweeps: grid, random or Bayesian search with early stopping.

    Example: cairn sweeps create sweep.yaml && cairn sweeps list -p vision
    """


@sweeps.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@project_option
@pass_ctx
@api_errors
def sweeps_create(ctx: Ctx, file: Path, project: str | None) -> None:
    """Create a sweep from a YAML spec (docs/sweeps.md); the scheduler runs its trials.

    Example: cairn sweeps create sweep.yaml -p vision
    """
    doc = load_spec(file)
    project = _need(project or doc.get("project"))
    if isinstance(doc.get("job"), dict):
        doc["job"] = _prepare_job(ctx, doc["job"], file.resolve().parent, project)
    sweep = ctx.client.request("POST", _path(project), json=doc)
    if ctx.as_json:
        emit(ctx, sweep)
        return
    click.echo(f"sweep {sweep['id']} ({sweep['name']}, {sweep['method']}) created in {project}; "
               f"follow it with: cairn sweeps show -p {project} {sweep['id']}")


@sweeps.command("list")
@project_option
@click.option("--status", type=click.Choice(["running", "completed", "stopped"]))
@click.option("--limit", default=100, show_default=True)
@pass_ctx
@api_errors
def sweeps_list(ctx: Ctx, project: str | None, status: str | None, limit: int) -> None:
    """A project's sweeps, newest first. Example: cairn sweeps list -p vision --status running"""
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    body = ctx.client.request("GET", _path(_need(project)), params=params)
    if ctx.as_json:
        emit(ctx, body)
        return
    rows = [{**s, "best": _best(s), "done": _done(s)} for s in body["sweeps"]]
    emit(ctx, rows, columns=["id", "name", "method", "metric", "status", "done", "best", "created_at"])


def _best(sweep: dict[str, Any]) -> str:
    best = sweep.get("best_trial")
    return "" if not best else f"#{best['number']} {sweep['metric']}={best['value']:.6g}"


def _done(sweep: dict[str, Any]) -> str:
    counts = sweep["trial_counts"]
    return f"{sum(counts.values()) - counts['running']} done, {counts['running']} running"


@sweeps.command("show")
@project_option
@click.argument("sweep_id")
@pass_ctx
@api_errors
def sweeps_show(ctx: Ctx, project: str | None, sweep_id: str) -> None:
    """A sweep: status, budget use, best trial and every trial. Example: cairn sweeps show -p vision SWEEP_ID"""
    sweep = ctx.client.request("GET", _path(_need(project), f"/{sweep_id}"))
    if ctx.as_json:
        emit(ctx, sweep)
        return
    emit(ctx, {k: sweep[k] for k in ("id", "name", "method", "metric", "goal", "status", "reason")})
    emit(ctx, {"trials": _done(sweep), "best": _best(sweep) or "none yet"})
    rows = [{**t, "params": t["params"]} for t in sweep["trials"]]
    emit(ctx, rows, columns=["number", "state", "value", "step", "params", "run_id"], title="trials")


@sweeps.command("table")
@project_option
@click.argument("sweep_id")
@pass_ctx
@api_errors
def sweeps_table(ctx: Ctx, project: str | None, sweep_id: str) -> None:
    """One row per trial: params and the metric (the parallel-coordinates input).

    Example: cairn sweeps table -p vision SWEEP_ID --json > trials.json
    """
    table = ctx.client.request("GET", _path(_need(project), f"/{sweep_id}/table"))
    if ctx.as_json:
        emit(ctx, table)
        return
    names = [d["name"] for d in table["dimensions"]]
    rows = [{"trial": r["trial"], "state": r["state"], table["metric"]: r[table["metric"]], **r["params"]}
            for r in table["rows"]]
    emit(ctx, rows, columns=["trial", "state", table["metric"], *names],
         title=f"{table['metric']} ({table['goal']})")


@sweeps.command("stop")
@project_option
@click.argument("sweep_id")
@click.option("--reason", default="stopped from the command line", show_default=True)
@pass_ctx
@api_errors
def sweeps_stop(ctx: Ctx, project: str | None, sweep_id: str, reason: str) -> None:
    """Stop a sweep: no new trials, running trials cancelled. Example: cairn sweeps stop -p vision SWEEP_ID"""
    sweep = ctx.client.request("POST", _path(_need(project), f"/{sweep_id}/stop"), json={"reason": reason})
    if ctx.as_json:
        emit(ctx, sweep)
        return
    click.echo(f"sweep {sweep['id']} is {sweep['status']}")
