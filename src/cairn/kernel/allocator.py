"""Allocator settings for service processes (glibc only; elsewhere nothing changes).

A service handles request bodies and answers of a few hundred KiB to a few MiB. With glibc's
defaults, blocks above a moving threshold (128 KiB at first) are mmapped and unmapped one by one,
and free memory at the top of each heap is handed back to the kernel as soon as it passes its
threshold, so the next body of the same size faults in fresh zeroed pages again. On the benchmark
VM that was a third of the artifact service's CPU time for a 1 MiB upload (benchmarks/README.md).
These settings keep blocks up to ``MMAP_THRESHOLD`` in the heaps and let each heap keep up to
``TRIM_THRESHOLD`` free before it shrinks: memory is reused, at the cost of a higher resting RSS
(bounded by the thresholds per heap). A ``MALLOC_*_`` variable set in the environment wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
TRIM_THRESHOLD = 64 << 20
TOP_PAD = 16 << 20
MMAP_THRESHOLD = 16 << 20

SETTINGS = (
    ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ("MALLOC_TOP_PAD_", M_TOP_PAD, TOP_PAD),
    ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
)


def tune_allocator() -> dict[str, int]:
    """Apply the settings to this process; returns those applied (empty off glibc)."""
    if not sys.platform.startswith("linux"):
        return {}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return {}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = {}
    for env, param, value in SETTINGS:
        if env in os.environ:
            continue
        if mallopt(param, value) == 1:
            applied[env] = value
    return applied
