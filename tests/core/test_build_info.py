"""The extension always imports and says whether a GPU is usable, and why not."""

from __future__ import annotations

import cairn.core


def test_build_info_reports_the_build() -> None:
    info = cairn.core.build_info()
    assert info["version"] == "0.1.0"
    assert info["simd"] in {"portable", "sse4.1", "avx2", "avx512"}
    assert isinstance(info["cuda_compiled"], bool)
    if info["gpu_usable"]:
        assert info["gpu_count"] >= 1 and info["gpu_name"]
    else:
        assert info["gpu_reason"], "a build without a usable GPU says why"
