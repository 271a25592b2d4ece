"""The extension always imports and says whether a GPU is usable, and why not."""

from __future__ import annotations

import pytest

import cairn.core
from cairn import _core

from gpu_marks import needs_gpu


def test_build_info_reports_the_build() -> None:
    info = cairn.core.build_info()
    assert info["version"] == "0.1.0"
    assert info["simd"] in {"portable", "sse4.1", "avx2", "avx512"}
    assert isinstance(info["cuda_compiled"], bool)
    if info["gpu_usable"]:
        assert info["gpu_count"] >= 1 and info["gpu_name"]
    else:
        assert info["gpu_reason"], "a build without a usable GPU says why"


def test_build_info_names_the_cuda_architectures() -> None:
    info = cairn.core.build_info()
    archs = info["cuda_architectures"]
    assert isinstance(archs, list)
    if info["cuda_compiled"]:
        assert archs, "a CUDA build says which architectures its kernels are for"
        assert all(isinstance(spec, str) and spec for spec in archs)
    else:
        assert archs == []


# CMAKE_CUDA_ARCHITECTURES, compute capability, and whether such a card can run the kernels.
_ARCH_CASES = [
    ("80-real,90", 8, 0, True),  # sm_80 machine code
    ("80-real,90", 8, 6, True),  # sm_80 code runs on later minors of major 8
    ("80-real,90", 8, 9, True),
    ("80-real,90", 9, 0, True),  # H100/H200: sm_90 machine code
    ("80-real,90", 10, 0, True),  # newer cards: compute_90 PTX compiled by the driver
    ("80-real,90", 12, 0, True),
    ("80-real,90", 7, 5, False),  # older than the oldest architecture
    ("80-real,90-real", 10, 0, False),  # no PTX: nothing for a newer major
    ("90", 8, 6, False),  # PTX does not run on older cards
    ("90a-real", 9, 0, True),  # arch-specific code: exactly that capability
    ("90a-real", 10, 0, False),
    ("75-virtual", 8, 0, True),
    ("native", 7, 0, True),  # cannot be judged from the spec: left to the launch
]


@pytest.mark.parametrize(("spec", "major", "minor", "usable"), _ARCH_CASES)
def test_a_card_is_usable_only_with_kernels_for_its_compute_capability(
    spec: str, major: int, minor: int, usable: bool
) -> None:
    reason = _core._cuda_arch_mismatch(spec, major, minor)
    if usable:
        assert reason == ""
    else:
        assert f"compute capability {major}.{minor}" in reason
        assert "rebuild with CMAKE_CUDA_ARCHITECTURES" in reason


def test_a_card_older_than_every_built_architecture_is_refused_clearly() -> None:
    reason = _core._cuda_arch_mismatch("80-real;90", 7, 0)
    assert "compute capability 7.0 has no kernels in this build" in reason
    assert "sm_80" in reason and "compute_90 PTX" in reason


@pytest.mark.gpu
@needs_gpu
def test_the_usable_gpu_has_kernels_for_its_compute_capability() -> None:
    info = cairn.core.build_info()
    major, minor = info["gpu_compute_capability"]
    assert _core._cuda_arch_mismatch(",".join(info["cuda_architectures"]), major, minor) == ""
