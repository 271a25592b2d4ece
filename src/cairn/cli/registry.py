"""``cairn projects|experiments|runs|models``: the registry from the command line."""

from __future__ import annotations

from typing import Any

import click

from cairn.cli.metrics import format_number
from cairn.cli.output import Ctx, api_errors, emit, parse_pairs, pass_ctx
from cairn.sdk.client import ApiError, CannotReach

project_option = click.option("--project", "-p", required=True, envvar="CAIRN_PROJECT",
                              help="Project name (or $CAIRN_PROJECT).")


@click.group()
def projects() -> None:
    """Projects: create, list, show, archive.

    Example: cairn projects create vision --description "image models"
    """


@projects.command("create")
@click.argument("name")
@click.option("--description", default="")
@pass_ctx
@api_errors
def projects_create(ctx: Ctx, name: str, description: str) -> None:
    """Create a project. Example: cairn projects create vision"""
    emit(ctx, ctx.client.create_project(name, description))


@projects.command("list")
@click.option("--all", "include_archived", is_flag=True, help="Include archived projects.")
@pass_ctx
@api_errors
def projects_list(ctx: Ctx, include_archived: bool) -> None:
    """List projects. Example: cairn projects list --json"""
    emit(ctx, ctx.client.list_projects(include_archived), columns=["name", "description", "archived", "created_at"])


@projects.command("show")
@click.argument("name")
@pass_ctx
@api_errors
def projects_show(ctx: Ctx, name: str) -> None:
    """Show a project. Example: cairn projects show vision"""
    emit(ctx, ctx.client.get_project(name))


@projects.command("archive")
@click.argument("name")
@click.option("--restore", is_flag=True, help="Restore instead of archiving.")
@pass_ctx
@api_errors
def projects_archive(ctx: Ctx, name: str, restore: bool) -> None:
    """Archive (or --restore) a project. Example: cairn projects archive old-stuff"""
    action = "restore" if restore else "archive"
    emit(ctx, ctx.client.request("POST", f"/api/v1/registry/projects/{name}/{action}"))


@click.group()
def experiments() -> None:
    """Experiments in a project. Example: cairn experiments create -p vision baseline"""


@experiments.command("create")
@project_option
@click.argument("name")
@click.option("--description", default="")
@pass_ctx
@api_errors
def experiments_create(ctx: Ctx, project: str, name: str, description: str) -> None:
    """Create an experiment. Example: cairn experiments create -p vision baseline"""
    emit(ctx, ctx.client.create_experiment(project, name, description))


@experiments.command("list")
@project_option
@click.option("--all", "include_archived", is_flag=True)
@pass_ctx
@api_errors
def experiments_list(ctx: Ctx, project: str, include_archived: bool) -> None:
    """List experiments. Example: cairn experiments list -p vision"""
    emit(ctx, ctx.client.list_experiments(project, include_archived),
         columns=["id", "name", "description", "archived", "created_at"])


@click.group()
def runs() -> None:
    """Runs: create, list/search, show, tag, params, finish.

    Example: cairn runs list -p vision --filter "params.lr = '0.01'" --order-by "created_at DESC"
    """


@runs.command("create")
@project_option
@click.option("--experiment", "-e", default="default")
@click.option("--name")
@click.option("--param", "params", multiple=True, help="key=value (repeatable)")
@click.option("--tag", "tags", multiple=True, help="key=value (repeatable)")
@pass_ctx
@api_errors
def runs_create(ctx: Ctx, project: str, experiment: str, name: str | None, params: tuple[str, ...],
                tags: tuple[str, ...]) -> None:
    """Create a running run. Example: cairn runs create -p vision --param lr=0.01 --tag team=cv"""
    emit(ctx, ctx.client.create_run(project, experiment=experiment, name=name,
                                    params=parse_pairs(params, "--param"), tags=parse_pairs(tags, "--tag")))


@runs.command("list")
@project_option
@click.option("--filter", "filter_text", help="e.g. \"params.lr = '0.01' and status = 'finished'\"")
@click.option("--experiment-id", "experiment_ids", multiple=True)
@click.option("--order-by", multiple=True, help="e.g. 'created_at DESC' or 'params.lr ASC'")
@click.option("--limit", default=100, show_default=True)
@click.option("--page-token")
@pass_ctx
@api_errors
def runs_list(ctx: Ctx, project: str, filter_text: str | None, experiment_ids: tuple[str, ...],
              order_by: tuple[str, ...], limit: int, page_token: str | None) -> None:
    """Search runs. Example: cairn runs list -p vision --filter "tags.team = 'cv'" --json"""
    page = ctx.client.search_runs(project, filter=filter_text, experiment_ids=list(experiment_ids) or None,
                                  order_by=list(order_by) or None, page_size=limit, page_token=page_token)
    if ctx.as_json:
        emit(ctx, page)
    else:
        emit(ctx, page["runs"], columns=["id", "name", "status", "params", "tags", "created_at"])
        if page["next_page_token"]:
            click.echo(f"more: --page-token {page['next_page_token']}")


@runs.command("show")
@project_option
@click.argument("run_id")
@pass_ctx
@api_errors
def runs_show(ctx: Ctx, project: str, run_id: str) -> None:
    """Show a run, its params and tags, and its metric summaries (key, last, min, max, steps).
    Example: cairn runs show -p vision 0190ab..."""
    run = ctx.client.get_run(project, run_id)
    # from the metrics service itself, not the registry's projection: a point logged a moment ago counts
    # (the run is still shown when the metrics service cannot answer; the reason goes to stderr)
    summaries: list[dict[str, Any]] | None = None
    try:
        summaries = list(ctx.client.metric_summary(project, run_id).values())
    except ApiError as err:
        if err.status < 500 and not isinstance(err, CannotReach):
            raise
        click.echo(f"warning: metrics unavailable: {err}", err=True)
    if ctx.as_json:
        emit(ctx, {**run, "metrics": summaries})
        return
    emit(ctx, run)
    if summaries is None:
        return
    if summaries:
        emit(ctx, [{"key": s["key"], "last": format_number(s.get("last")), "min": format_number(s.get("min")),
                    "max": format_number(s.get("max")), "steps": s.get("count"), "last_step": s.get("last_step")}
                   for s in summaries], columns=["key", "last", "min", "max", "steps", "last_step"], title="metrics")
    else:
        click.echo("metrics: none logged")


@runs.command("tag")
@project_option
@click.argument("run_id")
@click.argument("pairs", nargs=-1, required=True)
@pass_ctx
@api_errors
def runs_tag(ctx: Ctx, project: str, run_id: str, pairs: tuple[str, ...]) -> None:
    """Set tags. Example: cairn runs tag -p vision RUN_ID team=cv stage=eval"""
    record = None
    for key, value in parse_pairs(pairs, "tag").items():
        record = ctx.client.set_run_tag(project, run_id, key, value)
    emit(ctx, record)


@runs.command("params")
@project_option
@click.argument("run_id")
@click.argument("pairs", nargs=-1, required=True)
@pass_ctx
@api_errors
def runs_params(ctx: Ctx, project: str, run_id: str, pairs: tuple[str, ...]) -> None:
    """Log params (immutable once set). Example: cairn runs params -p vision RUN_ID lr=0.01"""
    emit(ctx, ctx.client.log_params(project, run_id, parse_pairs(pairs, "param")))


@runs.command("finish")
@project_option
@click.argument("run_id")
@click.option("--status", type=click.Choice(["finished", "failed", "killed"]), default="finished")
@click.option("--message", default="")
@pass_ctx
@api_errors
def runs_finish(ctx: Ctx, project: str, run_id: str, status: str, message: str) -> None:
    """End a run. Example: cairn runs finish -p vision RUN_ID --status failed --message OOM"""
    emit(ctx, ctx.client.finish_run(project, run_id, status, message))


@click.group()
def models() -> None:
    """Models, versions and aliases. Example: cairn models alias -p vision resnet production 3"""


@models.command("create")
@project_option
@click.argument("name")
@click.option("--description", default="")
@pass_ctx
@api_errors
def models_create(ctx: Ctx, project: str, name: str, description: str) -> None:
    """Create a registered model. Example: cairn models create -p vision resnet"""
    emit(ctx, ctx.client.create_model(project, name, description))


@models.command("list")
@project_option
@pass_ctx
@api_errors
def models_list(ctx: Ctx, project: str) -> None:
    """List models. Example: cairn models list -p vision"""
    emit(ctx, ctx.client.list_models(project), columns=["name", "latest_version", "aliases", "description"])


@models.command("show")
@project_option
@click.argument("name")
@pass_ctx
@api_errors
def models_show(ctx: Ctx, project: str, name: str) -> None:
    """Show a model with its aliases. Example: cairn models show -p vision resnet"""
    emit(ctx, ctx.client.get_model(project, name))


@models.command("register")
@project_option
@click.argument("name")
@click.option("--run", "run_id", required=True, help="The run that produced the model.")
@click.option("--digest", required=True,
              help="Manifest digest of the model folder, as printed by `cairn artifacts log DIR --kind model` "
                   "or returned by run.log_model (64 hex); the folder must be stored in the project.")
@click.option("--description", default="")
@pass_ctx
@api_errors
def models_register(ctx: Ctx, project: str, name: str, run_id: str, digest: str, description: str) -> None:
    """Register a new version. Example: cairn models register -p vision resnet --run RUN --digest HEX"""
    emit(ctx, ctx.client.create_model_version(project, name, run_id=run_id, artifact_digest=digest,
                                              description=description))


@models.command("versions")
@project_option
@click.argument("name")
@pass_ctx
@api_errors
def models_versions(ctx: Ctx, project: str, name: str) -> None:
    """List a model's versions. Example: cairn models versions -p vision resnet"""
    data = ctx.client.request("GET", f"/api/v1/registry/projects/{project}/models/{name}/versions")["versions"]
    emit(ctx, data, columns=["version", "run_id", "artifact_digest", "aliases", "created_at"])


@models.command("alias")
@project_option
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int, required=False)
@click.option("--history", is_flag=True, help="Show where the alias pointed over time.")
@pass_ctx
@api_errors
def models_alias(ctx: Ctx, project: str, name: str, alias: str, version: int | None, history: bool) -> None:
    """Point an alias at a version, or show it. Example: cairn models alias -p vision resnet production 3"""
    if history:
        emit(ctx, ctx.client.alias_history(project, name, alias),
             columns=["seq", "action", "version", "previous_version", "time", "actor"])
    elif version is None:
        emit(ctx, ctx.client.get_alias(project, name, alias))
    else:
        emit(ctx, ctx.client.set_alias(project, name, alias, version))
