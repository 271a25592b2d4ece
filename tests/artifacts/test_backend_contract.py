"""One contract suite, run against every blob backend: the local file system and S3 (a real
SeaweedFS server). Each test goes through BlobStore, which adds the digest checks on top."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.core import blake3
from cairn.kernel.errors import NotFound, PayloadTooLarge
from cairn.services.artifacts import backends
from cairn.services.artifacts import blobs as blobs_module
from cairn.services.artifacts.backends import FsBackend, S3Backend
from cairn.services.artifacts.blobs import BlobCorrupt, BlobStore, DigestMismatch

sys.path.insert(0, os.path.dirname(__file__))
from seaweed import SeaweedS3  # noqa: E402


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "fs":
        backend: backends.BlobBackend = FsBackend(tmp_path / "blobs")
    else:
        server: SeaweedS3 = request.getfixturevalue("seaweed")
        backend = S3Backend(endpoint=server.endpoint, bucket=server.bucket, access_key="test",
                            secret_key="test", prefix=f"{tmp_path.name}/", spool_dir=tmp_path / "spool")
    return BlobStore(backend, tmp_path / "tmp", max_blob_bytes=1 << 30)


async def _chunks(data: bytes, size: int = 1 << 16):  # type: ignore[no-untyped-def]
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _corrupt(store: BlobStore, digest: str, data: bytes) -> None:
    """Change a stored blob's bytes behind the store's back (bit rot, a bad disk, a bad bucket)."""
    backend = store.backend
    if isinstance(backend, FsBackend):
        backend.path_of(digest).write_bytes(data)
    else:
        assert isinstance(backend, S3Backend)
        backend.s3.put_object(Bucket=backend.bucket, Key=backend._key(digest), Body=data)


async def test_stored_blob_reads_back_identical(store: BlobStore) -> None:
    data = os.urandom(300_000)
    digest = blake3(data).hex()
    assert store.missing([digest, digest]) == [digest]
    assert await store.receive(digest, _chunks(data)) == len(data)
    assert store.exists(digest) and store.missing([digest]) == []
    assert store.read_verified(digest) == data
    assert [b.digest for b in store.backend.list()] == [digest]
    assert list(store.tmp_dir.iterdir()) == []


async def test_same_blob_twice_is_stored_once(store: BlobStore) -> None:
    data = b"dedup me"
    digest = blake3(data).hex()
    for _ in range(2):
        assert await store.receive(digest, _chunks(data)) == len(data)
    assert [(b.digest, b.size) for b in store.backend.list()] == [(digest, len(data))]
    assert store.read_verified(digest) == data


async def test_wrong_digest_stores_nothing(store: BlobStore) -> None:
    data = os.urandom(10_000)
    claimed = blake3(b"something else").hex()
    with pytest.raises(DigestMismatch) as err:
        await store.receive(claimed, _chunks(data))
    assert err.value.details["actual"] == blake3(data).hex()
    assert not store.exists(claimed)
    assert list(store.backend.list()) == []
    assert list(store.tmp_dir.iterdir()) == []


async def test_corrupted_blob_is_detected_on_read(store: BlobStore) -> None:
    data = os.urandom(50_000)
    digest = blake3(data).hex()
    await store.receive(digest, _chunks(data))
    _corrupt(store, digest, data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(BlobCorrupt):
        store.read_verified(digest)


async def test_missing_blob_is_not_found_and_delete_is_idempotent(store: BlobStore) -> None:
    digest = blake3(b"never stored").hex()
    with pytest.raises(NotFound):
        store.read_verified(digest)
    store.backend.delete(digest)
    data = b"to delete"
    stored = blake3(data).hex()
    await store.receive(stored, _chunks(data))
    store.backend.delete(stored)
    assert not store.exists(stored)


async def test_large_blob_round_trips(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the multipart threshold (lowered to S3's 5 MiB minimum part size for the test)."""
    if isinstance(store.backend, S3Backend):
        from boto3.s3.transfer import TransferConfig

        store.backend.transfer = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    data = os.urandom(12 << 20)
    digest = blake3(data).hex()
    await store.receive(digest, _chunks(data, 1 << 20))
    assert store.read_verified(digest) == data
    assert [b.size for b in store.backend.list()] == [len(data)]


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "page_cache"])
async def test_sizes_around_block_and_buffer_edges_round_trip(store: BlobStore, direct: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole-block writes with a padded last block (cut back to the size), the switch to page-cache
    writes past WRITE_BUFFER, and buffers reused from one upload to the next (largest first, so a
    stale tail would show). ``page_cache``: a file system without O_DIRECT."""
    if not direct:
        monkeypatch.setattr(blobs_module, "O_DIRECT", 0)
    edge = blobs_module.WRITE_BUFFER
    for size in (edge + 1, edge, edge - 1, 8193, 4097, 4096, 4095, 1, 0):
        data = os.urandom(size)
        digest = blake3(data).hex()
        assert await store.receive(digest, _chunks(data, 100_000)) == size
        assert store.read_verified(digest) == data
    sizes = sorted(b.size for b in store.backend.list())
    assert sizes == [0, 1, 4095, 4096, 4097, 8193, edge - 1, edge, edge + 1]
    assert len(store.buffers._free) == 1  # one buffer, reused by every upload
    assert list(store.tmp_dir.iterdir()) == []


async def test_uploads_at_the_same_time_each_get_their_own_buffer(store: BlobStore) -> None:
    bodies = [os.urandom(300_000 + i) for i in range(6)]

    async def slow_chunks(data: bytes):  # type: ignore[no-untyped-def]
        for start in range(0, len(data), 50_000):
            await asyncio.sleep(0)  # interleave with the other uploads
            yield data[start:start + 50_000]

    results = await asyncio.gather(*(store.receive(blake3(b).hex(), slow_chunks(b)) for b in bodies))
    assert results == [len(b) for b in bodies]
    for body in bodies:
        assert store.read_verified(blake3(body).hex()) == body


async def test_prepare_is_idempotent_and_precedes_a_store(store: BlobStore) -> None:
    data = b"prepared"
    digest = blake3(data).hex()
    for _ in range(2):
        store.backend.prepare(digest)
    if isinstance(store.backend, FsBackend):
        assert store.backend.path_of(digest).parent.is_dir()
    assert await store.receive(digest, _chunks(data)) == len(data)
    assert store.read_verified(digest) == data


async def test_a_batch_on_the_file_system_is_stored_whole_until_a_bad_member(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(FsBackend(tmp_path / "blobs"), tmp_path / "tmp", max_blob_bytes=1 << 20)
    assert store.batches
    synced: list[Path] = []
    monkeypatch.setattr(backends, "fsync_dir", lambda path: synced.append(Path(path)))
    bodies = [os.urandom(1000 + i) for i in range(5)] + [b""]
    members = [(blake3(b).hex(), b) for b in bodies]
    await store.receive_batch(members + [members[0]])  # a member twice: stored once, same bytes
    for digest, body in members:
        assert store.read_verified(digest) == body
    # every directory the batch touched synced once: each blob's folder, and the parents of folders it made
    folders = {store.backend.path_of(d).parent for d, _ in members}
    assert folders <= set(synced) and len(synced) == len(set(synced))
    assert set(synced) <= folders | {f.parent for f in folders}
    assert list(store.tmp_dir.iterdir()) == []

    late = [(blake3(b).hex(), b) for b in (os.urandom(700), os.urandom(800))]
    with pytest.raises(DigestMismatch):
        await store.receive_batch([late[0], (late[1][0], b"not its bytes"), members[1]])
    assert not store.exists(late[0][0])  # files are put in place only once every member is checked
    assert not store.exists(late[1][0])
    assert list(store.tmp_dir.iterdir()) == []
    with pytest.raises(PayloadTooLarge):
        await store.receive_batch([(blake3(b"x" * (2 << 20)).hex(), b"x" * (2 << 20))])
