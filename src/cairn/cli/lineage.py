"""``cairn lineage``: what a node came from, what depends on it, its graph, and admin SQL.

Node references: dataset:NAME@vN, dataset:NAME, run:ID, model:NAME@N, model:NAME@ALIAS,
model:NAME, blob:DIGEST, commit:SHA, job:ID (docs/lineage.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cairn.cli.output import Ctx, api_errors, console, emit, pass_ctx
from cairn.cli.registry import project_option
from cairn.sdk.lineage import Lineage

NODE_HELP = "dataset:NAME@vN, run:ID, model:NAME@N, model:NAME@ALIAS, blob:DIGEST, ..."
depth_option = click.option("--depth", type=click.IntRange(1, 1000), default=None,
                            help="Stop after this many hops (default: all the way).")
as_of_option = click.option("--as-of", default=None, metavar="SEQ|TIME",
                            help="The graph as it was at a stream sequence or an ISO time (UTC).")


@click.group()
def lineage() -> None:
    """Lineage: what produced what, across datasets, runs, blobs, models and aliases.

    Example: cairn lineage impact dataset:reviews@v3 -p shop
    """


def _show(ctx: Ctx, answer: dict[str, Any]) -> None:
    if ctx.as_json:
        emit(ctx, answer)
        return
    node = answer["node"]
    console.print(f"[bold]{answer['direction']}[/bold] of {node['ref']} ({node['kind']}): {answer['count']} node(s)")
    emit(ctx, answer["nodes"], columns=["depth", "ref", "kind", "project", "title", "status", "seq"])


@lineage.command("upstream")
@click.argument("node", metavar="NODE")
@project_option
@depth_option
@as_of_option
@pass_ctx
@api_errors
def upstream(ctx: Ctx, node: str, project: str, depth: int | None, as_of: str | None) -> None:
    """Everything NODE came from, nearest first.

    Example: cairn lineage upstream model:churn@production -p shop --depth 3
    """
    _show(ctx, Lineage(ctx.client).upstream(project, node, depth=depth, as_of=as_of))


@lineage.command("downstream")
@click.argument("node", metavar="NODE")
@project_option
@depth_option
@as_of_option
@pass_ctx
@api_errors
def downstream(ctx: Ctx, node: str, project: str, depth: int | None, as_of: str | None) -> None:
    """Everything made from NODE (blobs included).

    Example: cairn lineage downstream run:0f3a9c -p shop
    """
    _show(ctx, Lineage(ctx.client).downstream(project, node, depth=depth, as_of=as_of))


@lineage.command("impact")
@click.argument("node", metavar="NODE")
@project_option
@depth_option
@as_of_option
@pass_ctx
@api_errors
def impact(ctx: Ctx, node: str, project: str, depth: int | None, as_of: str | None) -> None:
    """Every run, job, dataset version, model version, alias and deployment that depends on NODE.

    Example: cairn lineage impact dataset:reviews@v3 -p shop
    """
    _show(ctx, Lineage(ctx.client).impact(project, node, depth=depth, as_of=as_of))


@lineage.command("graph")
@click.argument("node", metavar="NODE")
@project_option
@click.option("--format", "fmt", type=click.Choice(["json", "dot", "mermaid"]), default="mermaid",
              show_default=True, help="Graph format (--json implies json).")
@click.option("--direction", type=click.Choice(["upstream", "downstream", "both"]), default="upstream",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
@depth_option
@as_of_option
@pass_ctx
@api_errors
def graph(ctx: Ctx, node: str, project: str, fmt: str, direction: str, output: Path | None,
          depth: int | None, as_of: str | None) -> None:
    """The lineage graph around NODE as Mermaid, Graphviz DOT or JSON.

    Example: cairn lineage graph model:churn@2 -p shop --format dot -o churn.dot && dot -Tsvg churn.dot
    """
    fmt = "json" if ctx.as_json else fmt
    result = Lineage(ctx.client).graph(project, node, direction=direction, format=fmt, depth=depth, as_of=as_of)
    text = json.dumps(result, indent=2) if fmt == "json" else result
    if output is not None:
        output.write_text(text if text.endswith("\n") else text + "\n")
        if not ctx.as_json:
            console.print(f"wrote {output}")
        return
    click.echo(text.rstrip("\n"))


@lineage.command("openlineage")
@project_option
@click.option("--run", "run_id", default=None, help="Only this run (default: the project's runs).")
@pass_ctx
@api_errors
def openlineage(ctx: Ctx, project: str, run_id: str | None) -> None:
    """Run lineage as OpenLineage run events, one JSON object per line (for Marquez, DataHub, ...).

    Example: cairn lineage openlineage -p shop --run 0f3a9c > events.ndjson
    """
    for event in Lineage(ctx.client).openlineage(project, run_id):
        click.echo(json.dumps(event, separators=(",", ":")))


@lineage.command("sql")
@click.argument("query")
@click.option("--max-rows", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.01, 30), default=5.0, show_default=True,
              help="Seconds before the query is stopped.")
@pass_ctx
@api_errors
def sql(ctx: Ctx, query: str, max_rows: int, timeout_s: float) -> None:
    """Read-only SQL over lineage_nodes, lineage_edges, lineage_event_types (site admins only).

    Example: cairn lineage sql "SELECT kind, count(*) FROM lineage_nodes GROUP BY kind"
    """
    answer = Lineage(ctx.client).sql(query, max_rows=max_rows, timeout_s=timeout_s)
    if ctx.as_json:
        emit(ctx, answer)
        return
    emit(ctx, [dict(zip(answer["columns"], row)) for row in answer["rows"]], columns=answer["columns"])
    if answer["truncated"]:
        console.print(f"[yellow]only the first {answer['max_rows']} rows; raise --max-rows to see more[/yellow]")
