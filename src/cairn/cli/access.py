"""``cairn tokens|members|audit|webhooks|whoami``: access control, audit and subscriptions."""

from __future__ import annotations

import click

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx

project_option = click.option("--project", "-p", required=True, envvar="CAIRN_PROJECT",
                              help="Project name (or $CAIRN_PROJECT).")


@click.command()
@pass_ctx
@api_errors
def whoami(ctx: Ctx) -> None:
    """Who this token belongs to and its roles. Example: cairn whoami"""
    emit(ctx, ctx.client.whoami())


@click.group()
def tokens() -> None:
    """Bearer tokens (shown once, stored as hashes). Example: cairn tokens create --user ci --service"""


@tokens.command("create")
@click.option("--user", help="Whose token (default: yours; others need a site admin).")
@click.option("--service", is_flag=True, help="A service account (for CI systems and agents).")
@click.option("--site-admin", is_flag=True, help="A site-admin token (site admins only).")
@click.option("--expires-in-days", type=float,
              help="Default: never. At most until the token you use expires (else an error says when).")
@click.option("--description", default="")
@pass_ctx
@api_errors
def tokens_create(ctx: Ctx, user: str | None, service: bool, site_admin: bool, expires_in_days: float | None,
                  description: str) -> None:
    """Create a token; it is printed once. Example: cairn tokens create --user alice --expires-in-days 30"""
    made = ctx.client.create_token(user, kind="service" if service else "user", site_admin=site_admin,
                                   expires_in_days=expires_in_days, description=description)
    if ctx.as_json:
        emit(ctx, made)
    else:
        click.echo(f"token for {made['user']} (id {made['token_id']}); it will not be shown again:")
        click.echo(made["token"])


@tokens.command("list")
@click.option("--user")
@pass_ctx
@api_errors
def tokens_list(ctx: Ctx, user: str | None) -> None:
    """List tokens (never their secrets). Example: cairn tokens list --json"""
    emit(ctx, ctx.client.list_tokens(user),
         columns=["token_id", "user", "kind", "site_admin", "expires_at", "revoked", "description"])


@tokens.command("revoke")
@click.argument("token_id")
@pass_ctx
@api_errors
def tokens_revoke(ctx: Ctx, token_id: str) -> None:
    """Revoke a token at once. Example: cairn tokens revoke 3fa2c1d09b7e"""
    emit(ctx, ctx.client.revoke_token(token_id))


@click.group()
def members() -> None:
    """Project members and roles (viewer < editor < admin). Example: cairn members add -p vision bob editor"""


@members.command("add")
@project_option
@click.argument("user")
@click.argument("role", type=click.Choice(["viewer", "editor", "admin"]))
@pass_ctx
@api_errors
def members_add(ctx: Ctx, project: str, user: str, role: str) -> None:
    """Give a user a role. Example: cairn members add -p vision bob viewer"""
    emit(ctx, ctx.client.add_member(project, user, role), columns=["user", "role", "updated_at"])


@members.command("remove")
@project_option
@click.argument("user")
@pass_ctx
@api_errors
def members_remove(ctx: Ctx, project: str, user: str) -> None:
    """Remove a user from a project. Example: cairn members remove -p vision bob"""
    emit(ctx, ctx.client.remove_member(project, user), columns=["user", "role", "updated_at"])


@members.command("list")
@project_option
@pass_ctx
@api_errors
def members_list(ctx: Ctx, project: str) -> None:
    """List members. Example: cairn members list -p vision"""
    emit(ctx, ctx.client.list_members(project), columns=["user", "role", "updated_at"])


@click.command()
@click.option("--project", "-p")
@click.option("--actor", help="A user name.")
@click.option("--type", "types", help="Event type globs, comma-separated (e.g. 'run.*').")
@click.option("--since", help="ISO time, e.g. 2026-11-26T08:00:00Z")
@click.option("--limit", default=100, show_default=True)
@click.option("--cursor", default=0)
@pass_ctx
@api_errors
def audit(ctx: Ctx, project: str | None, actor: str | None, types: str | None, since: str | None, limit: int,
          cursor: int) -> None:
    """Who did what and when, from the event log. Example: cairn audit -p vision --actor bob --type 'model_version.*'"""
    page = ctx.client.audit(project=project, actor=actor, types=types, since=since, cursor=cursor, limit=limit)
    if ctx.as_json:
        emit(ctx, page)
        return
    emit(ctx, page["events"], columns=["sequence", "time", "actor", "type", "aggregate_id", "correlation_id"])
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}")


@click.group()
def webhooks() -> None:
    """Signed webhooks for a project's events. Example: cairn webhooks create -p vision --types 'run.*' --url https://ci/hook"""


@webhooks.command("create")
@project_option
@click.option("--url", required=True)
@click.option("--types", required=True, help="Comma-separated globs, e.g. 'run.*,model_version.*'")
@pass_ctx
@api_errors
def webhooks_create(ctx: Ctx, project: str, url: str, types: str) -> None:
    """Subscribe a URL; prints the signing secret once. Example: cairn webhooks create -p vision --types 'run.*' --url https://x/hook"""
    emit(ctx, ctx.client.create_webhook(project, url, [t.strip() for t in types.split(",") if t.strip()]))


@webhooks.command("list")
@project_option
@pass_ctx
@api_errors
def webhooks_list(ctx: Ctx, project: str) -> None:
    """List webhooks. Example: cairn webhooks list -p vision"""
    emit(ctx, ctx.client.list_webhooks(project), columns=["id", "url", "types", "pending", "created_at"])


@webhooks.command("delete")
@project_option
@click.argument("webhook_id")
@pass_ctx
@api_errors
def webhooks_delete(ctx: Ctx, project: str, webhook_id: str) -> None:
    """Delete a webhook. Example: cairn webhooks delete -p vision WEBHOOK_ID"""
    ctx.client.delete_webhook(project, webhook_id)
    emit(ctx, {"deleted": webhook_id})


@webhooks.command("dead-letters")
@project_option
@click.argument("webhook_id")
@pass_ctx
@api_errors
def webhooks_dead_letters(ctx: Ctx, project: str, webhook_id: str) -> None:
    """Events whose delivery failed every retry. Example: cairn webhooks dead-letters -p vision WEBHOOK_ID"""
    emit(ctx, ctx.client.dead_letters(project, webhook_id), columns=["sequence", "attempts", "error", "time"])


@webhooks.command("replay")
@project_option
@click.argument("webhook_id")
@pass_ctx
@api_errors
def webhooks_replay(ctx: Ctx, project: str, webhook_id: str) -> None:
    """Deliver the dead letters again. Example: cairn webhooks replay -p vision WEBHOOK_ID"""
    emit(ctx, ctx.client.replay_webhook(project, webhook_id))
