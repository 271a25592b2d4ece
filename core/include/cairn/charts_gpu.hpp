// The rest of the metrics kernels on a CUDA GPU: first/last per segment, per-segment histograms,
// min/max/last downsampling and LTTB. Semantics are the CPU contract of docs/core-aggregation.md;
// counts and index outputs are identical to the CPU's (LTTB's areas are computed with explicitly
// rounded float64 operations, never fused, in the CPU's order).
//
// All pointers are device pointers; inputs are validated by the caller (the Python face checks
// offsets, edges and x with CuPy before calling). Work is queued on `stream` (a cudaStream_t as an
// integer) and each function returns when its outputs are written. Errors are std::runtime_error.
#pragma once
#include <cstdint>

#include "cairn/aggregate_gpu.hpp"

namespace cairn::gpu {

enum class XType { Int64, Float64 };

// first[s] / last[s]: the first / last non-NaN value of segment s in index order, NaN if none.
// Either output may be null.
void segment_first_last_device(const void* values, ValueType type, const int64_t* offsets,
                               int64_t nseg, double* first, double* last, uintptr_t stream);

// counts: nseg x (nedges - 1) row-major; underflow, overflow, nan_count: nseg each. All outputs
// are zeroed here. Values outside [offsets[0], offsets[nseg]) are not counted.
void segment_histogram_device(const void* values, ValueType type, const int64_t* offsets,
                              int64_t nseg, const double* edges, int64_t nedges, int64_t* counts,
                              int64_t* underflow, int64_t* overflow, int64_t* nan_count,
                              uintptr_t stream);

// For each of the nb = n_out / 3 buckets: (index of min y, index of max y, last index), -1 where
// the bucket is empty or has no non-NaN y; `triples` holds 3 * nb entries. Needs n > n_out >= 3.
void downsample_minmax_device(const void* x, XType xtype, const void* y, ValueType ytype,
                              int64_t n, int64_t n_out, int64_t* triples, uintptr_t stream);

// The n_out indices LTTB keeps (ascending). Needs n > n_out >= 3.
void lttb_device(const void* x, XType xtype, const void* y, ValueType ytype, int64_t n,
                 int64_t n_out, int64_t* indices, uintptr_t stream);

// Tests only: the kernels' decomposition (tiles, shared-memory privatisation, bucket searches,
// per-thread picks and their merge) run on the CPU over host pointers with the same device/host
// code (cairn/charts_gpu_logic.hpp). Always compiled. y and values are float64 here.
void segment_histogram_host_emulation(const double* values, const int64_t* offsets, int64_t nseg,
                                      const double* edges, int64_t nedges, int64_t* counts,
                                      int64_t* underflow, int64_t* overflow, int64_t* nan_count);
void downsample_minmax_host_emulation(const void* x, XType xtype, const double* y, int64_t n,
                                      int64_t n_out, int64_t* triples);
void lttb_host_emulation(const void* x, XType xtype, const double* y, int64_t n, int64_t n_out,
                         int64_t* indices);

}  // namespace cairn::gpu
