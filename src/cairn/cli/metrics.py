"""``cairn metrics list|show|export``: a run's metrics from the command line.

``show`` draws each curve in the terminal from the server's downsampled (minmax) read: the server
keeps every bucket's min, max and last point, and each character column here shows the min..max
band of the points that fall in it, so a spike is never averaged away. ``export`` writes every
point (full fidelity) to CSV or Parquet page by page (step ranges), so a million-point series is
never whole in memory, let alone twice. numpy and pyarrow are imported inside the functions that
need them, so ``cairn --help`` stays quick.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx
from cairn.kernel.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from cairn.sdk.metrics import MetricHistory

project_option = click.option("--project", "-p", required=True, envvar="CAIRN_PROJECT",
                              help="Project name (or $CAIRN_PROJECT).")
EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# braille: a character is 2 dot columns x 4 dot rows; bit of (column, row from the top)
BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


@click.group()
def metrics() -> None:
    """A run's metrics: list the keys, draw the curves, export every point.

    Example: cairn metrics show -p vision RUN_ID loss --width 100 --height 15
    """


def _summaries(ctx: Ctx, project: str, run_id: str) -> dict[str, dict[str, Any]]:
    return ctx.client.metric_summary(project, run_id)


def _chosen_keys(summaries: dict[str, dict[str, Any]], run_id: str, keys: tuple[str, ...]) -> list[str]:
    """The keys asked for (all of the run's when none), each checked against the run's summaries,
    so a typo is one line naming the keys that exist rather than an empty chart."""
    if not summaries:
        raise NotFound(f"run {run_id} has no metrics (check the run id and --project; "
                       f"`cairn runs show -p PROJECT {run_id}`)")
    missing = [key for key in keys if key not in summaries]
    if missing:
        raise NotFound(f"run {run_id} has no metric {', '.join(map(repr, missing))}; its keys: "
                       f"{', '.join(sorted(summaries))}")
    return list(keys) or sorted(summaries)


def format_number(value: Any) -> str:
    """A metric value for people: six significant digits; NaN and infinities as the API spells them."""
    if value is None:
        return ""
    if isinstance(value, str):  # "NaN", "Infinity" as the API writes them
        return value
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@metrics.command("list")
@project_option
@click.argument("run_id")
@pass_ctx
@api_errors
def metrics_list(ctx: Ctx, project: str, run_id: str) -> None:
    """A run's metric keys with last, min, max and count. Example: cairn metrics list -p vision RUN_ID"""
    rows = list(_summaries(ctx, project, run_id).values())
    if ctx.as_json:
        emit(ctx, rows)
        return
    emit(ctx, [{**row, **{k: format_number(row.get(k)) for k in ("last", "min", "max")}} for row in rows],
         columns=["key", "last", "min", "max", "count", "last_step"])


def _json_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


@metrics.command("show")
@project_option
@click.argument("run_id")
@click.argument("keys", nargs=-1)
@click.option("--points", type=click.IntRange(3, 1_000_000),
              help="Points to ask the server for (minmax); default 6 per dot column.")
@click.option("--from", "step_min", type=int, help="First step to show (inclusive).")
@click.option("--to", "step_max", type=int, help="Last step to show (inclusive).")
@click.option("--width", type=click.IntRange(10, 1000), default=72, show_default=True, help="Chart columns.")
@click.option("--height", type=click.IntRange(2, 200), default=12, show_default=True, help="Chart rows.")
@click.option("--ascii", "plain", is_flag=True, help="Draw with '#' instead of Unicode braille.")
@pass_ctx
@api_errors
def metrics_show(ctx: Ctx, project: str, run_id: str, keys: tuple[str, ...], points: int | None,
                 step_min: int | None, step_max: int | None, width: int, height: int, plain: bool) -> None:
    """Draw each key's curve (every key of the run when none is named): the min..max band of each
    column, with last, min, max, count and the step range. --json gives the points instead.

    Example: cairn metrics show -p vision RUN_ID loss val_loss --from 1000 --to 5000 --ascii
    """
    if step_min is not None and step_max is not None and step_min > step_max:
        raise InvalidInput(f"--from {step_min} is after --to {step_max}; swap them")
    chosen = _chosen_keys(_summaries(ctx, project, run_id), run_id, keys)
    dot_columns = width if plain else 2 * width
    asked = points or min(1_000_000, 6 * dot_columns)
    shown = []
    for key in chosen:
        history = ctx.client.metric_history(project, run_id, key, points=asked, step_min=step_min,
                                            step_max=step_max, as_lists=ctx.as_json)
        if isinstance(history, dict):  # --json: plain lists
            history["values"] = [_json_float(v) for v in history["values"]]
            shown.append(history)
        else:
            click.echo("\n".join(chart(key, history, width, height, plain)))
    if ctx.as_json:
        emit(ctx, {"run_id": run_id, "metrics": shown})


def chart(key: str, history: Mapping[str, Any] | MetricHistory, width: int, height: int, plain: bool) -> list[str]:
    """A header line (last, min, max, count, steps) and the curve below it."""
    import numpy as np

    steps = np.asarray(history["steps"], dtype=np.int64)
    values = np.asarray(history["values"], dtype=np.float64)
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    if steps.size == 0:
        return [f"{key}: no points in this step range"]
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (math.nan, math.nan)
    sampled = "" if history["method"] == "full" else f", drawn from {steps.size} of them ({history['method']})"
    header = (f"{key}  last {format_number(float(values[-1]))} (step {int(steps[-1])})  min {format_number(low)}  "
              f"max {format_number(high)}  count {history['total']}{sampled}  steps {int(steps[0])}..{int(steps[-1])}")
    if not finite.size:
        return [header, "  (no finite values to draw)"]
    return [header, *plot(steps, values, width, height, plain)]


def column_bands(steps: np.ndarray, values: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of the finite values in each of ``columns`` equal step ranges (NaN where a
    column has none): the band a column draws, so one spike shows in the column that holds it."""
    import numpy as np

    first, last = int(steps[0]), int(steps[-1])
    span = max(1, last - first + 1)
    column = np.minimum(((steps - first).astype(np.float64) * columns / span).astype(np.int64), columns - 1)
    keep = np.isfinite(values)
    column, kept = column[keep], values[keep]
    low = np.full(columns, np.inf)
    high = np.full(columns, -np.inf)
    np.minimum.at(low, column, kept)
    np.maximum.at(high, column, kept)
    empty = low > high  # no finite value fell in the column
    low[empty], high[empty] = np.nan, np.nan
    return low, high


def plot(steps: np.ndarray, values: np.ndarray, width: int, height: int, plain: bool) -> list[str]:
    """The chart's rows, top first, a y label on the first and last row, the step range below."""
    import numpy as np

    dots_x, dots_y = (width, height) if plain else (2 * width, 4 * height)
    low, high = column_bands(steps, values, dots_x)
    top, bottom = float(np.nanmax(high)), float(np.nanmin(low))
    if top == bottom:
        top, bottom = top + 0.5, bottom - 0.5
    scale = (dots_y - 1) / (top - bottom)
    cells = np.zeros((height, width), dtype=np.int64)
    for x in range(dots_x):
        if math.isnan(low[x]):
            continue
        lo = int(round((low[x] - bottom) * scale))
        hi = int(round((high[x] - bottom) * scale))
        for level in range(lo, hi + 1):
            row_from_top = dots_y - 1 - level
            if plain:
                cells[row_from_top, x] = 1
            else:
                cells[row_from_top // 4, x // 2] |= BRAILLE_BITS[x % 2][row_from_top % 4]
    lines = []
    for row in range(height):
        label = format_number(top) if row == 0 else format_number(bottom) if row == height - 1 else ""
        bar = "|" if plain else "┤" if label else "│"
        drawn = "".join(("#" if cell else " ") if plain else chr(0x2800 + int(cell)) for cell in cells[row])
        lines.append(f"{label:>11} {bar}{drawn}")
    first, last = str(int(steps[0])), str(int(steps[-1]))
    lines.append(f"{'step':>11}  {first}{last:>{max(1, width - len(first))}}")
    return lines


@metrics.command("export")
@project_option
@click.argument("run_id")
@click.argument("keys", nargs=-1)
@click.option("--output", "-o", required=True,
              help="File to write (.csv, .parquet or .pq), or - for CSV on stdout.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), help="Overrides the file's suffix.")
@click.option("--page-points", type=click.IntRange(1000, 10_000_000), default=250_000, show_default=True,
              help="About how many points to fetch per request (memory use is bounded by this).")
@pass_ctx
@api_errors
def metrics_export(ctx: Ctx, project: str, run_id: str, keys: tuple[str, ...], output: str, fmt: str | None,
                   page_points: int) -> None:
    """Every point (step, value, timestamp, key) of the keys named (all when none) to CSV or
    Parquet, fetched page by page. Example: cairn metrics export -p vision RUN_ID loss -o loss.parquet"""
    if fmt is None:
        fmt = "csv" if output == "-" else EXPORT_FORMATS.get(Path(output).suffix.lower())
        if fmt is None:
            raise InvalidInput(f"cannot tell the format of {output!r} from its suffix: name it .csv, .parquet "
                               "or .pq, or pass --format csv|parquet")
    if output == "-" and fmt != "csv":
        raise InvalidInput("Parquet cannot go to stdout: give a file with -o, or --format csv")
    chosen = _chosen_keys(_summaries(ctx, project, run_id), run_id, keys)
    pages = (page for key in chosen for page in export_pages(ctx, project, run_id, key, page_points))
    if output == "-":
        sys.stdout.flush()
        _write(pages, sys.stdout.buffer, fmt)
        return
    target = Path(output)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as sink:
            written = _write(pages, sink, fmt)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    click.echo(f"{written} points of {len(chosen)} key(s) written to {target} ({fmt})", err=True)


def export_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("step", pa.int64()), ("value", pa.float64()), ("timestamp", pa.float64()),
                      ("key", pa.string())])


def export_pages(ctx: Ctx, project: str, run_id: str, key: str, page_points: int) -> Any:
    """One key's every point as tables of about ``page_points`` rows, by step ranges: LTTB keeps a
    series' first and last point, so a 3-point read gives the bounds and the count; the step window
    then adapts to how densely the steps are filled."""
    import pyarrow as pa

    probe = ctx.client.metric_table(project, run_id, key, points=3, method="lttb")
    total = int((probe.schema.metadata or {}).get(b"total", probe.num_rows))
    if total == 0:
        return
    steps = probe.column("step").to_pylist()
    first, last = min(steps), max(steps)
    window = max(1, (last - first + 1) * page_points // max(total, 1))
    cursor = first
    while cursor <= last:
        upper = min(last, cursor + window - 1)
        page = ctx.client.metric_table(project, run_id, key, step_min=cursor, step_max=upper)
        if page.num_rows:
            yield pa.table({"step": page.column("step").cast(pa.int64()),
                            "value": page.column("value").cast(pa.float64()),
                            "timestamp": page.column("timestamp").cast(pa.float64()),
                            "key": pa.array([key] * page.num_rows, pa.string())}, schema=export_schema())
        if page.num_rows > 2 * page_points and window > 1:
            window = max(1, window // 2)
        elif page.num_rows < page_points // 2:
            window *= 2
        cursor = upper + 1


def _write(pages: Any, sink: Any, fmt: str) -> int:
    """Write the pages as they come (one page in memory at a time); returns the points written."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    count = 0
    writer: Any = (pacsv.CSVWriter(sink, export_schema()) if fmt == "csv"
                   else pq.ParquetWriter(sink, export_schema(), compression="zstd"))
    with writer:
        for page in pages:
            writer.write_table(page)
            count += page.num_rows
    return count
