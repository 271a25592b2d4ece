"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``), when present.

Used by the run environment record (models, driver, CUDA) and by system metrics (utilisation,
memory, power). Imports nothing beyond the standard library and pynvml, so it also works where
the rest of the SDK's dependencies are not installed (the GPU machine's check script).
Every function returns nothing GPU-related, rather than raising, when pynvml, a driver or a GPU
is missing.
"""

from __future__ import annotations

from typing import Any


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _module() -> Any | None:
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no package, no driver: NVML raises its own error classes
        return None
    return pynvml


def open_gpus() -> list[tuple[Any, Any]]:
    """(pynvml, handle) per GPU, for sampling with ``sample``; NVML stays initialised."""
    nvml = _module()
    if nvml is None:
        return []
    try:
        return [(nvml, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(nvml.nvmlDeviceGetCount())]
    except Exception:  # noqa: BLE001
        return []


def sample(gpus: list[tuple[Any, Any]]) -> dict[str, float]:
    """``system/gpu<i>/utilization_percent``, ``.../memory_used_bytes`` and ``.../power_watts``."""
    values: dict[str, float] = {}
    for index, (nvml, handle) in enumerate(gpus):
        util = nvml.nvmlDeviceGetUtilizationRates(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        values[f"system/gpu{index}/utilization_percent"] = float(util.gpu)
        values[f"system/gpu{index}/memory_used_bytes"] = float(memory.used)
        values[f"system/gpu{index}/power_watts"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
    return values


def inventory() -> tuple[list[dict[str, Any]], str | None]:
    """([{name, driver, memory_mib}] per GPU, the driver's CUDA version as "13.0" or None)."""
    nvml = _module()
    if nvml is None:
        return [], None
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = nvml.nvmlSystemGetCudaDriverVersion()
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total
            gpus.append({"name": _text(nvml.nvmlDeviceGetName(handle)), "driver": driver,
                         "memory_mib": int(memory) // (1 << 20)})
        return gpus, f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None
    except Exception:  # noqa: BLE001
        return [], None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
