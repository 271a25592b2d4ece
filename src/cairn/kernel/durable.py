"""Durability on the file system: a file renamed into a folder is only durable once the folder's
entry is, so writers that rename into place (blobs, metric and span Parquet files) sync the folder."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Flush the folder ``path`` (its entries: a file just created or renamed into it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
