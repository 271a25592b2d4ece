"""A file that cannot be read fails the same way on the CPU and the GPU paths: both read through
the core's one file reader (cairn/file_reader.hpp), which refuses it before any GPU work, and the
bindings raise the OSError subclass Python itself would (FileNotFoundError, PermissionError,
IsADirectoryError), naming the path."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

import pytest

import cairn.core
from cairn import _core

from gpu_marks import needs_gpu

# The two bindings that read a file: the CPU one and the GPU one (which, in a build without CUDA
# or on a machine without a GPU, still opens the file first and only then refuses).
READERS: dict[str, Callable[[bytes], object]] = {
    "cpu": lambda p: _core.blake3_file(p, 0),
    "cuda": lambda p: _core.blake3_cuda_file(p),
}


def _raised(read: Callable[[bytes], object], path: Path) -> OSError:
    with pytest.raises(OSError) as caught:
        read(os.fsencode(path))
    return caught.value


@pytest.mark.parametrize("device", sorted(READERS))
def test_a_missing_file_is_file_not_found_on_either_path(tmp_path: Path, device: str) -> None:
    missing = tmp_path / "nope.bin"
    err = _raised(READERS[device], missing)
    assert type(err) is FileNotFoundError
    assert err.filename == str(missing)


@pytest.mark.parametrize("device", sorted(READERS))
def test_a_directory_is_is_a_directory_error_on_either_path(tmp_path: Path, device: str) -> None:
    err = _raised(READERS[device], tmp_path)
    assert type(err) is IsADirectoryError
    assert err.filename == str(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("device", sorted(READERS))
def test_an_unreadable_file_is_permission_error_on_either_path(tmp_path: Path, device: str) -> None:
    locked = tmp_path / "locked.bin"
    locked.write_bytes(b"secret")
    locked.chmod(0)
    try:
        assert type(_raised(READERS[device], locked)) is PermissionError
    finally:
        locked.chmod(0o600)


@pytest.mark.parametrize("device", sorted(READERS))
def test_a_path_with_a_nul_byte_is_refused_on_either_path(device: str) -> None:
    with pytest.raises(ValueError, match="null byte"):
        READERS[device](b"a\0b")


def test_the_cpu_path_and_the_gpu_path_raise_the_same_type(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.bin", tmp_path):
        cpu, gpu = (type(_raised(READERS[d], path)) for d in ("cpu", "cuda"))
        assert cpu is gpu


def test_fingerprint_file_on_the_cpu_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        cairn.core.fingerprint_file(tmp_path / "nope.bin", device="cpu")


@pytest.mark.gpu
@needs_gpu
def test_fingerprint_file_on_the_gpu_raises_what_the_cpu_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        cairn.core.fingerprint_file(tmp_path / "nope.bin", device="cuda")
    with pytest.raises(IsADirectoryError):
        cairn.core.fingerprint_file(tmp_path, device="cuda")


@pytest.mark.gpu
@needs_gpu
def test_a_pipe_hashes_the_same_on_the_gpu(tmp_path: Path) -> None:
    # Not a regular file: no size up front, so the GPU path reads it whole first.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    payload = bytes(range(256)) * 5000

    def write() -> None:
        with open(fifo, "wb") as f:
            f.write(payload)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    digest = cairn.core.fingerprint_file(fifo, device="cuda")
    writer.join(timeout=30)
    assert digest == cairn.core.blake3(payload, device="cpu").hex()
