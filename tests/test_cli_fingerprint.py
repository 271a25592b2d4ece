"""``cairn fingerprint``: same digest as the core, and a second run with --cache reads nothing."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.core import fingerprint_tree

OLD_NS = 1_600_000_000 * 10**9  # older than the cache's racy window, so digests are stored


def _tree(root: Path) -> Path:
    data = root / "data"
    for i in range(12):
        path = data / f"part-{i % 3}" / f"file-{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1000 * i + 1))
        os.utime(path, ns=(OLD_NS, OLD_NS))
    (data / "empty").write_bytes(b"")
    os.utime(data / "empty", ns=(OLD_NS, OLD_NS))
    os.symlink("part-0/file-00.bin", data / "link")
    return data


def _run(*args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(cli, ["fingerprint", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_digest_and_manifest_match_the_core(tmp_path: Path) -> None:
    data = _tree(tmp_path)
    expected = fingerprint_tree(data)
    out = _run(str(data), "--threads", "1")
    assert out["digest"] == expected.digest
    assert out["files"] == 13 and out["symlinks"] == 1
    assert out["total_bytes"] == expected.total_size == out["hashed_bytes"]
    assert out["manifest"] == expected.as_dict()["entries"]
    assert out["cache"] is None


def test_second_run_with_cache_reads_no_file(tmp_path: Path) -> None:
    data = _tree(tmp_path)
    cache = tmp_path / "fp.sqlite"
    first = _run(str(data), "--cache", str(cache))
    assert first["hashed_bytes"] == first["total_bytes"] > 0
    with sqlite3.connect(cache) as db:
        rows = dict(db.execute("SELECT ino, digest FROM file_digest").fetchall())
    on_disk = {os.stat(data / e["path"]).st_ino: e["digest"] for e in first["manifest"]
               if e["kind"] == "file"}
    assert rows == on_disk  # every file's digest is in the cache, keyed by its inode

    second = _run(str(data), "--cache", str(cache))
    assert second["hashed_bytes"] == 0  # all cache hits: no byte read
    assert second["digest"] == first["digest"] == fingerprint_tree(data).digest
    assert second["manifest"] == first["manifest"]

    # A changed file (new mtime) is read again, and only it.
    changed = data / "part-1" / "file-04.bin"
    changed.write_bytes(b"x" * 10)
    os.utime(changed, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    third = _run(str(data), "--cache", str(cache))
    assert third["hashed_bytes"] == 10
    assert third["digest"] == fingerprint_tree(data).digest != first["digest"]


def test_human_output_and_help(tmp_path: Path) -> None:
    data = _tree(tmp_path)
    result = CliRunner().invoke(cli, ["fingerprint", str(data)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"digest: {fingerprint_tree(data).digest}"
    assert "files: 13" in result.output
    helped = CliRunner().invoke(cli, ["fingerprint", "--help"])
    assert "Example: cairn fingerprint" in helped.output
    missing = CliRunner().invoke(cli, ["fingerprint", str(tmp_path / "nope")])
    assert missing.exit_code != 0
