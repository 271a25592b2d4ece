"""``cairn monitor``: profile datasets and files, compare them for drift on this machine, and
manage what the monitor service watches (references, alert rules, alerts).

``cairn.monitor`` (pandas, scipy) is imported inside the commands that compute, so the other
commands of the CLI do not pay for it.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from cairn.cli.monitor_rules import alerts, rules
from cairn.cli.output import Ctx, api_errors, console, emit, pass_ctx
from cairn.cli.registry import project_option

if TYPE_CHECKING:
    from cairn.monitor import Profile

DIGEST = re.compile(r"[0-9a-f]{64}")
DATASET = re.compile(r"dataset:(?P<name>[^@\s]+)(?:@v?(?P<version>\d+|latest))?")
optional_project = click.option("--project", "-p", envvar="CAIRN_PROJECT", default=None,
                                help="Project name (or $CAIRN_PROJECT); needed for dataset: and digest references.")


@click.group()
def monitor() -> None:
    """Monitoring: profiles, drift, references, alert rules and alerts.

    Example: cairn monitor drift --reference train.parquet --current today.parquet --html drift.html
    """


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file + fsync + rename: a report or profile is whole or absent. The file gets the
    mode a plain ``open`` would give it (the umask's), not the temp file's 0600."""
    path = path.expanduser()
    fd, name = tempfile.mkstemp(prefix=".cairn-", dir=path.parent if str(path.parent) else ".")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _need_project(project: str | None, what: str) -> str:
    if not project:
        raise click.UsageError(f"{what} lives in a project: give -p PROJECT (or set $CAIRN_PROJECT)")
    return project


def _load_profile(ctx: Ctx, source: str, project: str | None, *, bins: int = 10,
                  reference: Profile | None = None) -> tuple[Profile, dict[str, Any]]:
    """A profile from ``dataset:NAME@vN``, a Parquet/CSV file, a saved profile JSON, or a
    registered profile's digest; with where it came from."""
    from cairn.monitor import Profile
    from cairn.sdk.monitor import profile_files

    match = DATASET.fullmatch(source)
    if match:
        version = match["version"] if match["version"] not in (None, "latest") else None
        profile, record = ctx.client.profile_dataset_version(_need_project(project, source), match["name"],
                                                             version, bins=bins)
        return profile, {"dataset": match["name"], "version": record["version"]}
    path = Path(source).expanduser()
    if path.is_file():
        try:
            if path.suffix.lower() == ".json":
                return Profile.from_json(path.read_bytes()), {"file": str(path)}
            return profile_files([path], bins=bins, reference=reference), {"file": str(path)}
        except (ValueError, OSError) as err:
            raise click.ClickException(f"{path}: {err}") from None
    if DIGEST.fullmatch(source):
        return ctx.client.get_profile(_need_project(project, f"profile {source}"), source), {"profile": source}
    raise click.ClickException(f"{source}: no such file, and not dataset:NAME@vN or a profile digest "
                               "(64 hex digits)")


def _column_rows(profile: Profile) -> list[dict[str, Any]]:
    from cairn.monitor import NumericProfile

    rows = []
    for name, column in profile.columns.items():
        row: dict[str, Any] = {"column": name, "kind": column.kind, "role": profile.roles.get(name, "feature"),
                               "count": column.count, "missing": column.missing}
        if isinstance(column, NumericProfile):
            row["summary"] = (f"mean={_num(column.mean)} std={_num(column.std)} min={_num(column.min)} "
                              f"max={_num(column.max)}") if column.count else ""
        else:
            top = sorted(column.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            row["summary"] = f"{len(column.counts)} values; top: " + ", ".join(f"{v}={n}" for v, n in top)
        rows.append(row)
    return rows


def _num(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


@monitor.command("profile")
@click.argument("source", metavar="dataset:NAME@vN|FILE")
@optional_project
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the profile's JSON here.")
@click.option("--no-register", is_flag=True, help="Do not store it in the monitor service.")
@click.option("--bins", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Equal-mass histogram bins per numeric column.")
@pass_ctx
@api_errors
def profile(ctx: Ctx, source: str, project: str | None, output: Path | None, no_register: bool, bins: int) -> None:
    """Profile a dataset version (its Parquet and CSV files) or a local file, register the profile
    and print its digest and a per-column summary.

    Example: cairn monitor profile dataset:fraud@v3 -p shop --output fraud-v3.json
    """
    if source.lower().endswith(".json"):
        raise click.UsageError(f"{source} is already a profile; profile a dataset version or a data file")
    found, origin = _load_profile(ctx, source, project, bins=bins)
    digest = None
    if not no_register:
        digest = ctx.client.register_profile(_need_project(project, "a registered profile"), found,
                                             origin if "dataset" in origin else {})
    if output is not None:
        _write_atomic(output, found.to_json())
    if ctx.as_json:
        emit(ctx, {"digest": digest or found.digest(), "registered": digest is not None, "source": origin,
                   "rows": found.rows, "columns": _column_rows(found), "output": str(output) if output else None})
        return
    console.print(f"profile {digest or found.digest()}  ({'registered' if digest else 'not registered'}; "
                  f"{found.rows} rows)")
    emit(ctx, _column_rows(found), columns=["column", "kind", "role", "count", "missing", "summary"])


@monitor.command("drift")
@optional_project
@click.option("--reference", "-r", required=True, metavar="dataset:NAME@vN|DIGEST|FILE",
              help="The reference: a dataset version, a registered profile, a Parquet/CSV file or a profile JSON.")
@click.option("--current", "-c", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The current data: a Parquet or CSV file.")
@click.option("--html", type=click.Path(path_type=Path, dir_okay=False), help="Write an HTML report here.")
@click.option("--drift-share", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="The dataset drifts when at least this share of columns drifts.")
@pass_ctx
@api_errors
def drift(ctx: Ctx, project: str | None, reference: str, current: Path, html: Path | None,
          drift_share: float) -> None:
    """Compare a current file with a reference, here and now (no deployment needed). Exit code 0
    whether or not anything drifted; the last line says how many columns did.

    Example: cairn monitor drift -p shop --reference dataset:fraud@v3 --current today.parquet --html drift.html
    """
    from cairn.monitor.drift import dataset_drift
    from cairn.monitor.report import drift_html

    if not current.is_file():
        raise click.ClickException(f"{current}: no such file (--current takes a Parquet or CSV file)")
    if current.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise click.ClickException(f"{current}: --current takes a Parquet (.parquet) or CSV (.csv) file")
    ref, origin = _load_profile(ctx, reference, project)
    cur, _ = _load_profile(ctx, str(current), project, reference=ref)
    compared = [n for n in ref.columns if ref.roles.get(n, "feature") in ("feature", "prediction")]
    absent = [n for n in compared if n not in cur.columns]
    if absent:
        raise click.ClickException(f"columns {absent} of the reference are not in {current} "
                                   f"(it has {sorted(cur.columns)[:20]}); give a file with the same columns")
    try:
        result = dataset_drift(ref, cur, drift_share=drift_share, columns=compared)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    if html is not None:
        _write_atomic(html, drift_html(result, ref, cur, title=f"Drift: {current.name} vs {reference}").encode())
    summary = (f"{result.drifted_columns} of {len(result.columns)} columns drifted (share {result.share:.2f}; "
               f"dataset drift at >= {drift_share:g}: {'yes' if result.drifted else 'no'})")
    if ctx.as_json:
        emit(ctx, {"reference": origin, "current": str(current), **result.to_dict(),
                   "summary": summary, "html": str(html) if html else None})
        return
    rows = [{"column": c.column, "method": c.method, "score": _num(c.score), "threshold": _num(c.threshold),
             "drifted": "DRIFT" if c.drifted else "no"} for c in result.columns]
    emit(ctx, rows, columns=["column", "method", "score", "threshold", "drifted"])
    if html is not None:
        console.print(f"report: {html}")
    click.echo(summary)


def _print_section(title: str, value: Any) -> None:
    """Status answers nest lists and mappings; print each as a table (keys as columns)."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        value = [{"name": k, **v} for k, v in value.items()]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = list(dict.fromkeys(k for row in value for k in row))
        flat = [{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()} for row in value]
        table = Table(title=title)
        for col in columns:
            table.add_column(col)
        for row in flat:
            table.add_row(*["" if row.get(c) is None else str(row.get(c)) for c in columns])
        console.print(table)
    elif isinstance(value, (list, dict)) and not value:
        console.print(f"[bold]{title}[/bold]: none")
    else:
        console.print(f"[bold]{title}[/bold]: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


@monitor.command("status")
@click.argument("deployment")
@project_option
@pass_ctx
@api_errors
def status(ctx: Ctx, deployment: str, project: str) -> None:
    """A deployment's latest window per size, drift per column and open alerts.

    Example: cairn monitor status -p shop fraud
    """
    answer = ctx.client.monitor_status(project, deployment)
    if ctx.as_json or not isinstance(answer, dict):
        emit(ctx, answer)
        return
    for key, value in answer.items():
        _print_section(key, value)


@monitor.group("reference")
def reference_group() -> None:
    """The profile a deployment's windows are compared with.

    Example: cairn monitor reference set -p shop fraud 3f2a...
    """


@reference_group.command("set")
@click.argument("deployment")
@click.argument("digest")
@project_option
@pass_ctx
@api_errors
def reference_set(ctx: Ctx, deployment: str, digest: str, project: str) -> None:
    """Compare DEPLOYMENT with the registered profile DIGEST (see cairn monitor profile).

    Example: cairn monitor reference set -p shop fraud 3f2a...
    """
    emit(ctx, ctx.client.set_reference(project, deployment, digest))


@reference_group.command("show")
@click.argument("deployment")
@project_option
@pass_ctx
@api_errors
def reference_show(ctx: Ctx, deployment: str, project: str) -> None:
    """The reference profile DEPLOYMENT is compared with.

    Example: cairn monitor reference show -p shop fraud
    """
    emit(ctx, ctx.client.get_reference(project, deployment))


monitor.add_command(rules)
monitor.add_command(alerts)
