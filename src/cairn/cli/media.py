"""``cairn media``: list a run's media (images, figures, tables, text, html) and download one by
key and step (docs/media.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx
from cairn.cli.registry import project_option
from cairn.protocol import MEDIA_KINDS

EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif",
              "image/svg+xml": ".svg", "text/html": ".html", "text/plain": ".txt",
              "application/json": ".json", "application/vnd.apache.parquet": ".parquet"}


@click.group()
def media() -> None:
    """A run's media: images, figures, tables, text and HTML by key and step.

    Example: cairn media list RUN_ID -p vision --kind image
    """


@media.command("list")
@click.argument("run_id", metavar="RUN")
@project_option
@click.option("--key", default=None, help="Only this key.")
@click.option("--kind", type=click.Choice(MEDIA_KINDS), default=None, help="Only this kind.")
@pass_ctx
@api_errors
def media_list(ctx: Ctx, run_id: str, project: str, key: str | None, kind: str | None) -> None:
    """The run's media entries in (key, step) order.

    Example: cairn media list 0190ab... -p vision --key samples --json
    """
    from cairn.sdk.media import list_media

    entries = list_media(ctx.client, project, run_id, key=key, kind=kind)
    emit(ctx, entries, columns=["key", "step", "kind", "media_type", "size", "width", "height", "digest"])


def pick(entries: list[dict[str, Any]], key: str, step: int | None) -> dict[str, Any]:
    """The entry of ``key`` at ``step`` (the last logged there), or the key's last step."""
    if not entries:
        raise click.ClickException(f"the run has no media under key {key!r}" +
                                   (f" at step {step}" if step is not None else ""))
    return max(entries, key=lambda e: (e["step"], e["created_at"] or ""))


@media.command("get")
@click.argument("run_id", metavar="RUN")
@click.argument("key")
@project_option
@click.option("--step", type=click.IntRange(min=0), default=None, help="The step (default: the last).")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), default=None,
              help="Where to write it (default: KEY with '/' as '_', and the media type's extension).")
@click.option("--thumbnail", is_flag=True, help="The thumbnail instead of the full medium.")
@pass_ctx
@api_errors
def media_get(ctx: Ctx, run_id: str, key: str, project: str, step: int | None, output: Path | None,
              thumbnail: bool) -> None:
    """Download the medium of KEY at a step (verified against its digest).

    Example: cairn media get 0190ab... samples -p vision --step 3 -o sample.png
    """
    from cairn.sdk.media import list_media

    entry = pick(list_media(ctx.client, project, run_id, key=key, step_min=step, step_max=step), key, step)
    digest = entry["thumbnail_digest"] if thumbnail else entry["digest"]
    if digest is None:
        raise click.ClickException(f"media {key!r} at step {entry['step']} has no thumbnail")
    media_type = (entry["thumbnail_type"] or "image/png") if thumbnail else entry["media_type"]
    dest = output or Path(key.replace("/", "_") + EXTENSIONS.get(media_type, ""))
    ctx.client.artifacts.download_blob(digest, dest)
    emit(ctx, {**entry, "path": str(dest), "downloaded": digest})
