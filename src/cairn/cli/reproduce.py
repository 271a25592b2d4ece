"""``cairn runs reproduce``: re-queue a run from its record and report how close the re-run came."""

from __future__ import annotations

import shlex

import click

from cairn.cli.output import Ctx, api_errors, console, emit, pass_ctx
from cairn.cli.registry import project_option
from cairn.cli.reproducibility import print_diff
from cairn.sdk.reproduce import CannotReproduce, report, reproduce


@click.command("reproduce")
@project_option
@click.argument("run_id")
@click.option("--queue", "-q", default=None, help="Queue for the re-run (default: the original job's queue).")
@click.option("--command", "command", default=None,
              help="Command for runs started outside a job whose command line cannot be re-run as recorded.")
@click.option("--tolerance", type=float, default=0.0, show_default=True,
              help="Largest change in a final metric still counted as reproduced.")
@click.option("--relative", is_flag=True, help="Tolerance is a fraction of the original value.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the re-run and report.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait (default: no limit).")
@pass_ctx
@api_errors
def runs_reproduce(ctx: Ctx, project: str, run_id: str, queue: str | None, command: str | None,
                   tolerance: float, relative: bool, wait: bool, timeout: float | None) -> None:
    """Re-run RUN_ID with the same code, data, params, seeds and requirements on an agent, then
    report what differed in the environment and which final metrics moved beyond the tolerance.

    Example: cairn runs reproduce -p vision 01a2...ff --queue gpu --tolerance 0.01
    """
    client = ctx.client
    try:
        job = reproduce(client, project, run_id, queue=queue, command=shlex.split(command) if command else None)
    except CannotReproduce as err:
        raise click.ClickException(str(err)) from None
    if not wait:
        if ctx.as_json:
            emit(ctx, job)
        else:
            console.print(f"queued job {job['id']} (run {job['run_id']}); "
                          f"`cairn jobs logs -p {project} {job['id']} -f` follows it")
        return
    if not ctx.as_json:
        console.print(f"queued job {job['id']} (run {job['run_id']}); waiting for it to end...")
    final = client.wait_job(project, job["id"], timeout=timeout)
    result = report(client, run_id, job["run_id"], tolerance=tolerance, relative=relative)
    result["job"] = {"id": job["id"], "status": final["status"]}
    if ctx.as_json:
        emit(ctx, result)
        return
    print_diff(result["diff"], max_diff_lines=200)
    verdict = "reproduced" if final["status"] == "succeeded" and result["metrics_within_tolerance"] else "NOT reproduced"
    console.print(f"[bold]{verdict}[/bold]: job {final['status']}; metrics outside tolerance: "
                  f"{', '.join(result['metrics_outside_tolerance']) or 'none'}")
    if final["status"] != "succeeded" or not result["metrics_within_tolerance"]:
        raise SystemExit(1)
