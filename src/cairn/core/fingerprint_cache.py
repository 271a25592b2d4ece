"""A persistent cache of file digests keyed by (st_dev, st_ino, size, mtime_ns), in SQLite.

A file whose device, inode, size and modification time (in nanoseconds) match a cached row is not
read again. The known blind spot, shared with git, make and DVC: a write that leaves both size and
mtime unchanged (e.g. ``os.utime`` used to restore the old time) is not seen; fingerprint without
a cache to be sure. A file modified in the same clock tick as it was hashed could carry the same
mtime after the change ("racy" entries, in git's words), so digests of files whose mtime is within
``RACY_WINDOW_NS`` of the time of hashing are not stored.
"""

from __future__ import annotations

import os
import sqlite3
import time
from types import TracebackType
from typing import NamedTuple

__all__ = ["RACY_WINDOW_NS", "FileKey", "FingerprintCache"]

RACY_WINDOW_NS = 2_000_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_digest (
  dev INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  digest TEXT NOT NULL,
  PRIMARY KEY (dev, ino)
) WITHOUT ROWID
"""


def _to_sql(n: int) -> int:
    """SQLite integers are signed 64-bit; device and inode numbers are unsigned."""
    return n - (1 << 64) if n >= 1 << 63 else n


def _from_sql(n: int) -> int:
    return n + (1 << 64) if n < 0 else n


class FileKey(NamedTuple):
    """What identifies one version of a file for the cache."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileKey:
        """The key of a stat result."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FingerprintCache:
    """File digests by (device, inode, size, mtime_ns), loaded whole and written back on flush.

    Use as a context manager, or call :meth:`close`; pending digests are written in one
    transaction by :meth:`flush`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._db = sqlite3.connect(self.path)
        self._db.execute(_SCHEMA)
        self._rows: dict[tuple[int, int], tuple[int, int, str]] = {
            (_from_sql(dev), _from_sql(ino)): (size, mtime_ns, digest)
            for dev, ino, size, mtime_ns, digest in self._db.execute(
                "SELECT dev, ino, size, mtime_ns, digest FROM file_digest"
            )
        }
        self._pending: dict[tuple[int, int], tuple[int, int, str]] = {}

    def get(self, key: FileKey) -> str | None:
        """The cached hex digest of this version of the file, or None."""
        row = self._rows.get((key.dev, key.ino))
        if row is None or row[0] != key.size or row[1] != key.mtime_ns:
            return None
        return row[2]

    def put(self, key: FileKey, digest: str, *, now_ns: int | None = None) -> bool:
        """Records a digest unless the file's mtime is too recent to trust; says if it did."""
        now = time.time_ns() if now_ns is None else now_ns
        if key.mtime_ns > now - RACY_WINDOW_NS:
            return False
        row = (key.size, key.mtime_ns, digest)
        self._rows[(key.dev, key.ino)] = row
        self._pending[(key.dev, key.ino)] = row
        return True

    def flush(self) -> None:
        """Writes pending digests in one transaction."""
        if not self._pending:
            return
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO file_digest (dev, ino, size, mtime_ns, digest)"
                " VALUES (?, ?, ?, ?, ?)",
                [(_to_sql(dev), _to_sql(ino), *row) for (dev, ino), row in self._pending.items()],
            )
        self._pending.clear()

    def close(self) -> None:
        """Flushes and closes the database."""
        try:
            self.flush()
        finally:
            self._db.close()

    def __len__(self) -> int:
        return len(self._rows)

    def __enter__(self) -> FingerprintCache:  # noqa: PYI034 (3.10 has no typing.Self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
