"""Files and folders only their owner may read: the data dir's secrets (service key, NATS
credentials). Made with their mode before any byte is in them, fsynced, then put in place."""

from __future__ import annotations

import os
from pathlib import Path


def private_folder(path: Path) -> Path:
    """``path`` (parents made as needed), mode 0700 even if it was there with another mode."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str, *, keep_existing: bool = False) -> bool:
    """Write ``text`` to ``path`` with mode 0600. With ``keep_existing``, a file already there
    (made meanwhile by another process) wins and is left as it is; returns whether ours was put
    in place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o600)  # an old tmp file may have had another mode
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if not keep_existing:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic, and fails if the file exists
            return True
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
