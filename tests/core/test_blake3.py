"""BLAKE3 against the reference `blake3` package, across lengths, threads and SIMD levels."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import blake3 as reference
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn import _core, core

MAX_RANDOM = 40 << 20


def oracle(data: bytes | memoryview) -> bytes:
    return reference.blake3(data).digest()


@pytest.fixture(scope="module")
def big() -> memoryview:
    """Random bytes; tests hash prefixes of it (zero-copy slices)."""
    return memoryview(random.Random(3).randbytes(MAX_RANDOM))


EDGE_LENGTHS = sorted(
    {0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 16 * 1024 + 1}
    | {n for k in range(25) for n in (2**k - 1, 2**k, 2**k + 1)}
)


@pytest.mark.parametrize("length", EDGE_LENGTHS)
def test_digest_equals_reference_at_edge_lengths(big: memoryview, length: int) -> None:
    data = big[:length]
    assert core.blake3(data) == oracle(data)


@settings(max_examples=40, deadline=None)
@given(length=st.integers(min_value=0, max_value=MAX_RANDOM))
def test_digest_equals_reference_at_random_lengths(big: memoryview, length: int) -> None:
    data = big[:length]
    assert core.blake3(data) == oracle(data)


@pytest.mark.parametrize("length", [0, 1, 1024, 300 * 1024 + 7, 3 * (1 << 20) + 1025, 9 << 20])
def test_every_thread_count_gives_the_same_digest(big: memoryview, length: int) -> None:
    data = big[:length]
    expected = oracle(data)
    for threads in range(1, 9):
        assert core.blake3(data, threads=threads) == expected, threads
    assert core.blake3(data, threads=None) == expected


def lane_lengths() -> list[int]:
    """Chunk counts around the 8- and 16-lane batches, full and partial last chunks."""
    counts = list(range(1, 41)) + [63, 64, 65, 511, 512, 513, 1024, 1500]
    return (
        [c * 1024 for c in counts]
        + [c * 1024 - 1 for c in counts]
        + [c * 1024 + 513 for c in counts]
    )


@pytest.mark.parametrize("level", _core._blake3_levels())
def test_each_simd_level_equals_portable_and_reference(big: memoryview, level: str) -> None:
    for length in lane_lengths():
        data = big[:length]
        portable = _core._blake3_with_level(data, "portable", 1)
        assert _core._blake3_with_level(data, level, 1) == portable, length
        assert portable == oracle(data), length
    data = big[: 5 * (1 << 20) + 3]
    assert _core._blake3_with_level(data, level, 2) == oracle(data)


def test_unknown_simd_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SIMD level"):
        _core._blake3_with_level(b"x", "neon", 1)


def test_best_simd_level_is_the_one_build_info_reports() -> None:
    assert _core._blake3_levels()[-1] == core.build_info()["simd"]


def test_accepts_any_contiguous_buffer(big: memoryview) -> None:
    raw = bytes(big[:100_000])
    expected = oracle(raw)
    assert core.blake3(bytearray(raw)) == expected
    assert core.blake3(memoryview(raw)) == expected
    assert core.blake3(np.frombuffer(raw, dtype=np.uint32)) == expected


def test_refuses_non_contiguous_buffers() -> None:
    strided = np.arange(100, dtype=np.uint8)[::2]
    with pytest.raises((BufferError, ValueError)):
        core.blake3(strided)


@pytest.mark.parametrize("threads", [0, -1])
def test_refuses_thread_counts_below_one(threads: int) -> None:
    with pytest.raises(ValueError, match="threads"):
        core.blake3(b"abc", threads=threads)


@pytest.mark.parametrize("length", [0, 1, 1025, (1 << 20) - 1, (1 << 20) + 1, 5 << 20])
def test_fingerprint_file_equals_reference(tmp_path, big: memoryview, length: int) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(big[:length])
    assert core.fingerprint_file(path) == reference.blake3(big[:length]).hexdigest()
    assert core.fingerprint_file(str(path), threads=1) == reference.blake3(big[:length]).hexdigest()


@pytest.mark.skipif(shutil.which("b3sum") is None, reason="b3sum is not installed")
def test_fingerprint_file_equals_b3sum(tmp_path, big: memoryview) -> None:
    paths = []
    for length in (0, 1025, 3 << 20):
        paths.append(tmp_path / f"f{length}")
        paths[-1].write_bytes(big[:length])
    out = subprocess.run(["b3sum", *map(str, paths)], capture_output=True, text=True, check=True)
    expected = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.stdout.splitlines()}
    assert {str(p): core.fingerprint_file(p) for p in paths} == expected


def test_fingerprint_file_refuses_paths_with_nul(tmp_path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    with pytest.raises(ValueError, match="null"):
        core.fingerprint_file(str(tmp_path / "a") + "\0suffix")


def test_fingerprint_file_reports_missing_files_and_directories(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        core.fingerprint_file(tmp_path / "absent")
    with pytest.raises(IsADirectoryError):
        core.fingerprint_file(tmp_path)


# Subtree chaining values ------------------------------------------------------------------------

SUBTREE_CASES = [
    (0, 1024),
    (1, 1024),
    (1024, 1024),
    (1025, 1024),
    (4096, 1024),
    (70_000, 4096),
    (65536, 65536),
    (65537, 65536),
    (3 * 65536, 65536),
    (5 * (1 << 20) + 77, 1 << 20),
    (5 * (1 << 20) + 77, 1 << 16),
    (4 * (1 << 20) - 5, 1 << 20),  # a tail large enough to be hashed on several threads
]


@pytest.mark.parametrize(("size", "leaf_size"), SUBTREE_CASES)
def test_leaf_cvs_and_tail_rebuild_the_digest(big: memoryview, size: int, leaf_size: int) -> None:
    data = big[:size]
    cvs = core.subtree_cvs(data, leaf_size=leaf_size)
    assert len(cvs) == core.leaf_count(size, leaf_size) == (max(size - 1, 0) // leaf_size)
    tail = data[len(cvs) * leaf_size :]
    assert core.refingerprint(cvs, tail, leaf_size=leaf_size) == oracle(data)
    for i, cv in enumerate(cvs):
        leaf = data[i * leaf_size : (i + 1) * leaf_size]
        assert core.leaf_cv(leaf, i, leaf_size=leaf_size) == cv


def test_leaf_cvs_do_not_depend_on_threads(big: memoryview) -> None:
    data = big[: 9 * (1 << 20) + 5]
    single = core.subtree_cvs(data, leaf_size=1 << 20, threads=1)
    assert core.subtree_cvs(data, leaf_size=1 << 20, threads=2) == single


def test_a_changed_leaf_changes_only_its_cv(big: memoryview) -> None:
    data = bytearray(big[: 4 * 65536 + 10])
    before = core.subtree_cvs(data, leaf_size=65536)
    data[2 * 65536 + 5] ^= 1
    after = core.subtree_cvs(data, leaf_size=65536)
    assert [i for i in range(len(before)) if before[i] != after[i]] == [2]


def test_refingerprint_refuses_a_malformed_tail_or_leaf_size(big: memoryview) -> None:
    cvs = core.subtree_cvs(big[:5000], leaf_size=1024)
    with pytest.raises(ValueError, match="tail"):
        core.refingerprint(cvs, b"", leaf_size=1024)
    with pytest.raises(ValueError, match="tail"):
        core.refingerprint(cvs, bytes(1025), leaf_size=1024)
    with pytest.raises(ValueError, match="leaf_size"):
        core.subtree_cvs(big[:5000], leaf_size=3000)
    with pytest.raises(ValueError, match="32"):
        core.refingerprint([b"short"], b"x", leaf_size=1024)


def test_refreshing_a_file_rehashes_only_the_ranges_named(tmp_path, big: memoryview) -> None:
    leaf = 1 << 16
    path = tmp_path / "data.bin"
    original = bytearray(big[: 10 * leaf + 123])
    path.write_bytes(original)
    first = core.file_subtrees(path, leaf_size=leaf)
    assert first.hexdigest == core.fingerprint_file(path)

    with open(path, "r+b") as f:  # overwrite 3 bytes inside leaf 4
        f.seek(4 * leaf + 100)
        f.write(b"XYZ")
    truth = core.fingerprint_file(path)
    refreshed = core.refresh_file_subtrees(first, path, changed=[(4 * leaf + 100, 3)])
    assert refreshed.hexdigest == truth
    assert [i for i, (a, b) in enumerate(zip(first.cvs, refreshed.cvs)) if a != b] == [4]
    # Naming another range proves that unnamed leaves are reused, not read: leaf 4's stale CV
    # gives the old digest's leaf back, so the result is wrong exactly as documented.
    stale = core.refresh_file_subtrees(first, path, changed=[(0, 1)])
    assert stale.cvs[4] == first.cvs[4]
    assert stale.hexdigest != truth

    with open(path, "ab") as f:  # growth: the old tail becomes a leaf, new bytes a new tail
        f.write(b"more" * 50_000)
    grown = core.refresh_file_subtrees(refreshed, path, changed=[(10 * leaf, 1 << 30)])
    assert grown.hexdigest == core.fingerprint_file(path)
    assert grown.size == path.stat().st_size


def test_file_subtrees_of_empty_and_single_leaf_files(tmp_path) -> None:
    for size in (0, 1, 1 << 16):
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        subtrees = core.file_subtrees(path, leaf_size=1 << 16)
        assert subtrees.cvs == ()
        assert subtrees.hexdigest == reference.blake3(path.read_bytes()).hexdigest()


def test_concurrent_callers_share_the_worker_pool_correctly(big: memoryview) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sizes = [(1 << 20) * k + 17 * k for k in range(1, 13)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        digests = list(pool.map(lambda n: core.blake3(big[:n], threads=None), sizes))
    assert digests == [oracle(big[:n]) for n in sizes]


def test_a_forked_child_hashes_on_threads_of_its_own(big: memoryview) -> None:
    data = big[: 8 << 20]
    expected = oracle(data)
    assert core.blake3(data, threads=2) == expected  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # child: exit 0 only if the digest is right; never hang the suite
        import signal

        signal.alarm(20)
        ok = all(core.blake3(data, threads=2) == expected for _ in range(3))
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
