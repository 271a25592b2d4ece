"""What this machine offers: CPUs, memory, and NVIDIA GPUs (through nvidia-smi, when present)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any


def detect_gpus() -> list[str]:
    """GPU model names, one per GPU (empty without nvidia-smi or a working driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def detect_capacity(cpus: float | None = None, memory_mib: int | None = None,
                    gpus: int | None = None) -> dict[str, Any]:
    """The capacity to advertise; explicit values override what is detected."""
    import psutil

    names = detect_gpus()
    if gpus is not None:
        names = names[:gpus] + ["unknown"] * max(0, gpus - len(names))
    return {
        "cpus": float(cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                     else os.cpu_count() or 1)),
        "memory_mib": int(memory_mib if memory_mib is not None else psutil.virtual_memory().total // (1 << 20)),
        "gpus": len(names),
        "gpu_types": sorted(set(names)),
    }
