"""The core on a CUDA GPU: BLAKE3 fingerprints and segmented reductions.

Digests equal the CPU path and the ``blake3`` package byte for byte. Device arrays (CuPy, PyTorch,
anything with ``__cuda_array_interface__`` or DLPack) are hashed in place, without a copy; host
buffers and files are streamed to the GPU through pinned staging buffers. Without a usable GPU every
function raises :class:`GpuUnavailableError`, whose message says why (see ``build_info()``).
"""

from __future__ import annotations

import os
from typing import Any

from cairn import _core

__all__ = [
    "GpuUnavailableError",
    "blake3_gpu",
    "blake3_gpu_file",
    "gpu_available",
]

# DLPack device types that CUDA kernels can read (kDLCUDA, kDLCUDAManaged).
_DLPACK_CUDA_DEVICES = (2, 13)


class GpuUnavailableError(RuntimeError):
    """No CUDA GPU is usable in this process (no CUDA in the build, no driver, or no device)."""


def gpu_available() -> bool:
    """Whether this build has CUDA kernels and a CUDA GPU is usable now."""
    return bool(_core.build_info()["gpu_usable"])


def _require_gpu() -> None:
    info = _core.build_info()
    if not info["gpu_usable"]:
        raise GpuUnavailableError(
            f"no usable CUDA GPU: {info['gpu_reason']}; hash on the CPU instead"
        )


def _device_buffer(obj: Any) -> tuple[int, int, int] | None:
    """(pointer, nbytes, stream) of a C-contiguous device array, or None for host objects."""
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is None and hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        device_type, _ = obj.__dlpack_device__()
        if int(device_type) not in _DLPACK_CUDA_DEVICES:
            return None
        try:
            import cupy  # imported lazily: CuPy is optional
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise TypeError(
                "hashing a DLPack device array needs CuPy; pass an object with "
                "__cuda_array_interface__ instead"
            ) from exc
        obj = cupy.from_dlpack(obj)
        cai = obj.__cuda_array_interface__
    if cai is None:
        return None
    shape = tuple(int(n) for n in cai["shape"])
    itemsize = int(cai["typestr"][2:])
    count = 1
    for n in shape:
        count *= n
    strides = cai.get("strides")
    if strides is not None and count > 0:
        expected, step = [], itemsize
        for n in reversed(shape):
            expected.append(step)
            step *= n
        if any(n > 1 and s != e for n, s, e in zip(shape, strides, reversed(expected))):
            raise ValueError(
                "the device array is not C-contiguous; hash cupy.ascontiguousarray(x) instead"
            )
    stream = cai.get("stream")
    return int(cai["data"][0] or 0), count * itemsize, int(stream or 0)


def blake3_gpu(data: Any) -> bytes:
    """BLAKE3 digest (32 bytes) of ``data``'s bytes, computed on the GPU.

    ``data`` is a C-contiguous device array (``__cuda_array_interface__`` or DLPack; hashed in
    place, ordered after the work on its producer's stream) or any contiguous host buffer (bytes,
    bytearray, memoryview, NumPy array; pinned memory is copied directly, pageable memory through
    pinned staging buffers). The digest is that of the raw bytes in memory order, so
    ``blake3_gpu(x) == blake3(x.tobytes())``.
    """
    _require_gpu()
    device = _device_buffer(data)
    if device is not None:
        ptr, nbytes, stream = device
        return _core.blake3_cuda_device(ptr, nbytes, stream)
    return _core.blake3_cuda_host(data)


def blake3_gpu_file(path: str | os.PathLike[str]) -> bytes:
    """BLAKE3 digest (32 bytes) of a file's contents, read in large blocks and hashed on the GPU."""
    _require_gpu()
    return _core.blake3_cuda_file(os.fspath(path))
