"""``cairn runs diff A B`` (what differs between two runs) and ``cairn runs environment`` (a run's
reproducibility record), as tables or ``--json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.syntax import Syntax
from rich.table import Table

from cairn.cli.output import Ctx, api_errors, console, emit, pass_ctx
from cairn.cli.registry import project_option
from cairn.sdk.reproducibility import diff_runs_with_code

ENV_SECTIONS = ("python", "os", "host", "hardware", "drivers", "frameworks", "env")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    return str(value)


def _rows(diff: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = [(k, "-", _text(v)) for k, v in diff["added"].items()]
    rows += [(k, _text(v), "-") for k, v in diff["removed"].items()]
    rows += [(k, _text(c["a"]), _text(c["b"])) for k, c in diff["changed"].items()]
    return sorted(rows)


def _table(title: str, rows: Sequence[tuple[str, ...]], columns: tuple[str, ...] = ("key", "a", "b")) -> None:
    if not rows:
        console.print(f"[bold]{title}[/bold]: same")
        return
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _metric_rows(metrics: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for key, m in metrics["metrics"].items():
        delta = "-" if m["delta"] is None else f"{m['delta']:+.6g}"
        rows.append((key, _text(m["a"]), _text(m["b"]), delta, "yes" if m["within_tolerance"] else "NO"))
    rows += [(key, "(logged)", "-", "-", "NO") for key in metrics["only_in_a"]]
    rows += [(key, "-", "(logged)", "-", "NO") for key in metrics["only_in_b"]]
    return rows


def print_diff(diff: dict[str, Any], max_diff_lines: int) -> None:
    """The diff for people: one table per part, 'same' where nothing differs."""
    for side in ("a", "b"):
        run = diff[side]
        console.print(f"[bold]{side}[/bold]: {run['id']}  {run['project']}/{run['name']}  ({run['status']})")
    _table("params", _rows(diff["params"]))
    code = diff["code"]
    fields = ("commit", "branch", "dirty", "remote", "archive_digest", "files")
    _table("code", [(f, _text((code["a"] or {}).get(f)), _text((code["b"] or {}).get(f))) for f in fields
                    if f in code["changed"] or code["a"] is None or code["b"] is None])
    if code.get("unified_diff"):
        lines = code["unified_diff"].splitlines()
        shown = "\n".join(lines[:max_diff_lines])
        console.print(Syntax(shown, "diff", theme="ansi_dark", word_wrap=True))
        if len(lines) > max_diff_lines:
            console.print(f"... {len(lines) - max_diff_lines} more lines (--max-diff-lines, or --json)")
    elif code.get("unified_diff_error"):
        console.print(f"code diff not available: {code['unified_diff_error']}")
    env = diff["environment"]
    missing = [side for side, ok in env["recorded"].items() if not ok]
    if missing:
        console.print(f"[yellow]no environment record for run {', '.join(missing)}[/yellow]")
    _table("packages", _rows(env["packages"]), ("package", "a", "b"))
    _table("environment (python, os, host, hardware, drivers, frameworks, env vars)",
           [(f"{s}.{k}", a, b) for s in ENV_SECTIONS for k, a, b in _rows(env[s])])
    _table("datasets", _rows(diff["datasets"]), ("dataset", "a", "b"))
    _table("final metrics", _metric_rows(diff["metrics"]), ("metric", "a", "b", "delta", "within tolerance"))
    _table("seeds", _rows(diff["seeds"]))
    command = diff["command"]
    _table("command", [] if command["same"] else [("command", _text(command["a"]), _text(command["b"]))])


@click.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--tolerance", type=float, default=0.0, show_default=True,
              help="Metric deltas up to this are 'within tolerance' (absolute, or a fraction with --relative).")
@click.option("--relative", is_flag=True, help="Tolerance is a fraction of run A's value.")
@click.option("--no-code", "no_code", is_flag=True, help="Do not download the code archives to diff them.")
@click.option("--system-metrics", is_flag=True, help="Also compare system/* metrics (CPU, memory, GPU use).")
@click.option("--max-diff-lines", type=int, default=400, show_default=True)
@pass_ctx
@api_errors
def runs_diff(ctx: Ctx, run_a: str, run_b: str, tolerance: float, relative: bool, no_code: bool,
              system_metrics: bool, max_diff_lines: int) -> None:
    """What differs between two runs (any of your projects): params, code (with the unified diff of
    the code snapshots), packages, hardware and drivers, env vars, datasets, final metrics, seeds.

    Example: cairn runs diff 0190ab12 0190ab34 --tolerance 0.01
    """
    diff = diff_runs_with_code(ctx.client, run_a, run_b, tolerance=tolerance, relative=relative,
                               code=not no_code, system_metrics=system_metrics)
    if ctx.as_json:
        emit(ctx, diff)
    else:
        print_diff(diff, max_diff_lines)


def _notebook_line(notebook: dict[str, Any]) -> str:
    """``train.ipynb (session_hint, 12 cells, outputs stripped)``: a notebook run's code (docs/notebooks.md)."""
    kept = "outputs kept, secrets scrubbed" if notebook.get("outputs_kept") else "outputs stripped"
    return f"{notebook.get('name')} ({notebook.get('found_by')}, {notebook.get('cells')} cells, {kept})"


@click.command("environment")
@project_option
@click.argument("run_id")
@click.option("--packages", "show_packages", is_flag=True, help="List every installed package too.")
@pass_ctx
@api_errors
def runs_environment(ctx: Ctx, project: str, run_id: str, show_packages: bool) -> None:
    """A run's reproducibility record: code, command, seeds, datasets, and what it ran on.

    Example: cairn runs environment -p vision 01a2...ff --packages
    """
    record = ctx.client.get_run_environment(project, run_id)
    if ctx.as_json:
        emit(ctx, record)
        return
    code = record.get("code") or {}
    env = record.get("environment") or {}
    gpu = env.get("gpu") or {}
    rows = [
        ("commit", code.get("commit")), ("branch", code.get("branch")), ("remote", code.get("remote")),
        ("dirty", code.get("dirty")), ("code archive", code.get("archive_digest")),
        *([("notebook", _notebook_line(code["notebook"]))] if code.get("notebook") else []),
        ("command", " ".join(record.get("command") or [])), ("seeds", record.get("seeds")),
        ("datasets", [f"{d['dataset']}@v{d['version']}" for d in record.get("datasets", [])]),
        ("python", (env.get("python") or {}).get("version")), ("os", (env.get("os") or {}).get("distro")),
        ("host", env.get("hostname")), ("cpu", f"{(env.get('cpu') or {}).get('model')} x{(env.get('cpu') or {}).get('count')}"),
        ("gpus", [d.get("name") for d in gpu.get("devices") or []]), ("driver", gpu.get("driver")),
        ("cuda", gpu.get("cuda") or gpu.get("cuda_driver")), ("cudnn", gpu.get("cudnn")),
        ("frameworks", env.get("frameworks")), ("env", env.get("env")),
        ("packages", env.get("packages") if show_packages else f"{len(env.get('packages') or [])} (--packages lists them)"),
    ]
    _table(f"run {run_id}", [(k, _text(v)) for k, v in rows], ("", "value"))
