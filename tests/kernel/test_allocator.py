"""The allocator settings a service process applies at start (glibc): a 4 MiB block then comes
from the heap, where glibc's default would have mmapped it on its own; an environment variable
keeps its own value."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, json, sys
from cairn.kernel.allocator import tune_allocator

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = tune_allocator() if sys.argv[1] == "tuned" else {}
before = libc.mallinfo2().hblkhd
block = libc.malloc(4 << 20)
mmapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({"applied": applied, "mmapped": mmapped}))
"""


def _probe(mode: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.path.exists("/etc/alpine-release"),
                    reason="mallopt and mallinfo2 are glibc's")
def test_service_allocator_settings() -> None:
    plain = _probe("default")
    assert plain["mmapped"] >= 4 << 20  # glibc's default: a block this size is mmapped alone
    tuned = _probe("tuned")
    assert tuned["mmapped"] == 0  # from the heap, reused after free
    assert set(tuned["applied"]) == {"MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_"}
    kept = _probe("tuned", MALLOC_MMAP_THRESHOLD_="131072")
    assert "MALLOC_MMAP_THRESHOLD_" not in kept["applied"]
    assert kept["mmapped"] >= 4 << 20  # the environment's threshold holds
