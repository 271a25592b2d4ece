"""Code snapshots: deterministic archives of a git work tree or a plain folder, safe extraction, diffs."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from cairn.sdk import code_snapshot
from cairn.sdk.code_snapshot import (
    CodeSnapshotError,
    diff_snapshots,
    extract_snapshot,
    read_snapshot,
    snapshot_code,
)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('v1')\n")
    (root / "pkg" / "model.py").write_text("LAYERS = 2\n")
    (root / ".gitignore").write_text("data/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "first")
    _git(root, "remote", "add", "origin", "https://user:secret@example.com/team/repo.git")
    return root


def test_clean_repo_records_commit_branch_and_remote_without_credentials(repo: Path, tmp_path: Path) -> None:
    snap = snapshot_code(repo / "pkg", tmp_path / "out")
    rec = snap.record()
    assert len(rec["commit"]) == 40 and rec["branch"] == "main"
    assert rec["remote"] == "https://example.com/team/repo.git"
    assert rec["dirty"] is False and rec["diff"] == "" and rec["files"] == 3
    assert set(read_snapshot(snap.archive)) == {".gitignore", "train.py", "pkg/model.py"}


def test_same_tree_gives_the_same_archive_digest(repo: Path, tmp_path: Path) -> None:
    first = snapshot_code(repo, tmp_path / "a")
    (repo / "train.py").touch()  # a new mtime must not change the bytes
    second = snapshot_code(repo, tmp_path / "b")
    assert first.digest == second.digest
    assert first.archive.read_bytes() == second.archive.read_bytes()


def test_uncommitted_changes_and_untracked_files_are_captured_but_ignored_files_are_not(
        repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("print('v2')\n")
    (repo / "notes.txt").write_text("new\n")
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"x" * 1000)
    snap = snapshot_code(repo, tmp_path / "out")
    assert snap.dirty and "-print('v1')" in snap.diff and "+print('v2')" in snap.diff
    assert snap.untracked == ["notes.txt"]
    files = read_snapshot(snap.archive)
    assert files["train.py"] == b"print('v2')\n" and "notes.txt" in files
    assert not any(name.startswith("data/") for name in files)


def test_folder_outside_git_is_archived_without_caches(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "__pycache__").mkdir(parents=True)
    (root / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (root / "run.py").write_text("pass\n")
    snap = snapshot_code(root, tmp_path / "out")
    assert snap.commit is None and set(read_snapshot(snap.archive)) == {"run.py"}


def test_extract_round_trips_and_refuses_entries_that_escape(repo: Path, tmp_path: Path) -> None:
    snap = snapshot_code(repo, tmp_path / "out")
    dest = extract_snapshot(snap.archive, tmp_path / "x")
    assert (dest / "pkg" / "model.py").read_text() == "LAYERS = 2\n"
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(repo / "train.py", arcname="../escape.py")
    with pytest.raises(CodeSnapshotError, match="unsafe entry"):
        extract_snapshot(evil, tmp_path / "y")
    assert not (tmp_path / "escape.py").exists()


def test_diff_between_snapshots_is_a_unified_diff_per_changed_file(repo: Path, tmp_path: Path) -> None:
    old = read_snapshot(snapshot_code(repo, tmp_path / "a").archive)
    (repo / "pkg" / "model.py").write_text("LAYERS = 3\n")
    new = read_snapshot(snapshot_code(repo, tmp_path / "b").archive)
    text = diff_snapshots(old, new)
    assert "--- a/pkg/model.py" in text and "-LAYERS = 2" in text and "+LAYERS = 3" in text
    assert "train.py" not in text


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A code cache of this test's own, and no wait for files to cool: HOT_S is 0 (a real
    modification still moves the change time, which is what the signature needs)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CAIRN_CODE_CACHE", str(folder))
    monkeypatch.setattr(code_snapshot, "HOT_S", 0.0)
    return folder


def test_an_unchanged_tree_is_archived_once_and_then_taken_from_the_cache(repo: Path, tmp_path: Path,
                                                                          cache: Path) -> None:
    first = snapshot_code(repo, tmp_path / "a")
    kept = cache / f"{first.digest}.tar.gz"
    assert kept.read_bytes() == first.archive.read_bytes()
    assert cache.stat().st_mode & 0o777 == 0o700  # it holds the code: its owner's alone
    second = snapshot_code(repo, tmp_path / "b")
    assert second.digest == first.digest and second.record() == first.record()
    assert second.archive.stat().st_ino == kept.stat().st_ino  # the cache's archive, linked, not written again


def test_a_change_of_the_same_size_or_a_new_file_misses_the_cache(repo: Path, tmp_path: Path, cache: Path) -> None:
    first = snapshot_code(repo, tmp_path / "a")
    (repo / "train.py").write_text("print('v9')\n")  # same size as v1
    changed = snapshot_code(repo, tmp_path / "b")
    assert changed.digest != first.digest
    assert read_snapshot(changed.archive)["train.py"] == b"print('v9')\n"
    (repo / "extra.py").write_text("")
    added = snapshot_code(repo, tmp_path / "c")
    assert "extra.py" in read_snapshot(added.archive) and added.files == changed.files + 1


def test_a_tree_changed_in_the_last_seconds_is_not_cached(repo: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_CODE_CACHE", str(tmp_path / "cache"))  # HOT_S as shipped: the repo was just written
    snapshot_code(repo, tmp_path / "a")
    assert not list((tmp_path / "cache").glob("*.json"))


def test_a_damaged_cached_archive_is_not_used(repo: Path, tmp_path: Path, cache: Path) -> None:
    first = snapshot_code(repo, tmp_path / "a")
    kept = cache / f"{first.digest}.tar.gz"
    kept.unlink()
    kept.write_bytes(b"not the archive")
    second = snapshot_code(repo, tmp_path / "b")
    assert second.digest == first.digest
    assert second.archive.read_bytes() == first.archive.read_bytes()


def test_the_cache_keeps_the_newest_archives_and_can_be_turned_off(repo: Path, tmp_path: Path, cache: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(code_snapshot.CACHE_KEEP + 2):
        (repo / "train.py").write_text(f"print({i})\n")
        snapshot_code(repo, tmp_path / f"s{i}")
    assert len(list(cache.glob("*.tar.gz"))) == code_snapshot.CACHE_KEEP
    monkeypatch.setenv("CAIRN_CODE_CACHE", "0")
    off = snapshot_code(repo, tmp_path / "off")
    assert off.archive.stat().st_nlink == 1 and len(list(cache.glob("*.tar.gz"))) == code_snapshot.CACHE_KEEP
