// Numeric column statistics for profiles on a CUDA GPU: the contract of cairn/profile.hpp for
// float32/float64 columns held in device memory (no validity bitmap: NaN and +-inf are missing).
// Counts, sketch buckets, histograms, min and max equal the CPU's exactly; mean and m2 agree within
// 1e-9 relative (tiles of 4096 values by a corrected two-pass, merged by Chan's update in row
// order: deterministic, but a different summation order from the CPU's).
//
// Layout: a block of kThreads threads walks kTilesPerBlock tiles of one column; each thread keeps
// kPerThread values of a tile in registers, counts their sketch buckets and histogram bins in
// shared memory (global atomics when the counters do not fit), and the block reduces the tile's
// moments by a tree in shared memory. The blocks' moments are merged on the host, in row order.
// cairn/profile_gpu_logic.hpp holds the code the kernel and the host emulation share.
#pragma once
#include <cstdint>
#include <vector>

#include "cairn/profile.hpp"
#include "cairn/profile_gpu_logic.hpp"

namespace cairn::gpu::prof {

struct DeviceColumn {
  const void* data = nullptr;  // `length` contiguous values (device memory for the kernel)
  bool float32 = false;        // else float64
  int64_t length = 0;
  const double* edges = nullptr;  // sorted, not NaN (validated by the caller); same memory as data
  int64_t nedges = 0;
  bool has_edges = false;
};

// Statistics of device-resident columns, queued on `stream` (a cudaStream_t as an integer);
// returns when done. `table` holds host memory (copied to the device here). Throws
// std::runtime_error when CUDA is unavailable or fails.
std::vector<NumericStats> numeric_stats_device(const std::vector<DeviceColumn>& columns,
                                               const SketchTable& table, uintptr_t stream);

// Tests only: the kernel's decomposition and arithmetic run on the CPU over host pointers.
std::vector<NumericStats> numeric_stats_host_emulation(const std::vector<DeviceColumn>& columns,
                                                       const SketchTable& table);

// Benchmark helper: mean seconds of `repeats` runs of numeric_stats_device (CUDA events, after a
// warm-up run), so that a figure excludes Python and the host's result assembly.
double numeric_stats_device_seconds(const std::vector<DeviceColumn>& columns,
                                    const SketchTable& table, int repeats);

}  // namespace cairn::gpu::prof
