// Segmented reductions on a CUDA GPU over CSR offsets: count, nan_count, sum, min, max, mean, var.
//
// Semantics follow the CPU contract (cairn/aggregate.hpp on the aggregation branch): NaN values
// are skipped and counted in nan_count; a segment with no non-NaN value has count 0, sum 0 and NaN
// for min, max, mean and var; var is M2 / (count - ddof), NaN when count - ddof <= 0. Accumulation
// is in float64 about a shift, the first finite value of the segment (short segments) or of the
// tile (long ones): the threads of a segment or tile add x - c and (x - c)^2 and sum these, and
// long segments' tiles are combined with Chan et al.'s pairwise update, in a fixed order (results
// are deterministic).
// They match a float64 two-pass reference to about 1e-12 relative (tests use rtol 1e-9).
//
// Strategy, by segment length: segments of up to kWarpSegmentMax values get a group of G lanes
// each (G = 1..32 lanes, a power of two chosen from the mean length of these segments, so that a
// warp serves 32/G segments and each lane has about 64 values); longer segments are cut into tiles
// of kTileValues values, one thread block per tile, and the tiles of each segment are merged by one
// warp. The short-segment kernel runs on a resident grid (as many blocks as fit on the GPU at once)
// that walks the segments. Work is ordered on `stream` (a cudaStream_t as an integer).
#pragma once
#include <cstdint>

namespace cairn::gpu {

constexpr int64_t kWarpSegmentMax = 2048;
constexpr int64_t kTileValues = 16384;

enum class ValueType { Float32, Float64 };

// Device pointers to arrays of nseg elements; a null pointer means "not wanted".
struct SegmentOutputs {
  int64_t* count = nullptr;
  int64_t* nan_count = nullptr;
  double* sum = nullptr;
  double* min = nullptr;
  double* max = nullptr;
  double* mean = nullptr;
  double* var = nullptr;
};

// Reduces device `values` (n elements of `type`) over device int64 `offsets` (nseg + 1 elements,
// non-decreasing, offsets[0] >= 0, offsets[nseg] <= n). Throws std::invalid_argument for bad
// offsets and std::runtime_error when CUDA is unavailable or fails. Returns when the outputs are
// written.
void segment_reduce_device(const void* values, ValueType type, int64_t n, const int64_t* offsets,
                           int64_t nseg, const SegmentOutputs& out, int ddof, uintptr_t stream);

// Tests only: the kernels' decomposition (warp lanes, tiles, merge order) run on the CPU over host
// pointers, so a machine without a GPU can check it. Always compiled. `vector_loads` (float32
// only) emulates the float4 short-segment kernel; long-segment tiles keep the scalar partition
// here (the float4 tiles are checked on the GPU at every alignment).
void segment_reduce_host_emulation(const void* values, ValueType type, int64_t n,
                                   const int64_t* offsets, int64_t nseg, const SegmentOutputs& out,
                                   int ddof, bool vector_loads = false);

}  // namespace cairn::gpu
