"""BLAKE3 fingerprints of buffers and files, and re-fingerprinting from subtree chaining values.

Digests equal the reference BLAKE3 (the ``blake3`` package, ``b3sum``) for every input; the work
is spread over SIMD lanes and threads without changing the result.

Subtrees: an input of ``size`` bytes is viewed as ``(size - 1) // leaf_size`` aligned *leaves* of
``leaf_size`` bytes (a power of two, 1 MiB by default) followed by a *tail* of 1..leaf_size bytes.
Each leaf is a complete subtree of the BLAKE3 tree, so its chaining value (CV) can be kept and,
after a partial change, only the leaves that changed and the tail are hashed again:
``refingerprint(cvs, tail)`` rebuilds the digest from the CVs and the tail's bytes.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

from cairn import _core
from cairn.core import device as _device
from cairn.core.device import Device

__all__ = [
    "DEFAULT_LEAF_SIZE",
    "FileSubtrees",
    "blake3",
    "file_subtrees",
    "fingerprint_file",
    "leaf_count",
    "leaf_cv",
    "refingerprint",
    "refresh_file_subtrees",
    "subtree_cvs",
]

# Anything C-contiguous with the buffer protocol (bytes, bytearray, memoryview, numpy arrays,
# mmap, ...). collections.abc.Buffer arrives in Python 3.12; until then it cannot be spelled.
Buffer = Any
StrPath = Union[str, "os.PathLike[str]"]

DEFAULT_LEAF_SIZE = 1 << 20


def _threads(threads: int | None) -> int:
    """Maps the public `threads` argument to the core's (0 = ``cairn.core.threads()``: the
    CAIRN_THREADS environment variable, else every hardware thread)."""
    if threads is None:
        return 0
    if threads < 1:
        raise ValueError(f"threads must be a positive number or None (all cores), got {threads}")
    return threads


def blake3(buffer: Buffer, *, threads: int | None = None, device: Device = "auto") -> bytes:
    """BLAKE3 digest (32 bytes) of a C-contiguous buffer, read zero-copy with the GIL released.

    ``buffer`` is anything with the buffer protocol, or a device array (CuPy, PyTorch, anything
    with ``__cuda_array_interface__`` or DLPack). ``device``: ``"cpu"``, ``"cuda"`` (raises
    GpuUnavailableError without a usable GPU) or ``"auto"`` (the rule in :mod:`cairn.core.device`:
    the GPU for device arrays of 64 KiB or more and pinned host buffers of 1 GiB or more, else the
    CPU). ``threads=None`` uses every core for large inputs; the digest depends on neither.
    """
    t = _threads(threads)
    _device.check_device(device)
    on_device = _device.is_device_array(buffer)
    if device == "auto":
        device = _auto_for_buffer(buffer, on_device)
    if device == "cuda":
        _device.require_gpu("blake3")
        from cairn.core.gpu import blake3_gpu

        return blake3_gpu(buffer)
    if on_device:
        from cairn.core.gpu import device_bytes_to_host

        buffer = device_bytes_to_host(buffer)
    return _core.blake3(buffer, t)


def _auto_for_buffer(buffer: Buffer, on_device: bool) -> Device:
    """``auto``'s choice for one buffer (the rule and its figures: :mod:`cairn.core.device`)."""
    if on_device:
        if not _device.gpu_usable():
            return "cpu"
        from cairn.core.gpu import device_nbytes, host_copy_possible

        small = device_nbytes(buffer) < _device.AUTO_DEVICE_MIN_BYTES
        return "cpu" if small and host_copy_possible() else "cuda"
    nbytes = memoryview(buffer).nbytes
    if nbytes < _device.AUTO_PINNED_MIN_BYTES:
        return "cpu"  # decided without asking the driver
    if _device.gpu_usable() and _device.is_pinned_host(buffer):
        return "cuda"
    return "cpu"


def fingerprint_file(path: StrPath, *, threads: int | None = None, device: Device = "auto") -> str:
    """Hex BLAKE3 digest of a file's bytes (large files are memory-mapped and hashed in parallel).

    ``device="cuda"`` reads the file into pinned buffers and hashes it on the GPU (raises
    GpuUnavailableError without one); ``"auto"`` and ``"cpu"`` hash on the CPU, which was faster
    for files from the page cache (see :mod:`cairn.core.device`). The digest is the same.
    Raises OSError (FileNotFoundError, PermissionError, IsADirectoryError, ...) when the file
    cannot be read, the same on either device: both read through the core's one file reader.
    """
    t = _threads(threads)
    if _device.check_device(device) == "cuda":
        _device.require_gpu("fingerprint_file")
        return _core.blake3_cuda_file(os.fsencode(path)).hex()
    digest, _size = _core.blake3_file(os.fsencode(path), t)
    return digest.hex()


def leaf_count(size: int, leaf_size: int = DEFAULT_LEAF_SIZE) -> int:
    """Number of full leaves before the tail of a ``size``-byte input: ``(size - 1) // leaf_size``."""
    _check_leaf_size(leaf_size)
    return 0 if size == 0 else (size - 1) // leaf_size


def subtree_cvs(
    buffer: Buffer, *, leaf_size: int = DEFAULT_LEAF_SIZE, threads: int | None = None
) -> list[bytes]:
    """Chaining values (32 bytes each) of the leaves of ``buffer``, in order; the tail is excluded.

    The tail is ``buffer[len(cvs) * leaf_size:]``; pass it with the CVs to :func:`refingerprint`.
    """
    return list(_core.leaf_cvs(buffer, leaf_size, _threads(threads)))


def leaf_cv(
    leaf: Buffer, index: int, *, leaf_size: int = DEFAULT_LEAF_SIZE, threads: int | None = None
) -> bytes:
    """Chaining value of the full leaf (exactly ``leaf_size`` bytes) at position ``index``."""
    if index < 0:
        raise ValueError(f"leaf index must be >= 0, got {index}")
    return _core.leaf_cv(leaf, index, leaf_size, _threads(threads))


def refingerprint(
    cvs: Sequence[bytes],
    tail: Buffer,
    *,
    leaf_size: int = DEFAULT_LEAF_SIZE,
    threads: int | None = None,
) -> bytes:
    """BLAKE3 digest of an input given its leaves' CVs and its tail's bytes.

    The tail must hold 1..leaf_size bytes when there is at least one CV (it is the whole input
    when there is none). Equal to ``blake3(whole_input)``.
    """
    return _core.root_from_leaves(list(cvs), tail, leaf_size, _threads(threads))


@dataclass(frozen=True)
class FileSubtrees:
    """A file's digest with the CVs of its leaves, kept to re-fingerprint it cheaply later."""

    size: int
    leaf_size: int
    cvs: tuple[bytes, ...]
    digest: bytes

    @property
    def hexdigest(self) -> str:
        """The digest as lowercase hex (what :func:`fingerprint_file` returns)."""
        return self.digest.hex()


def file_subtrees(
    path: StrPath, *, leaf_size: int = DEFAULT_LEAF_SIZE, threads: int | None = None
) -> FileSubtrees:
    """Fingerprints a file and keeps its leaf CVs for :func:`refresh_file_subtrees`."""
    return refresh_file_subtrees(None, path, changed=None, leaf_size=leaf_size, threads=threads)


def refresh_file_subtrees(
    previous: FileSubtrees | None,
    path: StrPath,
    *,
    changed: Iterable[tuple[int, int]] | None,
    leaf_size: int | None = None,
    threads: int | None = None,
) -> FileSubtrees:
    """Re-fingerprints a file after a partial change, hashing only what ``changed`` names.

    ``changed`` lists the ``(offset, length)`` byte ranges written since ``previous`` was taken
    (``None``: everything). Leaves that lie wholly before the old end of the file and overlap no
    changed range keep their CVs unread; the other leaves and the tail are hashed. The caller
    vouches for ``changed``: a write it does not name goes unnoticed, like any cache.
    """
    if leaf_size is None:
        leaf_size = previous.leaf_size if previous is not None else DEFAULT_LEAF_SIZE
    _check_leaf_size(leaf_size)
    if previous is not None and previous.leaf_size != leaf_size:
        previous = None  # CVs of other leaves cannot be reused
    ranges = None if changed is None else sorted((o, o + n) for o, n in changed if n > 0)
    t = _threads(threads)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n = leaf_count(size, leaf_size)
        if size == 0:
            return FileSubtrees(0, leaf_size, (), _core.blake3(b"", t))
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                cvs = _leaf_cvs_reusing(previous, view, n, leaf_size, ranges, t)
                tail = view[n * leaf_size :]
                digest = _core.root_from_leaves(cvs, tail, leaf_size, t)
                del tail
            finally:
                view.release()
    return FileSubtrees(size, leaf_size, tuple(cvs), digest)


def _leaf_cvs_reusing(
    previous: FileSubtrees | None,
    view: memoryview,
    n: int,
    leaf_size: int,
    ranges: list[tuple[int, int]] | None,
    threads: int,
) -> list[bytes]:
    """The file's leaf CVs: reused from ``previous`` where allowed, hashed elsewhere."""
    if previous is None or ranges is None:
        return list(_core.leaf_cvs(view, leaf_size, threads))
    cvs: list[bytes] = []
    for i in range(n):
        start, end = i * leaf_size, (i + 1) * leaf_size
        reusable = i < len(previous.cvs) and not any(s < end and start < e for s, e in ranges)
        if reusable:
            cvs.append(previous.cvs[i])
        else:
            cvs.append(_core.leaf_cv(view[start:end], i, leaf_size, threads))
    return cvs


def _check_leaf_size(leaf_size: int) -> None:
    if leaf_size < 1024 or leaf_size & (leaf_size - 1):
        raise ValueError(
            f"leaf_size must be a power of two of at least 1024 bytes, got {leaf_size}"
        )
