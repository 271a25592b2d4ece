"""Entry point of the ``cairn`` command."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from cairn.cli.lazy import LazyCommand, LazyGroup
from cairn.cli.output import Ctx, api_errors, emit, fail, pass_ctx

# Where ~/.cairn is: the same default as cairn.kernel.settings.DEFAULT_DATA_DIR, without importing
# pydantic-settings for every command (tests/test_cli_startup.py checks they agree).
DEFAULT_DATA_DIR = Path.home() / ".cairn"

# Every command that lives in another module, imported only when it runs; the short help is what
# `cairn --help` prints (tests/test_cli_startup.py checks it against each command's own help).
COMMANDS: dict[str, LazyCommand] = {
    "agent": LazyCommand("cairn.cli.jobs:agent", "Run jobs from a queue on this machine until Ctrl-C or SIGTERM."),
    "artifacts": LazyCommand("cairn.cli.datasets:artifacts", "Run artifacts and the blob store: log, list, get, gc."),
    "audit": LazyCommand("cairn.cli.access:audit", "Who did what and when, from the event log."),
    "backup": LazyCommand("cairn.cli.backup:backup", "Back up the event log and the other JetStream state, and restore it."),
    "cluster": LazyCommand("cairn.cli.cluster:cluster",
                           "Cluster mode: certificates and NATS configs for a cluster of machines."),
    "datasets": LazyCommand("cairn.cli.datasets:datasets", "Versioned datasets: push, pull, list, show, diff."),
    "deployments": LazyCommand("cairn.cli.deployments:deployments",
                               "Deployments: which model version serves in which environment."),
    "experiments": LazyCommand("cairn.cli.registry:experiments", "Experiments in a project."),
    "fingerprint": LazyCommand("cairn.cli.fingerprint:fingerprint",
                               "Print the dataset digest, file count and total size of PATH (a directory or a file)."),
    "jobs": LazyCommand("cairn.cli.jobs:jobs", "Jobs: submit a spec, follow it, cancel it."),
    "lineage": LazyCommand("cairn.cli.lineage:lineage",
                           "Lineage: what produced what, across datasets, runs, blobs, models and aliases."),
    "media": LazyCommand("cairn.cli.media:media",
                         "A run's media: images, figures, tables, text and HTML by key and step."),
    "members": LazyCommand("cairn.cli.access:members", "Project members and roles (viewer < editor < admin)."),
    "metrics": LazyCommand("cairn.cli.metrics:metrics",
                           "A run's metrics: list the keys, draw the curves, export every point."),
    "models": LazyCommand("cairn.cli.registry:models", "Models, versions and aliases."),
    "monitor": LazyCommand("cairn.cli.monitor:monitor",
                           "Monitoring: profiles, drift, references, alert rules and alerts."),
    "pipelines": LazyCommand("cairn.cli.pipelines:pipelines", "Pipelines: steps from data to a deployed model, "
                             "triggered by a push, new data or an alert."),
    "projects": LazyCommand("cairn.cli.registry:projects", "Projects: create, list, show, archive."),
    "runs": LazyCommand("cairn.cli.runs:runs", "Runs: create, list/search, show, tag, params, finish."),
    "serve": LazyCommand("cairn.serving.serve:serve",
                         "Serve a registered model over HTTP (MLflow /invocations and KServe v2)."),
    "status": LazyCommand("cairn.cli.status:status",
                          "NATS nodes, streams, every service replica's projection lag, and leaders."),
    "sweeps": LazyCommand("cairn.cli.sweeps:sweeps",
                          "Hyperparameter sweeps: grid, random or Bayesian search with early stopping."),
    "tokens": LazyCommand("cairn.cli.access:tokens", "Bearer tokens (shown once, stored as hashes)."),
    "webhooks": LazyCommand("cairn.cli.access:webhooks", "Signed webhooks for a project's events."),
    "whoami": LazyCommand("cairn.cli.access:whoami", "Who this token belongs to and its roles."),
}

GLOBAL_FLAGS = ("--json", "--debug")


def lift_global_flags(args: list[str]) -> list[str]:
    """Move ``--json`` and ``--debug`` to the front wherever the user put them (before ``--``), so
    ``cairn runs list -p x --json`` is ``cairn --json runs list -p x``: one option on the root
    group rather than a copy on every command."""
    end = args.index("--") if "--" in args else len(args)
    lifted = [a for a in args[:end] if a in GLOBAL_FLAGS]
    return lifted + [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]


class CairnGroup(LazyGroup):
    """The root group: commands imported only when they run (:class:`LazyGroup`), global flags
    anywhere on the line, and every failure down one path
    (:func:`cairn.cli.output.fail`): a one-line message and an exit code, no traceback without
    ``--debug``. A closed pipe (``cairn --json runs list | head``) is left to click, which exits
    quietly."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, lift_global_flags(list(args)))

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                BrokenPipeError, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: BLE001 - the one place a failure becomes a message
            if isinstance(err, OSError | ValueError) or type(err).__module__.startswith(("cairn", "httpx")):
                fail(err)
            fail(RuntimeError(f"unexpected {type(err).__name__}: {err} (run again with --debug for the "
                              "traceback, and report it)"))


@click.group(cls=CairnGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="CAIRN_URL", help="Gateway URL (default $CAIRN_URL or http://127.0.0.1:8080).")
@click.option("--token", envvar="CAIRN_TOKEN",
              help="API token (default $CAIRN_TOKEN, else $CAIRN_DATA_DIR/admin.token or ~/.cairn/admin.token).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output (also after the subcommand).")
@click.option("--debug", is_flag=True, envvar="CAIRN_DEBUG",
              help="Show the traceback of a failure (also $CAIRN_DEBUG=1; anywhere on the line).")
@click.version_option(package_name="cairn-mlops")
@click.pass_context
def cli(click_ctx: click.Context, url: str | None, token: str | None, as_json: bool, debug: bool) -> None:
    """Cairn: reproducible runs, a shared hub, scalable jobs, continuous delivery.

    --json and --debug may go anywhere on the line. Exit codes: 0 ok, 1 refused (by the API, or a
    bad file or value), 2 usage, 3 cannot reach the gateway (see docs/cli.md).

    Example: cairn up   (then, in another shell)   cairn runs list -p demo --json
    """
    click_ctx.obj = Ctx(url, as_json, debug=debug, token=token)


@cli.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=DEFAULT_DATA_DIR, show_default=True,
              envvar="CAIRN_DATA_DIR", help="Where the event log and projections live (one cairn up at a time).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Gateway port (the one public port); 0 for a free one (printed with the URL).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the gateway listens on; the services and NATS always listen on 127.0.0.1.")
@click.option("--nats-port", default=4222, show_default=True, type=click.IntRange(0, 65535),
              help="Port (on 127.0.0.1) for the NATS server we start; in use: an error before anything "
                   "starts. 0: a free port, chosen and printed.")
@click.option("--nats-url", help="Use this NATS server instead of starting one (no user or password in the URL).")
@click.option("--nats-creds", type=click.Path(path_type=Path, dir_okay=False),
              help='With --nats-url: a file (mode 0600) {"user": ..., "password": ...} the services and '
                   "the gateway connect with.")
@click.option("--nats-agent-creds", type=click.Path(path_type=Path, dir_okay=False),
              help="With --nats-url: a file like --nats-creds with the user the scheduler hands to agents.")
@click.option("--service-replicas", default=1, show_default=True, type=click.IntRange(1, 8),
              envvar="CAIRN_SERVICE_REPLICAS",
              help="Replicas of each service that can have several (registry, lineage), each with a "
                   "read model of its own; the gateway spreads requests over them.")
def up(data_dir: Path, port: int, host: str, nats_port: int, nats_url: str | None, nats_creds: Path | None,
       nats_agent_creds: Path | None, service_replicas: int) -> None:
    """Start the whole platform on this machine and supervise it until Ctrl-C.

    NATS takes only Cairn's users: credentials are made on first start under
    DATA_DIR/secrets/nats (mode 0600). A second cairn up on the same data dir, or a port in use,
    stops with an error before anything starts.

    Example: cairn up --data-dir ./cairn-data --port 8080 --nats-port 0
    """
    from cairn import up as supervisor
    from cairn.kernel.errors import ConfigurationError

    if nats_url is None and (nats_creds or nats_agent_creds):
        raise click.UsageError("--nats-creds and --nats-agent-creds go with --nats-url (the NATS server we "
                               "start has users of its own)")
    try:
        supervisor.run(data_dir.expanduser().resolve(), port, host, nats_url, nats_port, nats_creds,
                       nats_agent_creds, service_replicas)
    except ConfigurationError as err:
        raise click.ClickException(err.message) from None


@cli.group()
def admin() -> None:
    """Operations: rebuild projections, parked events. Example: cairn admin rebuild registry"""


@admin.command("rebuild")
@click.argument("service")
@pass_ctx
@api_errors
def admin_rebuild(ctx: Ctx, service: str) -> None:
    """Drop a service's projection and replay the event log into it. Example: cairn admin rebuild registry"""
    started = time.monotonic()
    result = ctx.client.rebuild(service)
    result["wall_seconds"] = round(time.monotonic() - started, 3)
    emit(ctx, result)


@admin.command("parked")
@click.argument("action", type=click.Choice(["list", "retry", "skip"]))
@click.argument("service")
@click.argument("sequence", type=int, required=False)
@pass_ctx
@api_errors
def admin_parked(ctx: Ctx, action: str, service: str, sequence: int | None) -> None:
    """Events a service's projection could not apply: list them, retry one (after fixing its
    cause), or skip one for good. Example: cairn admin parked retry registry 1234"""
    if action == "list":
        result = ctx.client.parked(service)
        if ctx.as_json:
            emit(ctx, result)
        else:
            emit(ctx, result["parked"], columns=["sequence", "type", "subject", "error"])
        return
    if sequence is None:
        raise click.UsageError(f"cairn admin parked {action} needs the event's sequence "
                               f"(see: cairn admin parked list {service})")
    emit(ctx, ctx.client.retry_parked(service, sequence) if action == "retry"
         else ctx.client.skip_parked(service, sequence))


@cli.group(cls=LazyGroup, lazy={"credentials": LazyCommand(
    "cairn.cli.events_credentials:credentials",
    "Read-only NATS credentials per project for other systems (password shown once).")})
def events() -> None:
    """The event log. Example: cairn events tail --project vision --type 'run.*'"""


@events.command("tail")
@click.option("--project", "-p", help="Only this project's events.")
@click.option("--type", "types", multiple=True, help="Event type glob, e.g. run.* (repeatable).")
@click.option("--since", type=int, help="Replay from after this stream sequence, then follow.")
@pass_ctx
@api_errors
def events_tail(ctx: Ctx, project: str | None, types: tuple[str, ...], since: int | None) -> None:
    """Print events live as they are appended. Example: cairn events tail -p vision --type 'model_version.*'"""
    try:
        for event in ctx.client.events(project=project, types=",".join(types) or None, since=since):
            if ctx.as_json:
                click.echo(json.dumps(event, separators=(",", ":")))
            else:
                click.echo(f"{event['sequence']:>8}  {event['time']}  {event['project']}  {event['type']:<28} "
                           f"{event['aggregate']}/{event['aggregate_id']}  by {event['actor']}  "
                           f"{json.dumps(event['data'], separators=(',', ':'))[:120]}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    cli()
