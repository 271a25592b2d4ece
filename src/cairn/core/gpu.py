"""The core on a CUDA GPU: BLAKE3 fingerprints and segmented reductions.

Digests equal the CPU path and the ``blake3`` package byte for byte. Device arrays (CuPy, PyTorch,
anything with ``__cuda_array_interface__`` or DLPack) are hashed in place, without a copy; host
buffers and files are streamed to the GPU through pinned staging buffers. Without a usable GPU every
function raises :class:`GpuUnavailableError`, whose message says why (see ``build_info()``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from cairn import _core
from cairn.core.errors import GpuUnavailableError

__all__ = [
    "GpuUnavailableError",
    "blake3_gpu",
    "blake3_gpu_file",
    "gpu_available",
    "segment_quantiles_gpu",
    "segment_reduce_gpu",
]

SEGMENT_STATS = ("count", "nan_count", "sum", "min", "max", "mean", "var")

# DLPack device types that CUDA kernels can read (kDLCUDA, kDLCUDAManaged).
_DLPACK_CUDA_DEVICES = (2, 13)


def gpu_available() -> bool:
    """Whether this build has CUDA kernels and a CUDA GPU is usable now."""
    return bool(_core.build_info()["gpu_usable"])


def _require_gpu(fallback: str) -> None:
    info = _core.build_info()
    if not info["gpu_usable"]:
        raise GpuUnavailableError(f"no usable CUDA GPU: {info['gpu_reason']}; {fallback}")


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
    _require_gpu("hash on the CPU instead")
    device = _device_buffer(data)
    if device is not None:
        ptr, nbytes, stream = device
        return _core.blake3_cuda_device(ptr, nbytes, stream)
    return _core.blake3_cuda_host(data)


def device_nbytes(obj: Any) -> int:
    """Size in bytes of a device array (C-contiguous; ValueError otherwise)."""
    device = _device_buffer(obj)
    if device is None:
        raise TypeError(f"{type(obj).__name__} is not a CUDA device array")
    return device[1]


def host_copy_possible() -> bool:
    """Whether device arrays can be copied to the host here (it takes CuPy)."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def device_bytes_to_host(obj: Any) -> Any:
    """A host (NumPy) copy of a C-contiguous device array's bytes, in memory order."""
    _device_buffer(obj)  # refuses strided views, as the GPU path does
    cupy = _cupy("hashing a device array on the CPU")
    if hasattr(obj, "__cuda_array_interface__"):
        arr = cupy.asarray(obj)
    else:
        arr = cupy.from_dlpack(obj)
    return cupy.asnumpy(arr.reshape(-1).view(cupy.uint8))


def blake3_gpu_file(path: str | os.PathLike[str]) -> bytes:
    """BLAKE3 digest (32 bytes) of a file's contents, read in large blocks and hashed on the GPU."""
    _require_gpu("hash on the CPU instead")
    return _core.blake3_cuda_file(os.fsencode(path))


def _cupy(what: str = "segment_reduce_gpu") -> Any:
    try:
        import cupy
    except ImportError as exc:
        raise GpuUnavailableError(f"{what} needs CuPy (pip install cupy-cuda13x)") from exc
    return cupy


def segment_reduce_gpu(
    values: Any,
    offsets: Any,
    *,
    ddof: int = 0,
    out: str = "cupy",
    stats: tuple[str, ...] = SEGMENT_STATS,
) -> dict[str, Any]:
    """Per-segment count, nan_count, sum, min, max, mean and var of ``values`` on the GPU.

    ``values`` is a 1-D float32 or float64 array (CuPy or any device array, used in place; NumPy
    arrays are copied to the GPU); ``offsets`` holds nseg + 1 int64 CSR offsets (segment s is
    ``values[offsets[s]:offsets[s+1]]``). NaN values are skipped and counted in ``nan_count``; an
    empty segment has count 0, sum 0 and NaN elsewhere; var is the population variance for
    ``ddof=0``. Accumulation is in float64 (see docs/gpu.md): results match a float64
    NumPy reference within a relative 1e-9. Returns ``{stat: array}`` as CuPy arrays, or NumPy
    arrays with ``out="numpy"``.
    """
    _require_gpu("reduce on the CPU instead")
    if out not in ("cupy", "numpy"):
        raise ValueError(f"out must be 'cupy' or 'numpy', not {out!r}")
    unknown = set(stats) - set(SEGMENT_STATS)
    if unknown:
        raise ValueError(f"unknown stats {sorted(unknown)}; choose from {SEGMENT_STATS}")
    cupy = _cupy()
    vals = cupy.asarray(values)
    if vals.dtype not in (cupy.float32, cupy.float64):
        raise TypeError(f"values must be float32 or float64, not {vals.dtype}")
    if vals.ndim != 1:
        raise ValueError(f"values must be 1-D, not {vals.ndim}-D")
    vals = cupy.ascontiguousarray(vals)
    offs = cupy.ascontiguousarray(cupy.asarray(offsets, dtype=cupy.int64))
    if offs.ndim != 1 or offs.size < 1:
        raise ValueError("offsets must be 1-D with nseg + 1 >= 1 elements")
    result = reduce_segments_into_new(cupy, vals, offs, stats, ddof)
    if out == "numpy":
        return {name: cupy.asnumpy(arr) for name, arr in result.items()}
    return result


def reduce_segments_into_new(
    cupy: Any, vals: Any, offs: Any, stats: Iterable[str], ddof: int
) -> dict[str, Any]:
    """Runs the segmented-reduction kernels on checked CuPy ``vals`` (float32/float64, contiguous)
    and int64 ``offs`` on the current stream; returns new CuPy arrays, one per stat of
    ``SEGMENT_STATS`` asked for (count and nan_count int64, the others float64)."""
    nseg = offs.size - 1
    result = {
        name: cupy.empty(nseg, dtype=cupy.int64 if name in ("count", "nan_count") else cupy.float64)
        for name in stats
    }
    _core.segment_reduce_cuda(
        vals.data.ptr,
        str(vals.dtype),
        vals.size,
        offs.data.ptr,
        nseg,
        {name: arr.data.ptr for name, arr in result.items()},
        int(ddof),
        cupy.cuda.get_current_stream().ptr,
    )
    return result


def segment_quantiles_gpu(values: Any, q: Any, offsets: Any, *, out: str = "cupy") -> Any:
    """Per-segment quantiles of ``values`` on the GPU: ``cairn.core.segment_quantiles`` with
    ``device="cuda"`` (NaN skipped, numpy's linear interpolation, NaN for an empty segment; the
    CPU's values exactly). CuPy result, or NumPy with ``out="numpy"``."""
    if out not in ("cupy", "numpy"):
        raise ValueError(f"out must be 'cupy' or 'numpy', not {out!r}")
    from cairn.core.aggregate import segment_quantiles

    return segment_quantiles(values, q, offsets=offsets, device="cuda", out=out)
