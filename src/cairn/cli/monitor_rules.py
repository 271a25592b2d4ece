"""``cairn monitor rules`` and ``cairn monitor alerts``: alert rules on a deployment's windows
and the alerts they fired (the monitor service evaluates them; docs/monitor.md)."""

from __future__ import annotations

import re
from typing import Any

import click

from cairn.cli.output import Ctx, api_errors, console, emit, pass_ctx
from cairn.cli.registry import project_option

COMPARISONS = (">", ">=", "<", "<=")
RULE_COLUMNS = ["id", "name", "metric", "column", "comparison", "threshold", "window", "persistence",
                "cooldown_s", "action"]
ALERT_COLUMNS = ["id", "deployment", "rule", "state", "metric", "value", "threshold", "fired_at", "resolved_at"]


def _persistence(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise click.BadParameter(f"give K/N with 1 <= K <= N (fire when K of the last N windows breach), "
                                 f"got {value!r}", param_hint="--persistence")
    return int(match[1]), int(match[2])


@click.group("rules")
def rules() -> None:
    """Alert rules on a deployment: a metric of its windows against a threshold.

    Example: cairn monitor rules add -p shop fraud --name slow --metric latency_p99_ms --comparison '>' --threshold 250
    """


@rules.command("add")
@click.argument("deployment")
@project_option
@click.option("--name", required=True, help="A name for people.")
@click.option("--metric", required=True,
              help="latency_p99_ms, error_rate, drift_share, drift_score (with --column), accuracy, ...")
@click.option("--comparison", required=True, type=click.Choice(COMPARISONS), help="How the metric breaches.")
@click.option("--threshold", required=True, type=float)
@click.option("--column", default=None, help="The column, for per-column metrics (drift_score).")
@click.option("--window", default=None, help="Window size the rule reads (1m, 1h, 1d...); default: the smallest the monitor keeps.")
@click.option("--persistence", default="1/1", show_default=True, metavar="K/N",
              help="Fire when K of the last N windows breach.")
@click.option("--cooldown", "cooldown_s", type=click.FloatRange(0), default=300, show_default=True,
              help="Seconds after an alert before the rule fires again.")
@click.option("--rollback", is_flag=True, help="When it fires, roll the deployment back.")
@click.option("--pipeline", default=None, help="When it fires, run this pipeline.")
@pass_ctx
@api_errors
def rules_add(ctx: Ctx, deployment: str, project: str, name: str, metric: str, comparison: str, threshold: float,
              column: str | None, window: str, persistence: str, cooldown_s: float, rollback: bool,
              pipeline: str | None) -> None:
    """Add an alert rule to DEPLOYMENT.

    Example: cairn monitor rules add -p shop fraud --name drift --metric drift_share --comparison '>=' --threshold 0.5 --persistence 2/3 --rollback
    """
    if rollback and pipeline:
        raise click.UsageError("a rule has one action: --rollback or --pipeline NAME")
    action: dict[str, Any] | None = {"rollback": True} if rollback else {"pipeline": pipeline} if pipeline else None
    emit(ctx, ctx.client.add_alert_rule(project, deployment, name=name, metric=metric, comparison=comparison,
                                        threshold=threshold, column=column, window=window,
                                        persistence=_persistence(persistence), cooldown_s=cooldown_s,
                                        action=action))


@rules.command("list")
@click.argument("deployment")
@project_option
@pass_ctx
@api_errors
def rules_list(ctx: Ctx, deployment: str, project: str) -> None:
    """DEPLOYMENT's alert rules.

    Example: cairn monitor rules list -p shop fraud
    """
    emit(ctx, ctx.client.alert_rules(project, deployment), columns=RULE_COLUMNS)


@rules.command("delete")
@click.argument("deployment")
@click.argument("rule_id")
@project_option
@pass_ctx
@api_errors
def rules_delete(ctx: Ctx, deployment: str, rule_id: str, project: str) -> None:
    """Delete one of DEPLOYMENT's alert rules (its open alerts stay on record).

    Example: cairn monitor rules delete -p shop fraud 7c1e...
    """
    ctx.client.delete_alert_rule(project, deployment, rule_id)
    if ctx.as_json:
        emit(ctx, {"deleted": rule_id})
    else:
        console.print(f"deleted rule {rule_id}")


@click.command("alerts")
@project_option
@click.option("--deployment", "-d", default=None, help="Only this deployment's alerts.")
@click.option("--all", "every", is_flag=True, help="Resolved alerts too (default: open ones).")
@pass_ctx
@api_errors
def alerts(ctx: Ctx, project: str, deployment: str | None, every: bool) -> None:
    """Open alerts of a project (or all of them with --all).

    Example: cairn monitor alerts -p shop --deployment fraud
    """
    emit(ctx, ctx.client.alerts(project, state="all" if every else "open", deployment=deployment),
         columns=ALERT_COLUMNS)
