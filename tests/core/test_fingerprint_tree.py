"""Dataset fingerprints of directory trees: manifest, ordering, cache, links and special files."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import blake3 as reference
import pytest

import cairn
from cairn import _core, core
from cairn.core.fingerprint_cache import RACY_WINDOW_NS
from cairn.core.manifest import MANIFEST_HEADER

OLD_NS = 1_600_000_000 * 10**9  # 2020: far outside the racy window


def write(root: Path, rel: str, data: bytes, *, old: bool = True) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if old:
        os.utime(path, ns=(OLD_NS, OLD_NS))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write(root, "a.txt", b"alpha")
    write(root, "sub/b.bin", os.urandom(3 << 20))
    write(root, "sub/deeper/c", b"")
    write(root, "z", b"zz")
    return root


@pytest.fixture
def count_file_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every path the core reads to hash a file."""
    seen: list[str] = []
    one, many = _core.blake3_file, _core.blake3_files

    def counting_one(path: bytes, threads: int = 0) -> tuple[bytes, int]:
        seen.append(os.fsdecode(path))
        return one(path, threads)

    def counting_many(paths: list[bytes], threads: int = 0) -> list[tuple[bytes, int]]:
        seen.extend(os.fsdecode(p) for p in paths)
        return many(paths, threads)

    monkeypatch.setattr(_core, "blake3_file", counting_one)
    monkeypatch.setattr(_core, "blake3_files", counting_many)
    return seen


def test_manifest_lists_relative_posix_paths_sizes_and_digests(tree: Path) -> None:
    manifest = core.fingerprint_tree(tree)
    assert [e.path for e in manifest] == ["a.txt", "sub/b.bin", "sub/deeper/c", "z"]
    for e in manifest:
        data = (tree / e.path).read_bytes()
        assert e.kind == "file"
        assert e.size == len(data)
        assert e.digest == reference.blake3(data).hexdigest()
    assert manifest.total_size == sum(e.size for e in manifest)


def test_dataset_digest_is_blake3_of_the_canonical_encoding(tree: Path) -> None:
    manifest = core.fingerprint_tree(tree)
    encoding = manifest.encode()
    assert encoding.startswith(MANIFEST_HEADER)
    assert b"f 5:a.txt 5 " + manifest["a.txt"].digest.encode() + b"\n" in encoding
    assert manifest.digest == reference.blake3(encoding).hexdigest()


def test_digest_depends_on_content_not_on_threads_or_creation_order(tmp_path: Path) -> None:
    names = [f"d{i % 3}/f{i}" for i in range(30)]
    first, second = tmp_path / "one", tmp_path / "two"
    for name in names:
        write(first, name, name.encode() * 100)
    for name in reversed(names):
        write(second, name, name.encode() * 100)
    digest = core.fingerprint_tree(first, threads=1).digest
    assert core.fingerprint_tree(first, threads=2).digest == digest
    assert core.fingerprint_tree(second, threads=3).digest == digest
    assert cairn.fingerprint(second).digest == digest


def test_paths_are_ordered_by_their_bytes(tmp_path: Path) -> None:
    for rel in ["a0", "a/b", "a.txt", "a-b", "B", "\u00e4"]:
        write(tmp_path, rel, b"x")
    manifest = core.fingerprint_tree(tmp_path)
    assert [e.path for e in manifest] == ["B", "a-b", "a.txt", "a/b", "a0", "\u00e4"]


def test_renames_and_edits_change_the_digest_empty_directories_do_not(tree: Path) -> None:
    base = core.fingerprint_tree(tree).digest
    (tree / "empty").mkdir()
    assert core.fingerprint_tree(tree).digest == base
    os.rename(tree / "z", tree / "y")
    renamed = core.fingerprint_tree(tree).digest
    assert renamed != base
    write(tree, "y", b"zZ")
    assert core.fingerprint_tree(tree).digest not in (base, renamed)


def test_a_single_file_is_a_manifest_of_one_entry(tree: Path) -> None:
    manifest = core.fingerprint_tree(tree / "a.txt")
    assert [(e.path, e.size) for e in manifest] == [("a.txt", 5)]


def test_cache_hits_skip_rehashing(
    tree: Path, tmp_path: Path, count_file_hashes: list[str]
) -> None:
    cache = tmp_path / "cache.sqlite"
    first = core.fingerprint_tree(tree, cache=cache)
    assert len(count_file_hashes) == 4
    count_file_hashes.clear()
    second = core.fingerprint_tree(tree, cache=cache)
    assert count_file_hashes == []
    assert second == first


def test_touching_mtime_rehashes_the_file(
    tree: Path, tmp_path: Path, count_file_hashes: list[str]
) -> None:
    cache = tmp_path / "cache.sqlite"
    core.fingerprint_tree(tree, cache=cache)
    count_file_hashes.clear()
    write(tree, "a.txt", b"ALPHA")  # same size, new content, new (old) mtime below
    os.utime(tree / "a.txt", ns=(OLD_NS + 1, OLD_NS + 1))
    manifest = core.fingerprint_tree(tree, cache=cache)
    assert count_file_hashes == [str(tree / "a.txt")]
    assert manifest["a.txt"].digest == reference.blake3(b"ALPHA").hexdigest()


def test_an_edit_keeping_size_and_mtime_is_not_seen_through_the_cache(
    tree: Path, tmp_path: Path
) -> None:
    """The documented blind spot of any (dev, inode, size, mtime) cache."""
    cache = tmp_path / "cache.sqlite"
    before = core.fingerprint_tree(tree, cache=cache)
    write(tree, "a.txt", b"ALPHA")  # restores the same old mtime
    assert core.fingerprint_tree(tree, cache=cache).digest == before.digest
    assert core.fingerprint_tree(tree).digest != before.digest


def test_files_modified_just_now_are_not_cached(
    tmp_path: Path, count_file_hashes: list[str]
) -> None:
    root = tmp_path / "fresh"
    write(root, "new", b"just written", old=False)
    cache = tmp_path / "cache.sqlite"
    core.fingerprint_tree(root, cache=cache)
    core.fingerprint_tree(root, cache=cache)
    assert len(count_file_hashes) == 2
    with core.FingerprintCache(cache) as store:
        key = core.fingerprint_cache.FileKey(1, 2, 3, time.time_ns() - RACY_WINDOW_NS - 1)
        assert store.put(key, "d" * 64)
        assert not store.put(key._replace(mtime_ns=time.time_ns()), "d" * 64)


def test_cache_object_is_shared_and_persisted(tree: Path, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with core.FingerprintCache(path) as store:
        core.fingerprint_tree(tree, cache=store)
        assert len(store) == 4
    with core.FingerprintCache(path) as reopened:
        assert len(reopened) == 4


def test_symlinks_are_recorded_with_their_target_and_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "t"
    write(root, "real.txt", b"content")
    outside = tmp_path / "outside"
    write(outside, "secret", b"not part of the dataset")
    os.symlink("real.txt", root / "inner-link")
    os.symlink(outside, root / "outer-link")
    os.symlink("missing", root / "dangling")
    manifest = core.fingerprint_tree(root)
    assert [e.path for e in manifest] == ["dangling", "inner-link", "outer-link", "real.txt"]
    link = manifest["outer-link"]
    assert (link.kind, link.target) == ("symlink", str(outside))
    assert link.digest == reference.blake3(os.fsencode(outside)).hexdigest()
    assert manifest["inner-link"].target == "real.txt"
    assert b"l 10:inner-link 8:real.txt\n" in manifest.encode()

    os.remove(root / "inner-link")
    os.symlink("./real.txt", root / "inner-link")
    assert core.fingerprint_tree(root).digest != manifest.digest


def test_a_symlinked_root_is_followed(tree: Path, tmp_path: Path) -> None:
    os.symlink(tree, tmp_path / "alias")
    assert core.fingerprint_tree(tmp_path / "alias").digest == core.fingerprint_tree(tree).digest


def test_special_files_are_refused_or_skipped_on_request(tree: Path) -> None:
    base = core.fingerprint_tree(tree).digest
    os.mkfifo(tree / "sub" / "pipe")
    with pytest.raises(core.SpecialFileError, match="fifo") as err:
        core.fingerprint_tree(tree)
    assert err.value.path == str(tree / "sub" / "pipe")
    manifest = core.fingerprint_tree(tree, on_special="skip")
    assert manifest.skipped == ("sub/pipe",)
    assert manifest.digest == base


def test_sockets_are_special_files(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        with pytest.raises(core.SpecialFileError, match="socket"):
            core.fingerprint_tree(root)


def test_invalid_arguments_are_refused(tree: Path) -> None:
    with pytest.raises(ValueError, match="on_special"):
        core.fingerprint_tree(tree, on_special="follow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        core.fingerprint_tree(tree, threads=0)
    with pytest.raises(FileNotFoundError):
        core.fingerprint_tree(tree / "absent")


def test_manifest_round_trips_through_its_dict_form(tmp_path: Path) -> None:
    write(tmp_path, "d/file", b"data")
    os.symlink("d/file", tmp_path / "link")
    manifest = core.fingerprint_tree(tmp_path)
    again = core.Manifest.from_dict(manifest.as_dict())
    assert again == manifest
    tampered = manifest.as_dict()
    tampered["entries"][0]["size"] += 1
    with pytest.raises(ValueError, match="does not match"):
        core.Manifest.from_dict(tampered)


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../b", "a//b", "./a", "", "a/"])
def test_manifests_refuse_paths_that_leave_the_tree(path: str) -> None:
    entry = core.ManifestEntry(path, "file", 0, "0" * 64)
    with pytest.raises(ValueError, match="plain relative path"):
        core.Manifest.from_entries([entry])


def test_progress_reports_bytes_hashed_up_to_the_total(tree: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    core.fingerprint_tree(tree, progress=lambda done, total: calls.append((done, total)))
    total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    cache = tmp_path / "cache.sqlite"
    core.fingerprint_tree(tree, cache=cache)
    calls.clear()
    core.fingerprint_tree(tree, cache=cache, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 0)]  # everything came from the cache


def test_small_files_are_hashed_in_batches(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cairn.core import tree_fingerprint

    whole = core.fingerprint_tree(tree)
    monkeypatch.setattr(tree_fingerprint, "_BATCH_FILES", 1)
    calls: list[int] = []
    batched = core.fingerprint_tree(tree, progress=lambda done, total: calls.append(done))
    assert batched == whole
    assert len(calls) == len(whole)


def test_names_that_are_not_utf8_are_hashed_and_encoded_as_their_bytes(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    manifest = core.fingerprint_tree(tmp_path)
    (entry,) = manifest.entries
    assert os.fsencode(entry.path) == b"caf\xe9"
    assert entry.digest == reference.blake3(b"latin-1 name").hexdigest()
    assert b"f 4:caf\xe9 12 " in manifest.encode()
    assert core.fingerprint_file(os.fsdecode(raw)) == entry.digest
