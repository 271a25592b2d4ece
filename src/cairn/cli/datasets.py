"""``cairn datasets|artifacts``: versioned datasets and run artifacts from the command line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cairn.cli.output import Ctx, api_errors, console, emit, pass_ctx
from cairn.cli.registry import project_option


@contextmanager
def transfer_bar(ctx: Ctx, label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar fed by ``advance(bytes, total)`` from the SDK's transfer threads (rich
    locks its updates); silent with --json and when the output is not a terminal (piped)."""
    if ctx.as_json or not console.is_terminal:
        yield lambda n, total: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(n: int, total: int) -> None:
            bar.update(task, advance=n, total=total)

        yield advance


@click.group()
def datasets() -> None:
    """Versioned datasets: push, pull, list, show, diff.

    Example: cairn datasets push ./data -p vision --name mnist
    """


@datasets.command("push")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@project_option
@click.option("--name", "-n", required=True, help="Dataset name.")
@click.option("--description", default="", help="What changed in this version.")
@pass_ctx
@api_errors
def datasets_push(ctx: Ctx, path: Path, project: str, name: str, description: str) -> None:
    """Fingerprint PATH and create a new version, uploading only blobs the store lacks.

    Example: cairn datasets push ./data -p vision --name mnist --description "fixed labels"
    """
    with transfer_bar(ctx, f"uploading {name}") as advance:
        result = ctx.client.artifacts.push_dataset(project, name, path, description=description,
                                                   progress=advance)
    emit(ctx, {**result.record, "uploaded_files": result.uploaded_files,
               "uploaded_bytes": result.uploaded_bytes})


@datasets.command("pull")
@click.argument("ref")
@click.argument("dest", type=click.Path(path_type=Path))
@project_option
@pass_ctx
@api_errors
def datasets_pull(ctx: Ctx, ref: str, dest: Path, project: str) -> None:
    """Restore the exact bytes of REF (NAME@vN, or NAME for the latest) under DEST, verified.

    Example: cairn datasets pull mnist@v3 ./mnist-v3 -p vision
    """
    with transfer_bar(ctx, f"downloading {ref}") as advance:
        record = ctx.client.artifacts.pull_dataset(project, ref, dest, progress=advance)
    record.pop("manifest")
    emit(ctx, {**record, "path": str(dest)})


@datasets.command("list")
@project_option
@pass_ctx
@api_errors
def datasets_list(ctx: Ctx, project: str) -> None:
    """List a project's datasets. Example: cairn datasets list -p vision --json"""
    emit(ctx, ctx.client.artifacts.list_datasets(project),
         columns=["name", "latest_version", "created_at", "updated_at"])


@datasets.command("show")
@click.argument("ref")
@project_option
@click.option("--files", is_flag=True, help="List the version's files (needs NAME@vN or NAME).")
@pass_ctx
@api_errors
def datasets_show(ctx: Ctx, ref: str, project: str, files: bool) -> None:
    """Show a dataset's versions, or one version's files with --files.

    Example: cairn datasets show mnist -p vision   |   cairn datasets show mnist@v2 --files -p vision
    """
    if files or "@" in ref:
        record = ctx.client.artifacts.dataset_version(project, ref)
        if ctx.as_json or not files:
            if not files:
                record.pop("manifest")
            emit(ctx, record)
            return
        emit(ctx, record["manifest"]["entries"], columns=["path", "kind", "size", "digest"],
             title=f"{ref}: {record['files']} files, {record['total_size']} bytes")
        return
    emit(ctx, ctx.client.artifacts.dataset(project, ref)["versions"],
         columns=["version", "files", "total_size", "manifest_digest", "created_at", "created_by",
                  "description"])


@datasets.command("diff")
@click.argument("ref_a")
@click.argument("ref_b")
@project_option
@pass_ctx
@api_errors
def datasets_diff(ctx: Ctx, ref_a: str, ref_b: str, project: str) -> None:
    """Files added, removed and changed between two versions, with schema and row-count changes
    of Parquet, Feather and CSV files.

    Example: cairn datasets diff mnist@v1 mnist@v2 -p vision
    """
    result = ctx.client.artifacts.diff(project, ref_a, ref_b)
    if ctx.as_json:
        emit(ctx, result)
        return
    click.echo(f"{result['dataset']}: v{result['from']} -> v{result['to']}  "
               f"({result['size_before']} -> {result['size_after']} bytes, {result['unchanged']} unchanged)")
    for item in result["added"]:
        click.echo(f"+ {item['path']}  ({item['size']} bytes)")
    for item in result["removed"]:
        click.echo(f"- {item['path']}  ({item['size']} bytes)")
    for item in result["changed"]:
        click.echo(f"~ {item['path']}  ({item['size_before']} -> {item['size_after']} bytes)")
        table = item.get("table")
        if table and "error" in table:
            click.echo(f"    {table['error']}")
        elif table:
            for col, typ in table["columns_added"].items():
                click.echo(f"    + column {col}: {typ}")
            for col, typ in table["columns_removed"].items():
                click.echo(f"    - column {col}: {typ}")
            for col, change in table["types_changed"].items():
                click.echo(f"    ~ column {col}: {change['from']} -> {change['to']}")
            click.echo(f"    rows {table['rows_before']} -> {table['rows_after']} ({table['rows_change']:+d})")


@click.group()
def artifacts() -> None:
    """Run artifacts and the blob store: log, list, get, gc.

    Example: cairn artifacts log ./model -p vision --run RUN_ID --kind model
    """


@artifacts.command("log")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@project_option
@click.option("--run", "run_id", required=True, help="Run id.")
@click.option("--name", help="Artifact name (default: the base name of PATH).")
@click.option("--kind", type=click.Choice(["file", "directory", "model"]), help="Default: file or directory.")
@pass_ctx
@api_errors
def artifacts_log(ctx: Ctx, path: Path, project: str, run_id: str, name: str | None, kind: str | None) -> None:
    """Upload a file or directory and record it on a run.

    Example: cairn artifacts log ./weights.pt -p vision --run 0190ab... --kind model
    """
    emit(ctx, ctx.client.artifacts.log_artifact(project, run_id, path, name, kind))


@artifacts.command("list")
@project_option
@click.option("--run", "run_id", required=True, help="Run id.")
@pass_ctx
@api_errors
def artifacts_list(ctx: Ctx, project: str, run_id: str) -> None:
    """A run's artifacts. Example: cairn artifacts list -p vision --run 0190ab... --json"""
    emit(ctx, ctx.client.artifacts.list_artifacts(project, run_id),
         columns=["name", "kind", "size", "files", "digest", "created_at"])


@artifacts.command("get")
@click.argument("name")
@click.argument("dest", type=click.Path(path_type=Path))
@project_option
@click.option("--run", "run_id", required=True, help="Run id.")
@pass_ctx
@api_errors
def artifacts_get(ctx: Ctx, name: str, dest: Path, project: str, run_id: str) -> None:
    """Download a run's artifact to DEST, verified. Example: cairn artifacts get model ./m -p vision --run 0190ab..."""
    found = [a for a in ctx.client.artifacts.list_artifacts(project, run_id) if a["name"] == name]
    if not found:
        raise click.ClickException(f"run {run_id} has no artifact named {name!r}")
    ctx.client.artifacts.download_artifact(found[0], dest)
    emit(ctx, {**found[0], "path": str(dest)})


@artifacts.command("gc")
@click.option("--grace-seconds", type=float, help="Keep unreferenced blobs younger than this (default: server's).")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted.")
@pass_ctx
@api_errors
def artifacts_gc(ctx: Ctx, grace_seconds: float | None, dry_run: bool) -> None:
    """Delete blobs no event references any more. Example: cairn artifacts gc --grace-seconds 3600 --dry-run"""
    result = ctx.client.artifacts.gc(grace_seconds, dry_run)
    if not ctx.as_json:
        result.pop("removed")
    emit(ctx, result)
