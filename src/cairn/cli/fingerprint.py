"""``cairn fingerprint``: a directory tree's dataset digest, locally, with an optional file cache.

Imports of the core are deferred to the command body, so that ``cairn fingerprint --help`` and the
command itself start no heavier than the ``cairn`` entry point (it is timed against ``dvc status``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("fingerprint")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--cache", "cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file of digests keyed by (device, inode, size, mtime_ns), created if "
                   "absent; unchanged files are not read again. Default: no cache, every file is read.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Hashing threads (default: every core).")
@click.option("--json", "as_json", is_flag=True, help="Print digest, counts and the full manifest as JSON.")
@click.option("--skip-special", is_flag=True,
              help="Leave out fifos, sockets and devices (listed as skipped) instead of failing.")
@click.pass_context
def fingerprint(click_ctx: click.Context, path: Path, cache: Path | None, threads: int | None,
                as_json: bool, skip_special: bool) -> None:
    """Print the dataset digest, file count and total size of PATH (a directory or a file).

    The digest is that of cairn.core.fingerprint_tree: BLAKE3 of the sorted manifest (relative
    path, size, digest of each file; symlinks recorded, never followed). Nothing is uploaded.

    Example: cairn fingerprint ./data --cache ~/.cache/cairn/fingerprints.sqlite
    """
    from cairn.core import fingerprint_tree
    from cairn.core.errors import FingerprintError

    as_json = as_json or bool(getattr(click_ctx.obj, "as_json", False))
    to_hash: list[int] = [0]

    def progress(done: int, total: int) -> None:
        to_hash[0] = total  # bytes that had to be read: cache hits excluded

    try:
        manifest = fingerprint_tree(path, threads=threads, cache=cache,
                                    on_special="skip" if skip_special else "error", progress=progress)
    except (FingerprintError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    files = sum(1 for e in manifest.entries if e.kind == "file")
    summary = {
        "path": str(path),
        "digest": manifest.digest,
        "files": files,
        "symlinks": len(manifest.entries) - files,
        "total_bytes": manifest.total_size,
        "hashed_bytes": to_hash[0],
        "skipped": list(manifest.skipped),
        "cache": str(cache) if cache is not None else None,
    }
    if as_json:
        click.echo(json.dumps({**summary, "manifest": manifest.as_dict()["entries"]}, indent=2))
        return
    click.echo(f"digest: {manifest.digest}")
    click.echo(f"files: {files}  symlinks: {summary['symlinks']}  total: {_size(manifest.total_size)}"
               f" ({manifest.total_size} bytes)  read: {_size(to_hash[0])}")
    for rel in manifest.skipped:
        click.echo(f"skipped special file: {rel}")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return f"{n} B"
