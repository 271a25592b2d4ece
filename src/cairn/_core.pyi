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
def threads() -> int: ...
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
# Profiles (core/bindings/register_profile.cpp). columns: per column (type name, pieces), a piece
# being (data buffer or None, validity bitmap buffer or None, offset in elements, length);
# cairn.core.profile prepares them. Returns per column (count, missing, min, max, mean, m2, zero,
# pos_offset, pos, neg_offset, neg, hist or None).
def profile_numeric(
    columns: list[tuple[str, list[tuple[Any, Any, int, int]]]],
    edges: list[npt.NDArray[np.float64] | None],
    alpha: float,
    threads: int,
) -> list[
    tuple[
        int, int, float, float, float, float, int,
        int, npt.NDArray[np.int64], int, npt.NDArray[np.int64], npt.NDArray[np.int64] | None,
    ]
]: ...
def profile_sketch_layout(alpha: float) -> tuple[float, int, int]: ...
# The GPU path (cairn.core.profile_gpu): per column (device data pointer, "float32"|"float64",
# length, device edges pointer or 0, nedges or -1 for no histogram); the same tuples back.
def profile_numeric_cuda(
    columns: list[tuple[int, str, int, int, int]], alpha: float, stream: int = 0
) -> list[tuple[Any, ...]]: ...
def profile_numeric_cuda_seconds(
    columns: list[tuple[int, str, int, int, int]], alpha: float, repeats: int = 3
) -> float: ...
def _profile_numeric_gpu_host_emulation(
    columns: list[npt.NDArray[Any]], edges: list[npt.NDArray[np.float64] | None], alpha: float
) -> list[tuple[Any, ...]]: ...
def blake3_cuda_device(ptr: int, nbytes: int, stream: int = 0) -> bytes: ...
def blake3_cuda_host(buffer: Any) -> bytes: ...
def blake3_cuda_file(path: str | bytes) -> bytes: ...
def blake3_cuda_device_seconds(ptr: int, nbytes: int, repeats: int = 5) -> float: ...
def _blake3_gpu_host_emulation(buffer: Any, block_log2_chunks: int = 0) -> bytes: ...
def segment_reduce_cuda(
    values: int, dtype: str, n: int, offsets: int, nseg: int,
    outputs: dict[str, int | None], ddof: int = 0, stream: int = 0,
) -> None: ...
def _segment_reduce_gpu_host_emulation(
    values: Any, offsets: Any, ddof: int = 0, vector_loads: bool = False
) -> dict[str, Any]: ...
def segment_first_last_cuda(
    values: int, dtype: str, offsets: int, nseg: int, first: int, last: int, stream: int = 0
) -> None: ...
def segment_histogram_cuda(
    values: int, dtype: str, offsets: int, nseg: int, edges: int, nedges: int,
    counts: int, underflow: int, overflow: int, nan_count: int, stream: int = 0,
) -> None: ...
def downsample_minmax_cuda(
    x: int, xdtype: str, y: int, ydtype: str, n: int, n_out: int, triples: int, stream: int = 0
) -> None: ...
def lttb_cuda(
    x: int, xdtype: str, y: int, ydtype: str, n: int, n_out: int, indices: int, stream: int = 0
) -> None: ...
def _segment_histogram_gpu_host_emulation(
    values: Any, offsets: Any, edges: Any
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]: ...
def _downsample_minmax_gpu_host_emulation(x: Any, y: Any, n_out: int) -> npt.NDArray[np.int64]: ...
def _lttb_gpu_host_emulation(x: Any, y: Any, n_out: int) -> npt.NDArray[np.int64]: ...
