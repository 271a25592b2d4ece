// Numeric column statistics for profiles on the GPU (see cairn/profile_gpu.hpp). The per-value
// and per-tile code is cairn/profile_gpu_logic.hpp, shared with the host emulation that the tests
// run without a GPU; this file holds the launches, the shared-memory reductions and the copies.
#include <cuda_runtime.h>

#include <math_constants.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cairn/profile_gpu.hpp"
#include "cuda_check.cuh"

namespace cairn::gpu::prof {

namespace {

// Columns per launch: at most this many counter bytes on the device (the sketch alone is ~88 KB a
// column at the default alpha; a small alpha makes it much larger).
constexpr int64_t kBatchCounterBytes = int64_t{256} << 20;
constexpr int64_t kMaxBatchColumns = 8192;  // under gridDim.y's limit of 65,535

__device__ __forceinline__ double load(const DeviceColumn& col, int64_t i) {
  return col.float32 ? static_cast<double>(static_cast<const float*>(col.data)[i])
                     : static_cast<const double*>(col.data)[i];
}

__device__ __forceinline__ void count(unsigned int* local, int64_t* global, int64_t slot) {
  if (local != nullptr) atomicAdd(&local[slot], 1u);
  else atomicAdd(reinterpret_cast<unsigned long long*>(global + slot), 1ull);
}

// Block (x, y): rows [x * kBlockRows, ...) of column y of the batch. See profile_gpu_emulation.cpp
// for the same steps written for one thread at a time.
__global__ void __launch_bounds__(kThreads)
    profile_kernel(const DeviceColumn* __restrict__ cols, const int64_t* __restrict__ counter_at,
                   const int64_t* __restrict__ moments_at, SketchTable t, int64_t* counters,
                   Moments* moments, int privatize) {
  extern __shared__ unsigned int shared_counts[];
  __shared__ Pass1 s1[kThreads];
  __shared__ Pass2 s2[kThreads];
  const DeviceColumn col = cols[blockIdx.y];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kBlockRows;
  if (begin >= col.length) return;  // the whole block: this column is shorter
  const int64_t end = min(col.length, begin + kBlockRows);
  const int tid = threadIdx.x;
  const int64_t hist0 = sketch_slots(t);
  const int64_t nslots = hist0 + (col.has_edges ? col.nedges + 1 : 0);
  int64_t* global = counters + counter_at[blockIdx.y];
  unsigned int* local = privatize ? shared_counts : nullptr;
  if (local != nullptr) {
    for (int64_t k = tid; k < nslots; k += kThreads) local[k] = 0;
    __syncthreads();
  }
  Moments acc = moments_empty();  // meaningful in thread 0
  for (int64_t t0 = begin; t0 < end; t0 += kTile) {
    double v[kPerThread];
    Pass1 a = pass1_empty();
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int64_t i = t0 + int64_t{j} * kThreads + tid;
      v[j] = i < end ? load(col, i) : CUDART_NAN;
    }
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      if (!(v[j] - v[j] == 0.0)) continue;  // NaN or +-inf (or past the end): missing
      pass1_add(a, v[j]);
      count(local, global, sketch_slot(t, v[j]));
      if (col.has_edges) count(local, global, hist0 + hist_bin(col.edges, col.nedges, v[j]));
    }
    s1[tid] = a;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
      if (tid < s) pass1_combine(s1[tid], s1[tid + s]);
      __syncthreads();
    }
    const Pass1 total = s1[0];
    __syncthreads();  // s1 is rewritten by the next tile only after every thread has read it
    if (total.count == 0) continue;
    const double mean = div_rn(total.sum, static_cast<double>(total.count));
    Pass2 b{0.0, 0.0};
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      if (v[j] - v[j] == 0.0) pass2_add(b, v[j], mean);
    }
    s2[tid] = b;
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
      if (tid < s) pass2_combine(s2[tid], s2[tid + s]);
      __syncthreads();
    }
    if (tid == 0) merge(acc, tile_moments(total, mean, s2[0]));
    __syncthreads();
  }
  if (tid == 0) moments[moments_at[blockIdx.y] + blockIdx.x] = acc;
  if (local != nullptr) {
    __syncthreads();
    for (int64_t k = tid; k < nslots; k += kThreads) {
      const unsigned int c = local[k];
      if (c != 0) atomicAdd(reinterpret_cast<unsigned long long*>(global + k), static_cast<unsigned long long>(c));
    }
  }
}

int64_t blocks_of(const DeviceColumn& c) { return (c.length + kBlockRows - 1) / kBlockRows; }
int64_t slots_of(const DeviceColumn& c, const SketchTable& t) {
  return sketch_slots(t) + (c.has_edges ? c.nedges + 1 : 0);
}

// Device and pinned host memory, freed on scope exit (also when a CUDA call throws).
template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(int64_t n) {
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&p), static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T)),
               "allocating profile buffers");
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};
template <class T>
struct PinnedBuffer {
  T* p = nullptr;
  explicit PinnedBuffer(int64_t n) {
    check_cuda(cudaMallocHost(reinterpret_cast<void**>(&p), static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T)),
               "allocating pinned profile buffers");
  }
  ~PinnedBuffer() { cudaFreeHost(p); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
};

// One launch over columns [first, last); fills out[first..last) unless `seconds` is given, in
// which case only the kernel is timed (`repeats` runs after a warm-up) and *seconds set.
void run_batch(const std::vector<DeviceColumn>& columns, size_t first, size_t last,
               const SketchTable& device_table, cudaStream_t stream,
               std::vector<NumericStats>* out, int repeats, double* seconds) {
  const size_t n = last - first;
  std::vector<int64_t> counter_at(n), moments_at(n);
  int64_t nslots = 0, nmoments = 0, max_blocks = 0, max_slots = 0;
  for (size_t c = 0; c < n; ++c) {
    const DeviceColumn& col = columns[first + c];
    counter_at[c] = nslots;
    moments_at[c] = nmoments;
    nslots += slots_of(col, device_table);
    nmoments += blocks_of(col);
    max_blocks = std::max(max_blocks, blocks_of(col));
    max_slots = std::max(max_slots, slots_of(col, device_table));
  }
  DeviceBuffer<DeviceColumn> d_cols(static_cast<int64_t>(n));
  DeviceBuffer<int64_t> d_index(2 * static_cast<int64_t>(n));
  DeviceBuffer<int64_t> d_counters(nslots);
  DeviceBuffer<Moments> d_moments(nmoments);
  check_cuda(cudaMemcpyAsync(d_cols.p, columns.data() + first, n * sizeof(DeviceColumn),
                             cudaMemcpyHostToDevice, stream), "copying column descriptors");
  check_cuda(cudaMemcpyAsync(d_index.p, counter_at.data(), n * 8, cudaMemcpyHostToDevice, stream),
             "copying counter offsets");
  check_cuda(cudaMemcpyAsync(d_index.p + n, moments_at.data(), n * 8, cudaMemcpyHostToDevice, stream),
             "copying moment offsets");
  const int privatize = max_slots <= kSharedSlots ? 1 : 0;
  const size_t smem = privatize ? static_cast<size_t>(max_slots) * sizeof(unsigned int) : 0;
  check_cuda(cudaFuncSetAttribute(profile_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)), "sizing shared memory");
  const dim3 grid(static_cast<unsigned>(std::max<int64_t>(max_blocks, 1)), static_cast<unsigned>(n));
  const auto launch = [&] {
    check_cuda(cudaMemsetAsync(d_counters.p, 0, static_cast<size_t>(nslots) * 8, stream), "zeroing counters");
    if (max_blocks > 0) {
      profile_kernel<<<grid, kThreads, smem, stream>>>(d_cols.p, d_index.p, d_index.p + n,
                                                        device_table, d_counters.p, d_moments.p, privatize);
    }
    check_cuda(cudaGetLastError(), "launching the profile kernel");
  };
  if (seconds != nullptr) {
    launch();  // warm-up
    cudaEvent_t start, stop;
    check_cuda(cudaEventCreate(&start), "creating events");
    check_cuda(cudaEventCreate(&stop), "creating events");
    check_cuda(cudaEventRecord(start, stream), "recording an event");
    for (int r = 0; r < repeats; ++r) launch();
    check_cuda(cudaEventRecord(stop, stream), "recording an event");
    check_cuda(cudaEventSynchronize(stop), "profiling on the GPU");
    float ms = 0.0f;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "reading the events");
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    *seconds += ms / 1e3 / std::max(repeats, 1);
    return;
  }
  launch();
  PinnedBuffer<int64_t> h_counters(nslots);
  std::vector<Moments> h_moments(static_cast<size_t>(nmoments));
  check_cuda(cudaMemcpyAsync(h_counters.p, d_counters.p, static_cast<size_t>(nslots) * 8,
                             cudaMemcpyDeviceToHost, stream), "copying counters back");
  check_cuda(cudaMemcpyAsync(h_moments.data(), d_moments.p, static_cast<size_t>(nmoments) * sizeof(Moments),
                             cudaMemcpyDeviceToHost, stream), "copying moments back");
  check_cuda(cudaStreamSynchronize(stream), "profiling on the GPU");
  for (size_t c = 0; c < n; ++c) {
    const DeviceColumn& col = columns[first + c];
    (*out)[first + c] = finish_column(h_moments.data() + moments_at[c], blocks_of(col),
                                      h_counters.p + counter_at[c], device_table, col.nedges,
                                      col.has_edges, col.length);
  }
}

// Runs every batch; the boundary table goes to the device once.
void run(const std::vector<DeviceColumn>& columns, const SketchTable& table, uintptr_t stream_id,
         std::vector<NumericStats>* out, int repeats, double* seconds) {
  require_gpu();
  const cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_id);
  const int64_t nbounds = int64_t{table.max_index} - table.min_index + 2;
  DeviceBuffer<double> d_bounds(nbounds);
  check_cuda(cudaMemcpyAsync(d_bounds.p, table.bounds, static_cast<size_t>(nbounds) * 8,
                             cudaMemcpyHostToDevice, stream), "copying the sketch table");
  SketchTable device_table = table;
  device_table.bounds = d_bounds.p;
  size_t first = 0;
  while (first < columns.size()) {
    size_t last = first;
    int64_t bytes = 0;
    while (last < columns.size() && static_cast<int64_t>(last - first) < kMaxBatchColumns &&
           (last == first || bytes + slots_of(columns[last], table) * 8 <= kBatchCounterBytes)) {
      bytes += slots_of(columns[last], table) * 8;
      ++last;
    }
    run_batch(columns, first, last, device_table, stream, out, repeats, seconds);
    first = last;
  }
  check_cuda(cudaStreamSynchronize(stream), "profiling on the GPU");
}

}  // namespace

std::vector<NumericStats> numeric_stats_device(const std::vector<DeviceColumn>& columns,
                                               const SketchTable& table, uintptr_t stream) {
  std::vector<NumericStats> out(columns.size());
  run(columns, table, stream, &out, 0, nullptr);
  return out;
}

double numeric_stats_device_seconds(const std::vector<DeviceColumn>& columns,
                                    const SketchTable& table, int repeats) {
  double seconds = 0.0;
  run(columns, table, 0, nullptr, repeats, &seconds);
  return seconds;
}

}  // namespace cairn::gpu::prof
