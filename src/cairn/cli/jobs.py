"""``cairn jobs ...`` and ``cairn agent``: run work on the scheduler's agents."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx

JOB_COLUMNS = ["id", "name", "status", "attempt", "queue", "priority", "nodes", "submitted_at", "run_id"]


@click.group()
def jobs() -> None:
    """Jobs: submit a spec, follow it, cancel it.

    Example: cairn jobs submit job.yaml -p vision && cairn jobs logs -p vision JOB_ID -f
    """


@jobs.command("submit")
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", "-p", envvar="CAIRN_PROJECT", help="Project (default: project: in the spec).")
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 1 unless it succeeded.")
@pass_ctx
@api_errors
def jobs_submit(ctx: Ctx, spec_file: Path, project: str | None, wait: bool) -> None:
    """Submit a job spec (YAML). The code is the git work tree around the spec file, uncommitted
    changes included, unless the spec says ``code: none`` or another folder.

    Example: cairn jobs submit train.yaml -p vision --json
    """
    job = ctx.client.submit_job(spec_file, project)
    if wait:
        job = ctx.client.wait_job(job["project"], job["id"])
    emit(ctx, job if ctx.as_json else {k: job[k] for k in ("id", "project", "status", "run_id", "queue")})
    if wait and job["status"] != "succeeded":
        sys.exit(1)


@jobs.command("list")
@click.option("--project", "-p", required=True, envvar="CAIRN_PROJECT", help="Project (or $CAIRN_PROJECT).")
@click.option("--status", help="Only jobs in this state (queued, assigned, running, succeeded, failed, cancelled).")
@click.option("--queue", help="Only this queue.")
@click.option("--limit", default=100, show_default=True)
@pass_ctx
@api_errors
def jobs_list(ctx: Ctx, project: str, status: str | None, queue: str | None, limit: int) -> None:
    """List a project's jobs, newest first. Example: cairn jobs list -p vision --status running"""
    emit(ctx, ctx.client.list_jobs(project, status=status, queue=queue, limit=limit), columns=JOB_COLUMNS)


@jobs.command("show")
@click.argument("job_id")
@click.option("--project", "-p", required=True, envvar="CAIRN_PROJECT", help="Project (or $CAIRN_PROJECT).")
@pass_ctx
@api_errors
def jobs_show(ctx: Ctx, job_id: str, project: str) -> None:
    """A job: spec, state, attempt, ranks and history. Example: cairn jobs show -p vision JOB_ID"""
    job = ctx.client.get_job(project, job_id)
    if ctx.as_json:
        emit(ctx, job)
        return
    history = job.pop("history")
    emit(ctx, {k: v for k, v in job.items() if k != "spec"})
    emit(ctx, [{"seq": h["seq"], "time": h["time"], "type": h["type"], "actor": h["actor"]} for h in history],
         columns=["seq", "time", "type", "actor"], title="history")


@jobs.command("logs")
@click.argument("job_id")
@click.option("--project", "-p", required=True, envvar="CAIRN_PROJECT", help="Project (or $CAIRN_PROJECT).")
@click.option("--attempt", type=int, help="Which attempt (default: the current one).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the attempt ends.")
@pass_ctx
@api_errors
def jobs_logs(ctx: Ctx, job_id: str, project: str, attempt: int | None, follow: bool) -> None:
    """Print a job's output (stdout and stderr). Example: cairn jobs logs -p vision JOB_ID -f"""
    try:
        for chunk in ctx.client.job_log_chunks(project, job_id, attempt=attempt, follow=follow):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--project", "-p", required=True, envvar="CAIRN_PROJECT", help="Project (or $CAIRN_PROJECT).")
@pass_ctx
@api_errors
def jobs_cancel(ctx: Ctx, job_id: str, project: str) -> None:
    """Cancel a job (its processes get SIGTERM, then SIGKILL). Example: cairn jobs cancel -p vision JOB_ID"""
    job = ctx.client.cancel_job(project, job_id)
    emit(ctx, job if ctx.as_json else {k: job[k] for k in ("id", "status", "cancel_requested")})


@click.command()
@click.option("--queue", "-q", default="default", show_default=True, help="The queue to take jobs from.")
@click.option("--cpus", type=float, help="CPUs to offer (default: all of this machine's).")
@click.option("--memory", help="Memory to offer, e.g. 16Gi (default: all of it).")
@click.option("--gpus", type=int, help="GPUs to offer (default: what nvidia-smi lists).")
@click.option("--name", help="A name for this agent (default: the host name).")
@click.option("--host", envvar="CAIRN_HOST_ADDRESS", default="127.0.0.1", show_default=True,
              help="The address other machines reach this one at (MASTER_ADDR for rank 0, a serving "
                   "replica's CAIRN_HOST_ADDRESS), or $CAIRN_HOST_ADDRESS.")
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path.home() / ".cairn" / "agent",
              show_default=True, help="Caches (code, datasets, envs) and job folders.")
@click.option("--token", envvar="CAIRN_TOKEN", help="A site-admin or service-account token (or $CAIRN_TOKEN).")
@click.option("--nats-url", envvar="CAIRN_AGENT_NATS_URL", help="NATS URL (default: what the scheduler says).")
@click.option("--grace", default=10.0, show_default=True, help="Seconds between SIGTERM and SIGKILL on stop.")
@click.option("--system-metrics-interval", default=10.0, show_default=True,
              help="Seconds between system metric samples for a job's run (0: off).")
@pass_ctx
def agent(ctx: Ctx, queue: str, cpus: float | None, memory: str | None, gpus: int | None, name: str | None,
          host: str, work_dir: Path, token: str | None, nats_url: str | None, grace: float,
          system_metrics_interval: float) -> None:
    """Run jobs from a queue on this machine until Ctrl-C or SIGTERM.

    Example: cairn agent --queue gpu --gpus 2 --name trainer-1 --work-dir /scratch/cairn
    """
    from cairn.agent.agent import Agent, run_agent
    from cairn.agent.capacity import detect_capacity
    from cairn.protocol import memory_mib
    from cairn.sdk.client import Client

    try:
        memory_value = memory_mib(memory) if memory is not None else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--memory") from None
    client = Client(ctx.url, token or ctx.token)
    capacity = detect_capacity(cpus, memory_value, gpus)
    run_agent(Agent(client, queue=queue, capacity=capacity, name=name, work_dir=work_dir.expanduser().resolve(),
                    host=host, nats_url=nats_url, grace_s=grace, system_metrics_s=system_metrics_interval))
