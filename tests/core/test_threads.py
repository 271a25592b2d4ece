"""The core's one thread pool: its size comes from CAIRN_THREADS (else every hardware thread), read
once per process, and results do not depend on it. Each case runs in a fresh interpreter, since
the size is fixed at the first parallel call."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Hashes (in memory, one file, many files, a tree) and aggregations whose inputs are large enough
# to be split across threads; prints the pool size and every result.
_PROBE = r"""
import json, os, sys
import numpy as np
import cairn.core as core

root = sys.argv[1]
rng = np.random.default_rng(18)
data = rng.integers(0, 256, size=(9 << 20) + 12345, dtype=np.uint8).tobytes()
big = os.path.join(root, "big.bin")
if not os.path.exists(big):
    with open(big, "wb") as f:
        f.write(data)
    for i in range(40):
        with open(os.path.join(root, f"small{i}.bin"), "wb") as f:
            f.write(data[i * 1000 : i * 1000 + 777 * i])
values = rng.standard_normal(3_000_000)
offsets = np.array([0, 5, 1_000_000, 1_000_001, 2_500_000, 3_000_000])
reduced = core.segment_reduce(values, offsets=offsets, ops=["sum", "mean", "var", "min", "max"])
print(json.dumps({
    "threads": core.threads(),
    "blake3": core.blake3(data).hex(),
    "file": core.fingerprint_file(big),
    "tree": core.fingerprint_tree(root).encode().hex(),
    "reduce": {k: np.asarray(v).tolist() for k, v in sorted(reduced.items())},
    "quantiles": np.asarray(core.segment_quantiles(values, 0.9, offsets=offsets)).tolist(),
}))
"""


def _run(tmp: str, threads: str | None) -> dict:
    env = dict(os.environ)
    env.pop("CAIRN_THREADS", None)
    if threads is not None:
        env["CAIRN_THREADS"] = threads
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, tmp], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("threads-tree"))


def test_one_and_three_threads_give_identical_results(tree: str) -> None:
    one = _run(tree, "1")
    three = _run(tree, "3")
    assert one.pop("threads") == 1
    assert three.pop("threads") == 3
    assert one == three


def test_without_cairn_threads_the_pool_has_every_hardware_thread(tree: str) -> None:
    assert _run(tree, None)["threads"] == os.cpu_count()


@pytest.mark.parametrize("bad", ["0", "-2", "three", ""])
def test_a_cairn_threads_that_is_not_a_positive_count_is_ignored(tree: str, bad: str) -> None:
    # A typo must not serialise every call: it means "not set".
    out = subprocess.run(
        [sys.executable, "-c", "import cairn.core; print(cairn.core.threads())"],
        env={**os.environ, "CAIRN_THREADS": bad},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == os.cpu_count()
