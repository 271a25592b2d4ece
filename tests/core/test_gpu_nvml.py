"""GPUs through NVML (cairn.nvml), as the run environment record and system metrics read them.

The GPU tests need nvidia-ml-py and a driver with a GPU (``scripts/gpu-check`` runs them on the GPU
machine, with no platform); elsewhere the no-GPU behaviour is checked instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from cairn import nvml

GPUS = nvml.open_gpus()
needs_nvml_gpu = pytest.mark.skipif(not GPUS, reason="no GPU visible through NVML")


@pytest.mark.skipif(bool(GPUS), reason="a GPU is visible through NVML")
def test_without_an_nvml_gpu_nothing_gpu_related_is_reported() -> None:
    assert nvml.sample(GPUS) == {}
    assert nvml.inventory() == ([], None)


@pytest.mark.gpu
@needs_nvml_gpu
def test_samples_are_in_range_and_follow_device_memory(cupy) -> None:
    before = nvml.sample(GPUS)
    for index in range(len(GPUS)):
        assert 0.0 <= before[f"system/gpu{index}/utilization_percent"] <= 100.0
        assert before[f"system/gpu{index}/memory_used_bytes"] > 0
        assert 1.0 < before[f"system/gpu{index}/power_watts"] < 2_000.0
    device = cupy.cuda.Device().id
    block = cupy.ones(2 << 30, dtype=cupy.uint8)  # 2 GiB held on the current device
    cupy.cuda.Device().synchronize()
    after = nvml.sample(GPUS)
    grown = after[f"system/gpu{device}/memory_used_bytes"] - before[f"system/gpu{device}/memory_used_bytes"]
    assert grown >= 1.5 * (1 << 30), grown
    del block


@pytest.mark.gpu
@needs_nvml_gpu
def test_inventory_names_the_gpus_driver_and_cuda_version() -> None:
    gpus, cuda = nvml.inventory()
    assert len(gpus) == len(GPUS)
    assert cuda is not None and re.fullmatch(r"\d+\.\d+", cuda)
    for gpu in gpus:
        assert gpu["name"] and gpu["memory_mib"] > 1024 and re.fullmatch(r"\d+\.\d+(\.\d+)?", gpu["driver"])
    smi = shutil.which("nvidia-smi")
    if smi is not None:  # the same cards and driver as nvidia-smi lists
        listing = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
        rows = [[part.strip() for part in line.split(",")] for line in listing.strip().splitlines()]
        assert [[g["name"], g["driver"]] for g in gpus] == rows
