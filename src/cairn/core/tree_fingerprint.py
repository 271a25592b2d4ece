"""Dataset fingerprints: a manifest of a directory tree's files and links, hashed in parallel.

Rules (see docs/core.md):
- Regular files are hashed; their entry is (relative path, size, BLAKE3 hex digest).
- Symbolic links inside the tree are recorded as links with their target and never followed,
  wherever they point, so a fingerprint never reads outside the tree. The root path itself is
  followed if it is a link: the caller named it.
- Fifos, sockets and devices have no content: they raise SpecialFileError, or with
  ``on_special="skip"`` are left out and listed in ``Manifest.skipped``.
- Directories are walked, not recorded: empty directories do not change the digest.
- With a cache, files whose (device, inode, size, mtime_ns) match a cached digest are not read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple, Union

from cairn import _core
from cairn.core import device as _device
from cairn.core.device import Device
from cairn.core.errors import FileChangedError, SpecialFileError
from cairn.core.fingerprint_cache import FileKey, FingerprintCache
from cairn.core.manifest import Manifest, ManifestEntry

__all__ = ["fingerprint_tree"]

StrPath = Union[str, "os.PathLike[str]"]
OnSpecial = Literal["error", "skip"]
Progress = Callable[[int, int], None]

# Files at least this large are hashed one at a time with every thread; smaller ones in parallel,
# one thread each, a batch per call into the core (no per-file Python overhead).
_LARGE_FILE = 64 << 20
_BATCH_BYTES = 256 << 20
_BATCH_FILES = 2048


class _File(NamedTuple):
    rel: str
    path: str
    key: FileKey


def fingerprint_tree(
    path: StrPath,
    *,
    threads: int | None = None,
    cache: StrPath | FingerprintCache | None = None,
    on_special: OnSpecial = "error",
    progress: Progress | None = None,
    device: Device = "auto",
) -> Manifest:
    """Manifest of a directory tree (or of a single file) with its dataset digest.

    ``cache`` is a FingerprintCache or the path of its SQLite file (created if absent).
    ``threads=None`` uses every core. ``progress(done, total)``, if given, is called with the
    bytes hashed so far and the bytes to hash (cache hits excluded), after each large file and
    each batch of small ones; once with (0, 0) when the cache covers every file.

    ``device="cuda"`` hashes every file's content on the GPU (files read into pinned buffers;
    GpuUnavailableError without a usable GPU); ``"auto"`` and ``"cpu"`` hash on the CPU, which
    was faster for files in the page cache (see :mod:`cairn.core.device`). Link targets are a few
    bytes and always hashed on the CPU. The manifest is the same on either device.
    """
    if _device.check_device(device) == "cuda":
        _device.require_gpu("fingerprint_tree")
    on_gpu = device == "cuda"
    if on_special not in ("error", "skip"):
        raise ValueError(f"on_special must be 'error' or 'skip', got {on_special!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be a positive number or None (all cores), got {threads}")
    workers = threads or _core.threads()  # CAIRN_THREADS, else every core (one place: the core)
    root = os.fspath(path)
    files, links, skipped = _scan(root, on_special)

    owned = isinstance(cache, (str, os.PathLike))
    store = FingerprintCache(cache) if isinstance(cache, (str, os.PathLike)) else cache
    try:
        digests = _digests(files, store, workers, progress, on_gpu)
    finally:
        if store is not None and owned:
            store.close()
        elif store is not None:
            store.flush()

    entries = [ManifestEntry(f.rel, "file", f.key.size, digests[f.rel]) for f in files]
    entries.extend(links)
    return Manifest.from_entries(entries, tuple(sorted(skipped)))


def _scan(root: str, on_special: OnSpecial) -> tuple[list[_File], list[ManifestEntry], list[str]]:
    """Walks the tree without following links: files to hash, link entries, skipped paths."""
    files: list[_File] = []
    links: list[ManifestEntry] = []
    skipped: list[str] = []
    st = os.stat(root)
    if stat.S_ISREG(st.st_mode):
        files.append(_File(os.path.basename(os.path.abspath(root)), root, FileKey.of(st)))
        return files, links, skipped
    if not stat.S_ISDIR(st.st_mode):
        raise SpecialFileError(root, _kind(st.st_mode))
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as it:
            for entry in it:
                rel = prefix + entry.name
                if entry.is_symlink():
                    links.append(_link_entry(rel, entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    files.append(
                        _File(rel, entry.path, FileKey.of(entry.stat(follow_symlinks=False)))
                    )
                else:
                    kind = _kind(entry.stat(follow_symlinks=False).st_mode)
                    if on_special == "error":
                        raise SpecialFileError(entry.path, kind)
                    skipped.append(rel)
    return files, links, skipped


def _link_entry(rel: str, path: str) -> ManifestEntry:
    target = os.readlink(path)
    raw = os.fsencode(target)
    return ManifestEntry(rel, "symlink", len(raw), _core.blake3(raw, 1).hex(), target)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def _digests(
    files: list[_File],
    cache: FingerprintCache | None,
    workers: int,
    progress: Progress | None,
    on_gpu: bool = False,
) -> dict[str, str]:
    """Hex digest of every file: from the cache where it matches, else hashed (and cached)."""
    digests: dict[str, str] = {}
    todo: list[_File] = []
    for f in files:
        hit = cache.get(f.key) if cache is not None else None
        if hit is None:
            todo.append(f)
        else:
            digests[f.rel] = hit
    large = [f for f in todo if on_gpu or f.key.size >= _LARGE_FILE]
    small = [f for f in todo if not on_gpu and f.key.size < _LARGE_FILE]
    total = sum(f.key.size for f in todo)
    done = 0

    def record(f: _File, digest: bytes, size: int) -> None:
        nonlocal done
        if size != f.key.size:
            raise FileChangedError(f.path, f.key.size, size)
        digests[f.rel] = digest.hex()
        done += size

    for f in large:
        if on_gpu:
            record(f, *_gpu_file_digest(f.path))
        else:
            record(f, *_core.blake3_file(os.fsencode(f.path), workers))
        if progress is not None:
            progress(done, total)
    for batch in _batches(small):
        for f, (digest, size) in zip(
            batch, _core.blake3_files([os.fsencode(f.path) for f in batch], workers)
        ):
            record(f, digest, size)
        if progress is not None:
            progress(done, total)
    if progress is not None and not todo:
        progress(0, 0)
    if cache is not None:
        for f in todo:
            cache.put(f.key, digests[f.rel])
    return digests


def _gpu_file_digest(path: str) -> tuple[bytes, int]:
    """(digest, size) of a file hashed on the GPU; the size is taken after the read, so a file
    that grew or shrank meanwhile is caught by the caller's size check."""
    digest = _core.blake3_cuda_file(os.fsencode(path))
    return digest, os.stat(path).st_size


def _batches(files: list[_File]) -> Iterator[list[_File]]:
    """Consecutive runs of files of at most _BATCH_BYTES or _BATCH_FILES (at least one file)."""
    batch: list[_File] = []
    size = 0
    for f in files:
        if batch and (size + f.key.size > _BATCH_BYTES or len(batch) == _BATCH_FILES):
            yield batch
            batch, size = [], 0
        batch.append(f)
        size += f.key.size
    if batch:
        yield batch
