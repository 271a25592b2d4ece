from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

def build_info() -> dict[str, Any]: ...

# BLAKE3. `data`/`leaf`/`tail`: any C-contiguous object with the buffer protocol.
# threads=0 means every hardware thread.
def blake3(data: Any, threads: int = 0) -> bytes: ...
def _blake3_with_level(data: Any, level: str, threads: int = 1) -> bytes: ...
def _blake3_levels() -> list[str]: ...
def blake3_file(path: str | bytes, threads: int = 0) -> tuple[bytes, int]: ...
def blake3_files(paths: Sequence[str | bytes], threads: int = 0) -> list[tuple[bytes, int]]: ...
def leaf_cvs(data: Any, leaf_size: int, threads: int = 0) -> list[bytes]: ...
def leaf_cv(leaf: Any, index: int, leaf_size: int, threads: int = 0) -> bytes: ...
def root_from_leaves(
    cvs: Sequence[bytes], tail: Any, leaf_size: int, threads: int = 0
) -> bytes: ...
# Aggregation (core/bindings/register_aggregate.cpp). Arrays must already be 1-D, C-contiguous and
# of the stated dtypes (values: float32/float64; offsets: int64; segment_ids: int32/int64;
# x: int64/float64); cairn.core.aggregate prepares them.
def segment_reduce(
    values: np.ndarray,
    offsets: np.ndarray | None,
    segment_ids: np.ndarray | None,
    num_segments: int,
    ops: list[str],
    ddof: int,
    threads: int,
) -> dict[str, np.ndarray]: ...
def segment_quantiles(
    values: np.ndarray,
    offsets: np.ndarray | None,
    segment_ids: np.ndarray | None,
    num_segments: int,
    q: npt.NDArray[np.float64],
    threads: int,
) -> npt.NDArray[np.float64]: ...
def downsample_minmax(x: np.ndarray, y: np.ndarray, n_out: int) -> npt.NDArray[np.int64]: ...
def lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> npt.NDArray[np.int64]: ...
def rolling(
    values: np.ndarray,
    offsets: np.ndarray | None,
    segment_ids: np.ndarray | None,
    num_segments: int,
    window: int,
    min_periods: int,
    ddof: int,
    ops: list[str],
    threads: int,
) -> dict[str, np.ndarray]: ...
def segment_histogram(
    values: np.ndarray,
    offsets: np.ndarray | None,
    segment_ids: np.ndarray | None,
    num_segments: int,
    edges: npt.NDArray[np.float64],
    threads: int,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]: ...
