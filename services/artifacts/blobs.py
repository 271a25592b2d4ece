"""Blob intake and verified reads, on top of any :class:`BlobBackend`.

Uploads stream into a temp file next to the store and are fsynced, then fingerprinted with the
core's BLAKE3 before they are handed to the backend: a digest mismatch deletes the temp file and
stores nothing. A body that fits in ``WRITE_BUFFER`` (most artifacts) is gathered in a page-aligned
buffer, hashed from memory while it is written with ``O_DIRECT`` (straight to the disk, no page-cache
pages to fill for a file nobody reads yet) and fsynced; a larger one is written through the page
cache as it arrives and hashed from the file (``fingerprint_file``, multi-threaded). File systems
without ``O_DIRECT`` get ordinary writes. Reads hash the whole blob before the first byte is served
(ranged reads included), so a blob corrupted at rest is reported as ``blob_corrupt`` and never
served. Hashing runs at several GB/s, so verifying first costs far less than the transfer itself.
Small bodies already in memory (a bundle's members) are stored in batches on the file system
(:meth:`BlobStore.receive_batch`): written through the page cache and made durable together.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cairn.core import blake3, fingerprint_file
from cairn.kernel.errors import CairnError, InvalidInput, NotFound, PayloadTooLarge
from cairn.kernel.ids import DIGEST_RE
from cairn.services.artifacts.backends import BlobBackend

WRITE_BUFFER = 4 << 20  # bytes gathered before any is written; a whole body up to this is hashed from memory
ALIGN = 4096  # O_DIRECT: buffer address, file offset and length in multiples of the block size
O_DIRECT = getattr(os, "O_DIRECT", 0)
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="blob-hash")


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (a write may take fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread; a cancelled caller still waits for it to finish, since it
    uses the upload's file descriptor and buffer, which the caller then releases."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


class Buffers:
    """Page-aligned ``WRITE_BUFFER``-sized buffers, reused: a fresh one costs page faults per use."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, WRITE_BUFFER)

    def give(self, buffer: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(buffer)
                return
        try:
            buffer.close()
        except BufferError:  # still exported somewhere: the garbage collector unmaps it later
            pass


UPLOAD_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _upload_path(tmp_dir: Path) -> Path:
    return tmp_dir / f"upload-{secrets.token_hex(8)}"


def _open_upload(tmp_dir: Path) -> tuple[int, Path, bool]:
    """A new temp file for an upload: (fd, path, opened with O_DIRECT)."""
    path = _upload_path(tmp_dir)
    flags = UPLOAD_FLAGS
    if O_DIRECT:
        try:
            return os.open(path, flags | O_DIRECT, 0o600), path, True
        except OSError as err:  # tmpfs and some others refuse O_DIRECT
            if err.errno != errno.EINVAL:
                raise
    return os.open(path, flags, 0o600), path, False


def _buffered(fd: int) -> None:
    """Switch an O_DIRECT descriptor to ordinary (page-cache) writes."""
    import fcntl

    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_DIRECT)


def write_direct(fd: int, buffer: mmap.mmap, size: int) -> None:
    """Write ``buffer[:size]`` at offset 0 of an O_DIRECT file: whole blocks (the last one padded with
    zeros), then the file is cut to ``size``. Falls back to ordinary writes where the file system
    refuses (EINVAL)."""
    padded = -(-size // ALIGN) * ALIGN
    buffer[size:padded] = bytes(padded - size)
    try:
        written = 0
        view = memoryview(buffer)[:padded]
        while written < padded:
            written += os.write(fd, view[written:])
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        _buffered(fd)
        os.lseek(fd, 0, os.SEEK_SET)
        write_all(fd, memoryview(buffer)[:size])
    if padded != size:
        os.ftruncate(fd, size)


class DigestMismatch(CairnError):
    """The uploaded bytes do not hash to the digest in the URL; nothing was stored."""

    status = 422
    code = "digest_mismatch"


class BlobCorrupt(CairnError):
    """The stored bytes no longer hash to their digest (disk or bucket corruption)."""

    status = 500
    code = "blob_corrupt"


def check_digest(digest: str) -> str:
    if not DIGEST_RE.match(digest):
        raise InvalidInput(f"{digest!r} is not a BLAKE3 digest: expected 64 lowercase hex digits",
                           details={"field": "digest"})
    return digest


class BlobStore:
    """Verified writes and reads of content-addressed blobs."""

    def __init__(self, backend: BlobBackend, tmp_dir: Path, max_blob_bytes: int,
                 verify_reads: bool = True) -> None:
        self.backend = backend
        # False: blobs were hashed when written and the storage is trusted to keep them (checked
        # on demand by ``verify_stored``); a read then serves without hashing (docs/artifacts.md)
        self.verify_reads = verify_reads
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.max_blob_bytes = max_blob_bytes
        self.buffers = Buffers()
        self.removals = 0  # blobs removed by this process (GC): an upload re-checks its blob only if this moved

    def remove(self, digest: str) -> None:
        self.removals += 1
        self.backend.delete(digest)

    def exists(self, digest: str) -> bool:
        return self.backend.exists(check_digest(digest))

    def missing(self, digests: list[str]) -> list[str]:
        """The digests (checked, deduplicated, in the given order) that are not stored."""
        seen: set[str] = set()
        out = []
        for digest in digests:
            check_digest(digest)
            if digest not in seen:
                seen.add(digest)
                if not self.backend.exists(digest):
                    out.append(digest)
        return out

    async def receive(self, digest: str, chunks: AsyncIterator[bytes]) -> int:
        """Store a streamed upload under ``digest`` if its bytes hash to it; returns its size.
        Raises DigestMismatch (nothing stored) or PayloadTooLarge."""
        _, size = await self.receive_any(chunks, expected=check_digest(digest))
        return size

    async def receive_any(self, chunks: AsyncIterator[bytes], *,
                          expected: str | None = None) -> tuple[str, int]:
        """Store a streamed upload under the digest of its bytes, hashed here once; returns
        (digest, size). With ``expected``, bytes that hash to anything else are a DigestMismatch
        and nothing is stored. The bytes are fsynced before they are stored (a body that fits the
        buffer goes to an object store straight from memory: the bucket is its durable copy)."""
        fd, tmp, direct = _open_upload(self.tmp_dir)
        buffer = self.buffers.take()
        try:
            size = 0
            held = 0  # bytes in ``buffer`` not yet written
            spilled = False  # some bytes were written already: hash the file, not the buffer
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_blob_bytes:
                    raise PayloadTooLarge(
                        f"blob is larger than the limit of {self.max_blob_bytes} bytes; "
                        "raise CAIRN_ARTIFACTS_MAX_BLOB_BYTES or split the file")
                view = memoryview(chunk)
                while view:
                    n = min(len(view), WRITE_BUFFER - held)
                    buffer[held:held + n] = view[:n]
                    held += n
                    view = view[n:]
                    if held == WRITE_BUFFER:  # larger than the buffer: through the page cache from here
                        if not spilled and direct:
                            _buffered(fd)
                        spilled = True
                        await _in_thread(write_all, fd, memoryview(buffer)[:held])
                        held = 0
            # The rest of the bytes, fsync, hash and store: one trip to a worker thread.
            digest = await _in_thread(self._finish, fd, buffer, held, spilled, direct, tmp, expected, size)
            return digest, size
        finally:
            os.close(fd)
            self.buffers.give(buffer)
            tmp.unlink(missing_ok=True)

    @property
    def batches(self) -> bool:
        """Whether many small bodies are best stored together (:meth:`receive_batch`): the file
        system, where each one's flushes cost more than its bytes."""
        return hasattr(self.backend, "put_files")

    async def receive_batch(self, members: list[tuple[str, bytes]]) -> None:
        """Store bodies already in memory (a bundle's members, digest and bytes) on a backend with
        ``put_files`` if every one's bytes hash to its digest: the first that does not raises
        DigestMismatch and none of the batch is stored. One trip to a worker thread: the files are
        written, each synced, then renamed into place and their folders synced once each, so the
        batch pays the disk's flushes together."""
        await _in_thread(self._store_batch, members)

    def _store_batch(self, members: list[tuple[str, bytes]]) -> None:
        files: list[tuple[int, Path, str]] = []
        try:
            for digest, data in members:
                if len(data) > self.max_blob_bytes:
                    raise PayloadTooLarge(f"blob {digest} is larger than the limit of {self.max_blob_bytes} bytes; "
                                          "raise CAIRN_ARTIFACTS_MAX_BLOB_BYTES or leave the file out")
                self._check(check_digest(digest), blake3(data).hex(), len(data))
                tmp = _upload_path(self.tmp_dir)
                files.append((os.open(tmp, UPLOAD_FLAGS, 0o600), tmp, digest))
                write_all(files[-1][0], data)
            for fd, _, _ in files:
                os.fsync(fd)
            self.backend.put_files([(digest, tmp) for _, tmp, digest in files])
        finally:
            for fd, tmp, _ in files:
                os.close(fd)
                tmp.unlink(missing_ok=True)

    def _finish(self, fd: int, buffer: mmap.mmap, held: int, spilled: bool, direct: bool, tmp: Path,
                expected: str | None, size: int) -> str:
        if not spilled and hasattr(self.backend, "put_bytes"):
            actual = self._hash_and_prepare(memoryview(buffer)[:held], expected)
            self._check(expected, actual, size)
            self.backend.put_bytes(actual, bytes(memoryview(buffer)[:held]))
            return actual
        if spilled:
            write_all(fd, memoryview(buffer)[:held])
            os.fsync(fd)
            actual = fingerprint_file(tmp)
        else:  # the whole body is in the buffer: hash it (and make its folder) while it is written
            hashing = _HASHING.submit(self._hash_and_prepare, memoryview(buffer)[:held], expected)
            try:
                if direct:
                    write_direct(fd, buffer, held)
                else:
                    write_all(fd, memoryview(buffer)[:held])
                os.fsync(fd)
            finally:
                actual = hashing.result()  # the buffer is reused once this returns
        self._check(expected, actual, size)
        # Verified bytes replace whatever is stored: that is how a corrupted blob is repaired.
        self.backend.put_file(actual, tmp)
        return actual

    @staticmethod
    def _check(expected: str | None, actual: str, size: int) -> None:
        if expected is not None and actual != expected:
            raise DigestMismatch(
                f"uploaded bytes hash to {actual}, not {expected}; nothing was stored. "
                "Re-hash the file (it may have changed while uploading) and retry",
                details={"expected": expected, "actual": actual, "size": size})

    def _hash_and_prepare(self, body: memoryview, expected: str | None) -> str:
        digest = blake3(body).hex()
        if expected is None or digest == expected:
            self.backend.prepare(digest)
        return digest

    @contextmanager
    def open_verified(self, digest: str, *, always: bool = True, reader_checks: bool = False) -> Iterator[Path]:
        """A local path to the blob's bytes, hashed in full first; BlobCorrupt if they differ.
        ``always=False`` (blob downloads) skips the hash when reads are not verified;
        ``reader_checks=True`` (bundle members, whose reader hashes each) skips it too."""
        check_digest(digest)
        hashed = always or (self.verify_reads and not reader_checks)
        try:
            with self.backend.fetch(digest) as path:
                actual = fingerprint_file(path) if hashed else digest
                if actual != digest:
                    raise BlobCorrupt(
                        f"blob {digest} is corrupted in storage (its bytes hash to {actual}); "
                        "it was not served. Upload the original file again to repair it",
                        details={"expected": digest, "actual": actual})
                yield path
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not stored; upload it again (PUT /projects/PROJECT/blobs/{digest})",
                           details={"digest": digest}) from None

    def verify_stored(self, digests: list[str] | None = None) -> dict[str, object]:
        """Hash stored blobs (all, or these) against their names: the on-demand (or scheduled)
        check that stands in for hashing on every read when reads are not verified."""
        names = digests if digests is not None else [b.digest for b in self.backend.list()]
        corrupt, missing, size = [], [], 0
        for digest in names:
            try:
                with self.backend.fetch(check_digest(digest)) as path:
                    size += path.stat().st_size
                    if fingerprint_file(path) != digest:
                        corrupt.append(digest)
            except FileNotFoundError:
                missing.append(digest)
        return {"checked": len(names) - len(missing), "bytes": size, "corrupt": corrupt, "missing": missing}

    def read_verified(self, digest: str) -> bytes:
        """A small blob's bytes (manifests), verified."""
        with self.open_verified(digest) as path:
            return path.read_bytes()

    async def put_bytes(self, data: bytes) -> str:
        """Store bytes the service made itself (manifests); returns their digest."""
        digest = blake3(data).hex()

        async def one() -> AsyncIterator[bytes]:
            yield data

        await self.receive(digest, one())
        return digest
