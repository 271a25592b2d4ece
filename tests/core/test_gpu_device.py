"""``device="cpu" | "cuda" | "auto"`` on blake3 and the file, tree and table fingerprints.

The unmarked tests run everywhere (the machine without a GPU checks the errors and the CPU
fallback); tests marked ``gpu`` need a usable CUDA GPU and CuPy, and skip cleanly without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import cairn.core
from cairn.core import device as core_device
from cairn.core.errors import GpuUnavailableError

from gpu_marks import needs_gpu, no_gpu


def payload(n: int, seed: int = 3) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(payload(3 << 20, 1))
    (root / "sub" / "b.bin").write_bytes(payload(70_001, 2))
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("a.bin")
    return root


def table() -> pa.Table:
    return pa.table(
        {
            "x": pa.array(np.arange(50_000, dtype=np.float64)),
            "s": pa.array([f"row {i}" if i % 7 else None for i in range(50_000)]),
        }
    )


FUNCTIONS = ["blake3", "fingerprint_file", "fingerprint_tree", "fingerprint_table"]


def call(name: str, tmp_path: Path, tree: Path, device: str) -> object:
    if name == "blake3":
        return cairn.core.blake3(payload(2 << 20), device=device)
    if name == "fingerprint_file":
        return cairn.core.fingerprint_file(tree / "a.bin", device=device)
    if name == "fingerprint_tree":
        return cairn.core.fingerprint_tree(tree, device=device).digest
    return cairn.core.fingerprint_table(table(), device=device)


def default_call(name: str, tmp_path: Path, tree: Path) -> object:
    if name == "blake3":
        return cairn.core.blake3(payload(2 << 20))
    if name == "fingerprint_file":
        return cairn.core.fingerprint_file(tree / "a.bin")
    if name == "fingerprint_tree":
        return cairn.core.fingerprint_tree(tree).digest
    return cairn.core.fingerprint_table(table())


# ------------------------------------------------------------------------------------------------
# Everywhere.


@pytest.mark.parametrize("name", FUNCTIONS)
def test_device_cpu_and_auto_equal_the_default(name: str, tmp_path: Path, tree: Path) -> None:
    expected = default_call(name, tmp_path, tree)
    assert call(name, tmp_path, tree, "cpu") == expected
    assert call(name, tmp_path, tree, "auto") == expected


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("bad", ["gpu", "CUDA", "", "cuda:0"])
def test_unknown_device_is_a_value_error(name: str, bad: str, tmp_path: Path, tree: Path) -> None:
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto'"):
        call(name, tmp_path, tree, bad)


@no_gpu
@pytest.mark.parametrize("name", FUNCTIONS)
def test_device_cuda_without_gpu_says_why(name: str, tmp_path: Path, tree: Path) -> None:
    reason = cairn.core.build_info()["gpu_reason"]
    with pytest.raises(GpuUnavailableError, match="no usable CUDA GPU") as info:
        call(name, tmp_path, tree, "cuda")
    assert reason in str(info.value)
    assert name in str(info.value)


def test_gpu_unavailable_error_is_exported_once() -> None:
    assert cairn.core.GpuUnavailableError is GpuUnavailableError
    assert issubclass(GpuUnavailableError, RuntimeError)


class FakeDeviceArray:
    """Looks like a device array to the device rule (its pointer is never read)."""

    def __init__(self, nbytes: int) -> None:
        self.__cuda_array_interface__ = {
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (0, True),
            "version": 3,
        }


def test_device_arrays_are_recognised_by_either_protocol() -> None:
    class DlpackCuda:
        def __dlpack__(self, stream: object = None) -> None: ...

        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 0)

    class DlpackCpu(DlpackCuda):
        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    assert core_device.is_device_array(FakeDeviceArray(8))
    assert core_device.is_device_array(DlpackCuda())
    assert not core_device.is_device_array(DlpackCpu())
    assert not core_device.is_device_array(np.zeros(4))
    assert not core_device.is_device_array(b"abc")


@no_gpu
def test_auto_without_gpu_hashes_host_buffers_on_the_cpu() -> None:
    data = payload(5 << 20)
    assert cairn.core.blake3(data, device="auto") == cairn.core.blake3(data, device="cpu")


def test_host_buffers_below_a_gib_are_never_pinned_candidates(monkeypatch) -> None:
    """The auto rule decides small host buffers without asking the driver."""

    def boom(_buffer: object) -> bool:
        raise AssertionError("asked whether a small buffer is pinned")

    monkeypatch.setattr(core_device, "is_pinned_host", boom)
    monkeypatch.setattr(core_device, "gpu_usable", lambda: True)
    data = payload(1 << 20)
    assert cairn.core.blake3(data, device="auto") == cairn.core.blake3(data, device="cpu")


def test_unpinned_memory_is_not_reported_pinned() -> None:
    assert not core_device.is_pinned_host(np.zeros(1024, np.uint8))
    assert not core_device.is_pinned_host(b"")


# ------------------------------------------------------------------------------------------------
# On a GPU.




@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("name", FUNCTIONS)
def test_device_cuda_equals_cpu(name: str, tmp_path: Path, tree: Path) -> None:
    assert call(name, tmp_path, tree, "cuda") == call(name, tmp_path, tree, "cpu")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("n", [0, 1, 4096, (64 << 10) - 1, 64 << 10, (3 << 20) + 5])
def test_device_arrays_hash_alike_on_every_device(cupy, n: int) -> None:
    host = np.frombuffer(payload(n), dtype=np.uint8)
    dev = cupy.asarray(host)
    expected = cairn.core.blake3(host, device="cpu")
    for device in ("cpu", "cuda", "auto"):
        assert cairn.core.blake3(dev, device=device) == expected, device


@pytest.mark.gpu
@needs_gpu
def test_pinned_host_memory_is_detected(cupy) -> None:
    mem = cupy.cuda.alloc_pinned_memory(1 << 16)
    pinned = np.frombuffer(mem, dtype=np.uint8, count=1 << 16)
    assert core_device.is_pinned_host(pinned)
    assert not core_device.is_pinned_host(np.zeros(1 << 16, np.uint8))


@pytest.mark.gpu
@needs_gpu
def test_tree_with_a_large_and_many_small_files_matches_on_gpu(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "big").write_bytes(payload((65 << 20) + 3, 9))
    for i in range(40):
        (root / f"f{i:02d}").write_bytes(payload(i * 1000 + 1, i))
    cpu = cairn.core.fingerprint_tree(root, device="cpu")
    assert cairn.core.fingerprint_tree(root, device="cuda") == cpu
