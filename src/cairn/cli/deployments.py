"""``cairn deployments``: deploy registered models, see what serves where, roll back, scale,
split traffic, and protect environments."""

from __future__ import annotations

from typing import Any

import click

from cairn.cli.output import Ctx, api_errors, console, emit, pass_ctx
from cairn.cli.registry import project_option
from cairn.sdk.deployments import Deployments, parse_model_ref

LIST_COLUMNS = ["environment", "name", "model", "version", "follows", "run_id", "datasets", "replicas",
                "requests_per_s", "error_rate"]


@click.group()
def deployments() -> None:
    """Deployments: which model version serves in which environment.

    Example: cairn deployments create -p shop fraud --env prod --model fraud-model@production --replicas 2
    """


@deployments.command("create")
@click.argument("name")
@project_option
@click.option("--env", "environment", required=True, help="Environment (dev, staging, prod, any name).")
@click.option("--model", "model", required=True, metavar="NAME@ALIAS|NAME@VERSION",
              help="Follow an alias (moves when it moves) or pin a version.")
@click.option("--replicas", type=click.IntRange(0, 256), default=1, show_default=True)
@click.option("--sample-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of requests written to the inference log.")
@click.option("--max-batch", type=click.IntRange(1, 4096), default=None, help="Adaptive batching: batch size.")
@click.option("--max-wait-ms", type=click.FloatRange(0, 10_000), default=2.0, show_default=True,
              help="Adaptive batching: longest wait for a batch to fill.")
@click.option("--public", is_flag=True, help="Serve without Cairn tokens (a mesh authenticates in front).")
@pass_ctx
@api_errors
def create(ctx: Ctx, name: str, project: str, environment: str, model: str, replicas: int, sample_rate: float,
           max_batch: int | None, max_wait_ms: float, public: bool) -> None:
    """Deploy a registered model.

    Example: cairn deployments create -p shop fraud --env prod --model fraud-model@production --replicas 2
    """
    try:
        model_name, alias, version = parse_model_ref(model)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--model") from None
    batching = {"max_batch": max_batch, "max_wait_ms": max_wait_ms} if max_batch else None
    emit(ctx, Deployments(ctx.client).create(project, name, environment=environment, model=model_name,
                                             follows=alias, version=version, replicas=replicas,
                                             sample_rate=sample_rate, batching=batching, public=public))


def _row(item: dict[str, Any]) -> dict[str, Any]:
    replicas = item["replicas"]
    return {**item, "replicas": f"{replicas['healthy']}/{replicas['total']}",
            "datasets": ", ".join(item["datasets"]) or None}


@deployments.command("list")
@project_option
@pass_ctx
@api_errors
def list_(ctx: Ctx, project: str) -> None:
    """Deployments per environment: version, the run and datasets it came from, healthy/total replicas.

    Example: cairn deployments list -p shop
    """
    answer = Deployments(ctx.client).list(project)
    if ctx.as_json:
        emit(ctx, answer)
        return
    emit(ctx, [_row(item) for item in answer["deployments"]], columns=LIST_COLUMNS)


@deployments.command("show")
@click.argument("name")
@project_option
@pass_ctx
@api_errors
def show(ctx: Ctx, name: str, project: str) -> None:
    """A deployment's configuration and its replicas.

    Example: cairn deployments show -p shop fraud
    """
    api = Deployments(ctx.client)
    emit(ctx, {**api.get(project, name), "replica_reports": api.replicas(project, name)})


@deployments.command("requests")
@click.argument("name")
@project_option
@click.option("--since", default="1h", show_default=True, help="how far back: 30s, 15m, 1h, 7d")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@pass_ctx
@api_errors
def requests(ctx: Ctx, name: str, project: str, since: str, limit: int) -> None:
    """Sampled requests from the inference log, newest first (with their labels when feedback came).

    Example: cairn deployments requests -p shop fraud --since 1h --limit 100
    """
    found = Deployments(ctx.client).requests(project, name, since=since, limit=limit)["requests"]
    emit(ctx, found, columns=["request_id", "time", "version", "role", "status", "latency_ms", "prediction", "label"])


@deployments.command("rollback")
@click.argument("name")
@project_option
@pass_ctx
@api_errors
def rollback(ctx: Ctx, name: str, project: str) -> None:
    """Go back to the previous version on record.

    Example: cairn deployments rollback -p shop fraud
    """
    emit(ctx, Deployments(ctx.client).rollback(project, name))


@deployments.command("set-version")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@project_option
@pass_ctx
@api_errors
def set_version(ctx: Ctx, name: str, version: int, project: str) -> None:
    """Switch to another version by hand.

    Example: cairn deployments set-version -p shop fraud 4
    """
    emit(ctx, Deployments(ctx.client).set_version(project, name, version))


@deployments.command("scale")
@click.argument("name")
@click.argument("replicas", type=click.IntRange(0, 256))
@project_option
@pass_ctx
@api_errors
def scale(ctx: Ctx, name: str, replicas: int, project: str) -> None:
    """Change the number of replicas.

    Example: cairn deployments scale -p shop fraud 4
    """
    emit(ctx, Deployments(ctx.client).scale(project, name, replicas))


@deployments.command("split")
@click.argument("name")
@project_option
@click.option("--canary", type=click.IntRange(1), default=None, help="Version answering a share of requests.")
@click.option("--percent", type=click.FloatRange(0, 100, min_open=True, max_open=True), default=None,
              help="The canary's share of requests.")
@click.option("--shadow", type=click.IntRange(1), default=None, help="Version getting a copy of every request.")
@click.option("--clear", is_flag=True, help="Remove the canary and the shadow.")
@pass_ctx
@api_errors
def split(ctx: Ctx, name: str, project: str, canary: int | None, percent: float | None, shadow: int | None,
          clear: bool) -> None:
    """Split traffic: a canary, a shadow, or clear.

    Example: cairn deployments split -p shop fraud --canary 3 --percent 10
    """
    if clear == (canary is not None or shadow is not None):
        raise click.UsageError("give --canary VERSION --percent P, --shadow VERSION, or --clear")
    if (canary is None) != (percent is None):
        raise click.UsageError("--canary and --percent go together")
    emit(ctx, Deployments(ctx.client).split(
        project, name, canary={"version": canary, "percent": percent} if canary else None,
        shadow={"version": shadow} if shadow else None))


@deployments.command("delete")
@click.argument("name")
@project_option
@pass_ctx
@api_errors
def delete(ctx: Ctx, name: str, project: str) -> None:
    """Delete a deployment; its replicas are stopped.

    Example: cairn deployments delete -p shop fraud
    """
    Deployments(ctx.client).delete(project, name)
    console.print(f"deleted deployment {name}")


@deployments.group("envs")
def envs() -> None:
    """Environments: deploying to a protected one needs the admin role (prod is, by default).

    Example: cairn deployments envs protect -p shop staging
    """


@envs.command("list")
@project_option
@pass_ctx
@api_errors
def envs_list(ctx: Ctx, project: str) -> None:
    """Environments and whether each is protected.

    Example: cairn deployments envs list -p shop
    """
    emit(ctx, Deployments(ctx.client).environments(project), columns=["name", "protected"])


@envs.command("protect")
@click.argument("environment")
@project_option
@pass_ctx
@api_errors
def envs_protect(ctx: Ctx, environment: str, project: str) -> None:
    """Deploying to ENVIRONMENT needs the admin role from now on.

    Example: cairn deployments envs protect -p shop staging
    """
    emit(ctx, Deployments(ctx.client).protect(project, environment, True))


@envs.command("unprotect")
@click.argument("environment")
@project_option
@pass_ctx
@api_errors
def envs_unprotect(ctx: Ctx, environment: str, project: str) -> None:
    """Editors may deploy to ENVIRONMENT from now on.

    Example: cairn deployments envs unprotect -p shop prod
    """
    emit(ctx, Deployments(ctx.client).protect(project, environment, False))
