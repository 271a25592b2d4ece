"""Where blob bytes live: siblings behind one small port (:class:`BlobBackend`).

A backend only stores and returns bytes under a digest; checking that the bytes match the digest
is the service's job (:mod:`cairn.services.artifacts.blobs`), before ``put_file`` and after
``fetch``, so every backend gets the same guarantees. A backend whose store is durable by itself
(an object store) may also have ``put_bytes(digest, data)``: small verified bodies then go
straight from memory, without a local file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cairn.kernel.durable import fsync_dir

MULTIPART_THRESHOLD = 64 << 20
MULTIPART_CHUNK = 64 << 20


@dataclass(frozen=True)
class StoredBlob:
    """A blob as the backend sees it: digest, size and when it was written (epoch seconds)."""

    digest: str
    size: int
    modified: float


class BlobBackend(Protocol):
    """The port every storage adapter implements."""

    def exists(self, digest: str) -> bool: ...

    def prepare(self, digest: str) -> None:
        """Make ready (durably) whatever ``put_file(digest, ...)`` needs; may run while the file is
        still being written, and any number of times."""

    def put_file(self, digest: str, path: Path) -> None:
        """Store the (already verified) file at ``path`` under ``digest``; consumes ``path``."""

    def fetch(self, digest: str) -> Any:
        """A context manager giving a local path with the blob's bytes (FileNotFoundError if absent)."""

    def delete(self, digest: str) -> None: ...

    def list(self) -> Iterator[StoredBlob]: ...



class FsBackend:
    """Blobs as files: ``<root>/ab/cd/<digest>``, written by rename so a reader never sees half."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # The 256 first-level folders are made once, so an upload makes at most its second level.
        made = False
        for top in range(256):
            try:
                (self.root / f"{top:02x}").mkdir()
                made = True
            except FileExistsError:
                pass
        if made:
            fsync_dir(self.root)

    def path_of(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def prepare(self, digest: str) -> None:
        """Create the blob's two directory levels; a directory created here is made durable by
        syncing its parent, so a rename into it cannot be lost with the directory."""
        for folder in self._make_folders(digest):
            fsync_dir(folder.parent)

    def _make_folders(self, digest: str) -> list[Path]:
        """Make the blob's missing directory levels, top first; returns those it made."""
        created = []
        folder = self.path_of(digest).parent
        while not folder.is_dir():
            created.append(folder)
            folder = folder.parent
        for folder in reversed(created):
            try:
                folder.mkdir()
            except FileExistsError:  # made at the same time by another upload
                pass
        return created[::-1]

    def put_file(self, digest: str, path: Path) -> None:
        target = self.path_of(digest)
        self.prepare(digest)
        # The caller fsynced the file; the rename is made durable by syncing the directory.
        os.replace(path, target)
        fsync_dir(target.parent)

    def put_files(self, files: list[tuple[str, Path]]) -> None:
        """``put_file`` for many (digest, synced file): every folder made and file renamed into
        place first, then each directory touched synced once (the first sync writes the file
        system's journal for all of them; ``put_file`` pays one or two per blob)."""
        touched: dict[Path, None] = {}
        for digest, path in files:
            for folder in self._make_folders(digest):
                touched[folder.parent] = None
            target = self.path_of(digest)
            os.replace(path, target)
            touched[target.parent] = None
        for folder in touched:
            fsync_dir(folder)

    @contextmanager
    def fetch(self, digest: str) -> Iterator[Path]:
        path = self.path_of(digest)
        if not path.is_file():
            raise FileNotFoundError(digest)
        yield path

    def delete(self, digest: str) -> None:
        try:
            self.path_of(digest).unlink()
        except FileNotFoundError:
            pass

    def list(self) -> Iterator[StoredBlob]:
        for top in sorted(self.root.iterdir()):
            if not top.is_dir() or len(top.name) != 2:
                continue
            for sub in sorted(top.iterdir()):
                for entry in sorted(sub.iterdir()):
                    st = entry.stat()
                    yield StoredBlob(entry.name, st.st_size, st.st_mtime)


class S3Backend:
    """Blobs as objects ``<prefix><digest>`` in an S3-compatible bucket (multipart above 64 MiB)."""

    def __init__(self, *, endpoint: str | None, bucket: str, access_key: str | None,
                 secret_key: str | None, region: str = "us-east-1", prefix: str = "blobs/",
                 spool_dir: Path | None = None) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.spool_dir = spool_dir
        self.s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                               aws_secret_access_key=secret_key, region_name=region,
                               config=Config(retries={"max_attempts": 5, "mode": "standard"}))
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                                       multipart_chunksize=MULTIPART_CHUNK, max_concurrency=4)

    def _key(self, digest: str) -> str:
        return f"{self.prefix}{digest}"

    def exists(self, digest: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(digest))
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def prepare(self, digest: str) -> None:
        pass  # a bucket has no folders to make

    def put_bytes(self, digest: str, data: bytes) -> None:
        """A body that fit the upload buffer: one PUT from memory (no spool file, no transfer
        manager and its threads, which cost more than the request for a small blob)."""
        self.s3.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data)

    def put_file(self, digest: str, path: Path) -> None:
        try:
            self.s3.upload_file(str(path), self.bucket, self._key(digest), Config=self.transfer)
        finally:
            path.unlink(missing_ok=True)

    @contextmanager
    def fetch(self, digest: str) -> Iterator[Path]:
        from botocore.exceptions import ClientError

        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="fetch-", dir=self.spool_dir)
        os.close(fd)
        path = Path(name)
        try:
            try:
                # one GET; a large object is read again by the transfer manager, in parallel parts
                got = self.s3.get_object(Bucket=self.bucket, Key=self._key(digest))
                if got["ContentLength"] >= MULTIPART_THRESHOLD:
                    got["Body"].close()
                    self.s3.download_file(self.bucket, self._key(digest), name, Config=self.transfer)
                else:
                    with open(path, "wb") as out:
                        for chunk in got["Body"].iter_chunks(1 << 20):
                            out.write(chunk)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(digest) from None
                raise
            yield path
        finally:
            path.unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(digest))

    def list(self) -> Iterator[StoredBlob]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                digest = obj["Key"][len(self.prefix):]
                yield StoredBlob(digest, int(obj["Size"]), obj["LastModified"].timestamp())

