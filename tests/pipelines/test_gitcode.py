"""A pushed commit -> its pipeline file and code archive, with a real git repository (no platform):
the archive is the format agents unpack, its bytes depend only on the tree, and fetching refuses
commits the remote does not have and clone URLs the egress guard refuses."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from cairn.kernel.egress import Egress
from cairn.kernel.errors import InvalidInput
from cairn.sdk.code_snapshot import extract_snapshot
from cairn.services.pipelines import gitcode

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "init.defaultBranch=main"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, Path]:
    bare, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "--bare", "-q", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(work))
    return bare, work


def commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "--allow-empty", "-m", message)
    git(work, "push", "-q", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD")


def test_archive_is_the_agents_format_and_depends_only_on_the_tree(origin: tuple[Path, Path], tmp_path: Path) -> None:
    bare, work = origin
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "run.sh").chmod(0o755)
    first = commit(work, {"cairn/pipeline.yaml": "name: p\n", "train.py": "print(1)\n"}, "one")
    again = commit(work, {}, "same tree, another commit")
    changed = commit(work, {"train.py": "print(2)\n"}, "two")

    async def run() -> tuple[gitcode.CodeArchive, ...]:
        mirrors = gitcode.GitMirrors(tmp_path / "mirrors", Egress(), allow_local=True)
        repo = await mirrors.fetch(str(bare), first)
        assert await gitcode.read_file(repo, first, "cairn/pipeline.yaml") == "name: p\n"
        assert await gitcode.read_file(repo, first, "missing.yaml") is None
        repo = await mirrors.fetch(f"file://{bare}", changed)
        return tuple([await gitcode.archive(repo, c) for c in (first, again, changed)])

    one, same, other = asyncio.run(run())
    assert one.digest == same.digest and one.data == same.data and other.digest != one.digest
    (tmp_path / "a.tar.gz").write_bytes(one.data)
    out = extract_snapshot(tmp_path / "a.tar.gz", tmp_path / "out")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "cairn/pipeline.yaml", "run.sh", "train.py"]
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o755 and (out / "train.py").stat().st_mode & 0o777 == 0o644
    assert one.record(commit=first, branch="main", repo="o/r")["tree_digest"] == one.digest


def test_fetch_refuses_unknown_commits_bad_ids_and_guarded_hosts(origin: tuple[Path, Path], tmp_path: Path) -> None:
    bare, _ = origin
    mirrors = gitcode.GitMirrors(tmp_path / "mirrors", Egress(), allow_local=True)
    with pytest.raises(InvalidInput, match="is not in"):
        asyncio.run(mirrors.fetch(str(bare), "a" * 40))
    with pytest.raises(InvalidInput, match="full hexadecimal"):
        asyncio.run(mirrors.fetch(str(bare), "HEAD"))
    with pytest.raises(InvalidInput, match="127.0.0.1"):  # loopback is not globally routable
        asyncio.run(mirrors.fetch("https://127.0.0.1:9/x.git", "a" * 40))
    with pytest.raises(InvalidInput, match="local repositories are off"):
        asyncio.run(gitcode.GitMirrors(tmp_path / "m2", Egress()).fetch(str(bare), "a" * 40))
