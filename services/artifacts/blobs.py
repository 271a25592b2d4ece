"""Blob intake and verified reads, on top of any :class:`BlobBackend`.

Uploads stream into a temp file next to the store (never buffered whole in memory), are fsynced,
then fingerprinted with the core's multi-threaded BLAKE3 (``fingerprint_file``) before they are
handed to the backend: a digest mismatch deletes the temp file and stores nothing. Reads hash the
whole blob before the first byte is served (ranged reads included), so a blob corrupted at rest is
reported as ``blob_corrupt`` and never served. Hashing runs at several GB/s, so verifying first
costs far less than the transfer itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cairn.core import blake3, fingerprint_file
from cairn.kernel.errors import CairnError, InvalidInput, NotFound, PayloadTooLarge
from cairn.services.artifacts.backends import BlobBackend

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
WRITE_BUFFER = 4 << 20


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

    def __init__(self, backend: BlobBackend, tmp_dir: Path, max_blob_bytes: int) -> None:
        self.backend = backend
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.max_blob_bytes = max_blob_bytes

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

    async def receive(self, digest: str, chunks: AsyncIterator[bytes]) -> tuple[int, bool]:
        """Store a streamed upload under ``digest`` if its bytes hash to it; returns (size,
        created). Raises DigestMismatch (nothing stored) or PayloadTooLarge."""
        _, size, created = await self.receive_any(chunks, expected=check_digest(digest))
        return size, created

    async def receive_any(self, chunks: AsyncIterator[bytes], *,
                          expected: str | None = None) -> tuple[str, int, bool]:
        """Store a streamed upload under the digest of its bytes, hashed here once; returns
        (digest, size, created). With ``expected``, bytes that hash to anything else are a
        DigestMismatch and nothing is stored. The bytes are fsynced before they are stored."""
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.tmp_dir)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                size = 0
                buffer = bytearray()
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_blob_bytes:
                        raise PayloadTooLarge(
                            f"blob is larger than the limit of {self.max_blob_bytes} bytes; "
                            "raise CAIRN_ARTIFACTS_MAX_BLOB_BYTES or split the file")
                    buffer += chunk
                    if len(buffer) >= WRITE_BUFFER:
                        await asyncio.to_thread(out.write, buffer)
                        buffer = bytearray()
                # The rest of the bytes, fsync, hash and store: one trip to a worker thread.
                digest, created = await asyncio.to_thread(self._finish, out, buffer, tmp, expected, size)
            return digest, size, created
        finally:
            tmp.unlink(missing_ok=True)

    def _finish(self, out: Any, rest: bytes, tmp: Path, expected: str | None, size: int) -> tuple[str, bool]:
        out.write(rest)
        os.fsync(out.fileno())
        actual = fingerprint_file(tmp)
        if expected is not None and actual != expected:
            raise DigestMismatch(
                f"uploaded bytes hash to {actual}, not {expected}; nothing was stored. "
                "Re-hash the file (it may have changed while uploading) and retry",
                details={"expected": expected, "actual": actual, "size": size})
        # Verified bytes replace whatever is stored: that is how a corrupted blob is repaired.
        existed = self.backend.exists(actual)
        self.backend.put_file(actual, tmp)
        return actual, not existed

    @contextmanager
    def open_verified(self, digest: str) -> Iterator[Path]:
        """A local path to the blob's bytes, hashed in full first; BlobCorrupt if they differ."""
        check_digest(digest)
        try:
            with self.backend.fetch(digest) as path:
                actual = fingerprint_file(path)
                if actual != digest:
                    raise BlobCorrupt(
                        f"blob {digest} is corrupted in storage (its bytes hash to {actual}); "
                        "it was not served. Upload the original file again to repair it",
                        details={"expected": digest, "actual": actual})
                yield path
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not stored; upload it with PUT /blobs/{digest}",
                           details={"digest": digest}) from None

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
