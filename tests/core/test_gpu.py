"""BLAKE3 on the GPU: digests equal the reference for every length and every input path.

Tests marked ``gpu`` need a usable CUDA GPU and skip cleanly without one (``scripts/gpu-check`` runs
them on a GPU machine). The others run everywhere: the host emulation of the kernels' tree code, and
the error a machine without a GPU gives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import cairn.core
from cairn import _core
from cairn.core import gpu

import blake3_reference
from gpu_marks import GPU_USABLE, needs_gpu

DATA = Path(__file__).parent / "data"
OFFICIAL = {
    int(n): bytes.fromhex(h)
    for n, h in json.loads((DATA / "blake3_official_input.json").read_text())["digests"].items()
}


try:  # the reference package, when installed (it is not on the GPU machine)
    import blake3 as blake3_package
except ImportError:  # pragma: no cover - depends on the environment
    blake3_package = None

# Lengths around every boundary the kernels have: blocks, chunks, 256-chunk thread-block groups,
# 2^16-chunk second-level groups and 32 MiB staged blocks.
EDGE_LENGTHS = sorted(
    {0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3 * 1024, 3 * 1024 + 1}
    | {(1 << k) + d for k in range(1, 25) for d in (-1, 0, 1)}
    | {(1 << 20) + 1, 256 * 1024 * 3 + 5, 257 * 1024}
)
LARGE_LENGTHS = [(32 << 20) - 1, 32 << 20, (32 << 20) + 1, (64 << 20) + 1024, (100 << 20) + 3]


def oracle(data: bytes) -> bytes:
    """The reference digest: the blake3 package if present, else the pure-Python reference for
    short inputs and the (separately verified) C++ emulation for long ones."""
    if blake3_package is not None:
        return blake3_package.blake3(data).digest()
    if len(data) <= 256 * 1024:
        return blake3_reference.blake3(data)
    return _core._blake3_gpu_host_emulation(data, 0)


def random_bytes(n: int, seed: int = 7) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


# ------------------------------------------------------------------------------------------------
# Everywhere: the kernels' tree logic, emulated on the CPU, and the no-GPU error.


@pytest.mark.parametrize("n", sorted(OFFICIAL))
def test_reference_matches_official_input_digests(n: int) -> None:
    assert blake3_reference.blake3(blake3_reference.official_input(n)) == OFFICIAL[n]


@pytest.mark.parametrize("k", [0, 1, 2, 8, 15])
def test_emulated_gpu_tree_matches_official_digests(k: int) -> None:
    for n, digest in OFFICIAL.items():
        assert _core._blake3_gpu_host_emulation(blake3_reference.official_input(n), k) == digest


@pytest.mark.parametrize("n", [n for n in EDGE_LENGTHS if n <= 1 << 18])
def test_emulated_gpu_tree_matches_reference_at_edges(n: int) -> None:
    data = random_bytes(n)
    expected = blake3_reference.blake3(data)
    for k in (0, 1, 3, 8):
        assert _core._blake3_gpu_host_emulation(data, k) == expected, (n, k)


@pytest.mark.skipif(blake3_package is None, reason="the blake3 package is not installed")
@pytest.mark.parametrize("n", [(1 << 24) + 1, (16 << 20) * 3 + 1024 * 257 + 9, (1 << 26) + 1025])
def test_emulated_gpu_tree_matches_blake3_package_on_large_inputs(n: int) -> None:
    data = random_bytes(n)
    expected = blake3_package.blake3(data).digest()
    for k in (0, 15, 16):
        assert _core._blake3_gpu_host_emulation(data, k) == expected, (n, k)


@pytest.mark.skipif(GPU_USABLE, reason="a GPU is usable here")
def test_without_gpu_blake3_gpu_raises_a_clear_error() -> None:
    info = cairn.core.build_info()
    assert info["gpu_usable"] is False
    assert info["gpu_reason"]  # build_info says why
    assert gpu.gpu_available() is False
    with pytest.raises(gpu.GpuUnavailableError, match="no usable CUDA GPU"):
        cairn.core.blake3_gpu(b"abc")
    with pytest.raises(gpu.GpuUnavailableError, match="no usable CUDA GPU"):
        cairn.core.blake3_gpu_file(__file__)
    with pytest.raises(RuntimeError, match="CUDA"):  # the private layer explains itself too
        _core.blake3_cuda_host(b"abc")


# ------------------------------------------------------------------------------------------------
# On a GPU.




@pytest.mark.gpu
@needs_gpu
def test_gpu_is_reported_usable() -> None:
    assert gpu.gpu_available()
    assert cairn.core.build_info()["gpu_name"]


@pytest.mark.gpu
@needs_gpu
def test_official_digests_on_device_host_and_file(cupy, tmp_path: Path) -> None:
    for n, digest in OFFICIAL.items():
        data = blake3_reference.official_input(n)
        assert cairn.core.blake3_gpu(cupy.asarray(np.frombuffer(data, np.uint8))) == digest, n
        assert cairn.core.blake3_gpu(data) == digest, n
        path = tmp_path / f"in{n}"
        path.write_bytes(data)
        assert cairn.core.blake3_gpu_file(path) == digest, n


@pytest.mark.gpu
@needs_gpu
def test_device_and_host_paths_match_oracle_at_every_edge(cupy) -> None:
    big = random_bytes(max(EDGE_LENGTHS), seed=11)
    device = cupy.asarray(np.frombuffer(big, np.uint8))
    for n in EDGE_LENGTHS:
        expected = oracle(big[:n])
        assert cairn.core.blake3_gpu(device[:n]) == expected, ("device", n)
        assert cairn.core.blake3_gpu(memoryview(big)[:n]) == expected, ("host", n)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("n", LARGE_LENGTHS)
def test_large_inputs_agree_on_device_host_pinned_and_file(cupy, tmp_path: Path, n: int) -> None:
    data = random_bytes(n, seed=n % 1000)
    expected = oracle(data)
    host = np.frombuffer(data, np.uint8)
    assert cairn.core.blake3_gpu(cupy.asarray(host)) == expected
    assert cairn.core.blake3_gpu(data) == expected
    pinned_mem = cupy.cuda.alloc_pinned_memory(n)
    pinned = np.frombuffer(pinned_mem, np.uint8, n)
    pinned[:] = host
    assert cairn.core.blake3_gpu(pinned) == expected
    path = tmp_path / "large.bin"
    path.write_bytes(data)
    assert cairn.core.blake3_gpu_file(path) == expected


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("offset", [1, 2, 4, 8, 12])
def test_unaligned_device_memory_hashes_correctly(cupy, offset: int) -> None:
    data = random_bytes(300 * 1024 + 77, seed=offset)
    device = cupy.asarray(np.frombuffer(data, np.uint8))
    for n in (0, 1, 1024, 1025, 64 * 1024, len(data) - offset):
        assert cairn.core.blake3_gpu(device[offset : offset + n]) == oracle(
            data[offset : offset + n]
        )


@pytest.mark.gpu
@needs_gpu
def test_typed_device_arrays_hash_their_bytes(cupy) -> None:
    values = np.arange(1_000_003, dtype=np.float32)
    assert cairn.core.blake3_gpu(cupy.asarray(values)) == oracle(values.tobytes())
    matrix = np.arange(3 * 5000, dtype=np.int64).reshape(3, 5000)
    assert cairn.core.blake3_gpu(cupy.asarray(matrix)) == oracle(matrix.tobytes())


@pytest.mark.gpu
@needs_gpu
def test_non_contiguous_device_array_is_refused(cupy) -> None:
    strided = cupy.arange(10_000, dtype=cupy.int32)[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        cairn.core.blake3_gpu(strided)


@pytest.mark.gpu
@needs_gpu
def test_work_on_a_non_default_stream_is_ordered(cupy) -> None:
    n = (8 << 20) + 5
    expected = oracle(bytes(n))
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        device = cupy.ones(n, dtype=cupy.uint8)
        device.fill(0)  # queued on `stream`; the hash must come after it
        assert cairn.core.blake3_gpu(device) == expected


@pytest.mark.gpu
@needs_gpu
def test_torch_tensors_hash_through_dlpack_or_cai(cupy) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no GPU")
    values = torch.arange(777_777, dtype=torch.int32, device="cuda")
    expected = oracle(values.cpu().numpy().tobytes())
    assert cairn.core.blake3_gpu(values) == expected


@pytest.mark.gpu
@needs_gpu
def test_empty_device_array_hashes_to_empty_digest(cupy) -> None:
    assert cairn.core.blake3_gpu(cupy.zeros(0, dtype=cupy.uint8)) == OFFICIAL[0]
    assert cairn.core.blake3_gpu(cupy.zeros((0, 7), dtype=cupy.float64)) == OFFICIAL[0]


@pytest.mark.gpu
@needs_gpu
def test_host_pointer_given_to_device_path_is_refused(cupy) -> None:
    host = np.zeros(4096, dtype=np.uint8)
    with pytest.raises(ValueError, match="not CUDA device memory"):
        _core.blake3_cuda_device(host.ctypes.data, host.nbytes)


@pytest.mark.gpu
@needs_gpu
def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="cannot open"):
        cairn.core.blake3_gpu_file(tmp_path / "missing")


@pytest.mark.gpu
@needs_gpu
def test_empty_file_hashes_to_empty_digest(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert cairn.core.blake3_gpu_file(path) == OFFICIAL[0]
    assert os.path.getsize(path) == 0


class _FakeDeviceArray:
    """Stands in for a device array: only its __cuda_array_interface__ is read."""

    def __init__(self, shape: tuple[int, ...], typestr: str, strides=None, stream=None) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": typestr,
            "data": (4096, False),
            "strides": strides,
            "version": 3,
            "stream": stream,
        }


def test_device_array_interface_gives_pointer_size_and_stream() -> None:
    assert gpu._device_buffer(_FakeDeviceArray((3, 5), "<f8", stream=1)) == (4096, 120, 1)
    assert gpu._device_buffer(_FakeDeviceArray((3, 5), "<f4", strides=(20, 4))) == (4096, 60, 0)
    assert gpu._device_buffer(_FakeDeviceArray((1, 5), "|u1", strides=(999, 1))) == (4096, 5, 0)
    assert gpu._device_buffer(b"host bytes") is None


def test_strided_device_array_interface_is_refused() -> None:
    with pytest.raises(ValueError, match="C-contiguous"):
        gpu._device_buffer(_FakeDeviceArray((10,), "<i4", strides=(8,)))
    with pytest.raises(ValueError, match="C-contiguous"):
        gpu._device_buffer(_FakeDeviceArray((4, 4), "<f4", strides=(4, 16)))
