"""``cairn pipelines register`` and ``cairn pipelines definitions list|show|delete``: registered
pipelines, the ones a push, an event or a schedule starts. Secrets (the webhook secret, the code
host token) are read from files so they stay out of shell history and process lists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx
from cairn.cli.pipeline_runs import json_option, load_or_exit, parse_params, project_option

DEFINITION_COLUMNS = ["name", "repo", "path", "digest", "registered_at"]


def _secret(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise click.BadParameter(f"cannot read {path}: {err.strerror or err}", param_hint=what) from None
    if not value:
        raise click.BadParameter(f"{path} is empty: put the secret on its first line", param_hint=what)
    return value


def _path_in_repo(file: Path) -> str | None:
    """FILE's path from the top of its git work tree (what a push's commit holds), or None."""
    folder = file.resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if top.returncode != 0 or not top.stdout.strip():
        return None
    return file.resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()


@click.command("register")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), default=Path("cairn/pipeline.yaml"))
@project_option
@click.option("--repo", help="The repository's full name on the code host, e.g. acme/fraud (with --clone-url).")
@click.option("--clone-url", help="Where the platform fetches a pushed commit from (https://, file:// or a path).")
@click.option("--path", "repo_path", help="The file's path in the repository (default: FILE's path from the top "
              "of its git work tree, else cairn/pipeline.yaml).")
@click.option("--param", "params", multiple=True, help="key=value over the file's params for every run it starts.")
@click.option("--hook", type=click.Choice(["github", "gitlab"]), help="Which code host's push webhooks to accept.")
@click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the webhook secret (GitHub) or token (GitLab).")
@click.option("--status-url", help="The code host's commit status API base, e.g. https://api.github.com.")
@click.option("--status-token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the token for commit statuses.")
@json_option
@pass_ctx
@api_errors
def register(ctx: Ctx, file: Path, project: str, repo: str | None, clone_url: str | None, repo_path: str | None,
             params: tuple[str, ...], hook: str | None, secret_file: Path | None, status_url: str | None,
             status_token_file: Path | None) -> None:
    """Register (or replace) a pipeline so pushes to REPO, events and schedules start it. The
    file is checked here first: problems print as FILE:LINE:COL: message and nothing is sent.

    Example: cairn pipelines register cairn/pipeline.yaml -p vision --repo acme/fraud
    --clone-url https://github.com/acme/fraud.git --hook github --secret-file hook.secret
    """

    if bool(repo) != bool(clone_url):
        raise click.UsageError("--repo and --clone-url go together (the repository's name and where to fetch it)")
    if hook and not repo:
        raise click.UsageError(f"--hook {hook} needs --repo and --clone-url: a push names its repository")
    if hook and secret_file is None:
        raise click.UsageError(f"--hook {hook} needs --secret-file (the secret the code host signs pushes with)")
    if bool(status_url) != bool(status_token_file):
        raise click.UsageError("--status-url and --status-token-file go together")
    pipeline = load_or_exit(file)
    definition = ctx.client.register_pipeline(
        project, file, repo=repo, clone_url=clone_url, hook=hook, secret=_secret(secret_file, "--secret-file"),
        status_url=status_url, status_token=_secret(status_token_file, "--status-token-file"),
        path=repo_path or _path_in_repo(file), params=parse_params(params, pipeline.params))
    emit(ctx, definition)


@click.group("definitions")
def definitions() -> None:
    """Registered pipelines: list, show, delete. Example: cairn pipelines definitions list -p vision"""


@definitions.command("list")
@project_option
@json_option
@pass_ctx
@api_errors
def definitions_list(ctx: Ctx, project: str) -> None:
    """A project's registered pipelines. Example: cairn pipelines definitions list -p vision --json"""
    emit(ctx, ctx.client.pipeline_definitions(project), columns=DEFINITION_COLUMNS)


@definitions.command("show")
@click.argument("name")
@project_option
@json_option
@pass_ctx
@api_errors
def definitions_show(ctx: Ctx, name: str, project: str) -> None:
    """A registered pipeline: its file, repository and triggers. Example: cairn pipelines definitions show -p vision fraud-ml"""
    definition = ctx.client.pipeline_definition(project, name)
    if ctx.as_json:
        emit(ctx, definition)
        return
    text = definition.pop("definition", None)
    emit(ctx, definition)
    if text:
        click.echo(text, nl=not str(text).endswith("\n"))


@definitions.command("delete")
@click.argument("name")
@project_option
@json_option
@pass_ctx
@api_errors
def definitions_delete(ctx: Ctx, name: str, project: str) -> None:
    """Delete a registered pipeline (pushes no longer start it; its runs stay). Example: cairn pipelines definitions delete -p vision fraud-ml"""
    result = ctx.client.delete_pipeline_definition(project, name)
    emit(ctx, result if result is not None else {"deleted": name})
