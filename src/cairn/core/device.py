"""Where a core call runs: ``device="cpu" | "cuda" | "auto"``, and the rule ``auto`` follows.

The rule comes from ``benchmarks/bench_gpu.py`` on an NVIDIA H200 with 16 CPU cores (2026-11-26,
figures in docs/gpu.md):

- Data already on the GPU (``__cuda_array_interface__`` or DLPack on a CUDA device): the GPU from
  ``AUTO_DEVICE_MIN_BYTES`` (64 KiB) up. A GPU call costs a fixed ~36 us (launches and one
  synchronisation: 37 us at 4 KiB, 36 us at 64 KiB, 54 us at 1 MiB, 219 us at 256 MiB); the
  alternative is a device-to-host copy (~10 us plus 8 GB/s into pageable memory) and the CPU
  (4.5 us at 4 KiB, 17 us at 64 KiB, 79 us at 1 MiB). The two meet near 64 KiB; from there up the
  GPU wins by more and more, below it smaller device arrays are copied to the host and hashed
  there (when CuPy is there to copy them; else on the GPU). The copy cost is an estimate from the
  measured pageable copy rate; bench_gpu.py's ``blake3_sizes`` also times that path.
- Host buffers: the CPU. The 16 cores beat the copy-bound GPU path at every size measured up to
  256 MiB, and pageable memory reaches the GPU at only ~8 GB/s. Exception: page-locked (pinned)
  buffers of at least ``AUTO_PINNED_MIN_BYTES`` (1 GiB), where the GPU path measured 51 GB/s against
  38.5 GB/s for the CPU.
- Files (and so trees): the CPU (47 GB/s against 33 GB/s for a 3 GiB file from the page cache).
- Aggregations: the GPU only for device-resident inputs (no copy either way).

Without a usable GPU ``auto`` is always the CPU and ``cuda`` raises GpuUnavailableError.
"""

from __future__ import annotations

from typing import Any, Literal

from cairn import _core
from cairn.core.errors import GpuUnavailableError

__all__ = [
    "AUTO_DEVICE_MIN_BYTES",
    "AUTO_PINNED_MIN_BYTES",
    "DEVICES",
    "Device",
    "check_device",
    "is_device_array",
    "require_gpu",
]

Device = Literal["cpu", "cuda", "auto"]
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")

AUTO_DEVICE_MIN_BYTES = 64 << 10
AUTO_PINNED_MIN_BYTES = 1 << 30

# DLPack device types that CUDA kernels can read (kDLCUDA, kDLCUDAManaged).
_DLPACK_CUDA_DEVICES = (2, 13)


def check_device(device: str) -> str:
    """Returns ``device`` if it is one of DEVICES, else raises ValueError."""
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', not {device!r}")
    return device


def gpu_usable() -> bool:
    """Whether this build has CUDA kernels and a CUDA GPU is usable now."""
    return bool(_core.build_info()["gpu_usable"])


def require_gpu(what: str) -> None:
    """Raises GpuUnavailableError, saying why (build_info's reason), when no GPU is usable."""
    info = _core.build_info()
    if not info["gpu_usable"]:
        raise GpuUnavailableError(
            f"device='cuda' asked for {what} but there is no usable CUDA GPU: "
            f"{info['gpu_reason']}; use device='cpu' or device='auto'"
        )


def is_device_array(obj: Any) -> bool:
    """Whether ``obj`` lives in CUDA device memory (``__cuda_array_interface__`` or DLPack)."""
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    dlpack_device = getattr(obj, "__dlpack_device__", None)
    if dlpack_device is None or not hasattr(obj, "__dlpack__"):
        return False
    try:
        device_type, _ = dlpack_device()
    except Exception:  # noqa: BLE001 - a host object with an odd DLPack face is a host object
        return False
    return int(device_type) in _DLPACK_CUDA_DEVICES


def is_pinned_host(buffer: Any) -> bool:
    """Whether a host buffer is page-locked CUDA host memory (asks CuPy; False without it)."""
    try:
        import cupy
        import numpy as np
    except ImportError:
        return False
    try:
        view = np.frombuffer(buffer, dtype=np.uint8)
        if view.size == 0:
            return False
        attrs = cupy.cuda.runtime.pointerGetAttributes(view.ctypes.data)
        kind = getattr(attrs, "type", getattr(attrs, "memoryType", -1))
        return int(kind) == 1  # cudaMemoryTypeHost
    except Exception:  # noqa: BLE001 - any doubt means "not pinned", i.e. the CPU
        return False
