// Segmented reductions on the GPU (see cairn/aggregate_gpu.hpp for the contract).
//
// 1. plan_kernel: per segment, validates its offsets and counts its tiles (0 for a segment short
//    enough for one warp); an exclusive scan (CUB) gives each long segment its first tile.
// 2. warp_kernel: one warp per short segment, writes its results directly.
// 3. tile_kernel: one block per tile of a long segment, writes a partial state.
// 4. merge_kernel: one warp per long segment merges its tiles' states in order and writes results.
#include <cuda_runtime.h>

#include <math_constants.h>

#include <cmath>
#include <cub/device/device_scan.cuh>
#include <stdexcept>
#include <string>

#include "cairn/aggregate_gpu.hpp"
#include "cairn/segments_gpu_state.hpp"
#include "cuda_check.cuh"

namespace cairn::gpu {

namespace {

using namespace cairn::gpu::segments;

__device__ __forceinline__ State shfl_xor(const State& s, int mask) {
  State r;
  r.n = __shfl_xor_sync(0xffffffffu, s.n, mask);
  r.nan = __shfl_xor_sync(0xffffffffu, s.nan, mask);
  r.sum = __shfl_xor_sync(0xffffffffu, s.sum, mask);
  r.mean = __shfl_xor_sync(0xffffffffu, s.mean, mask);
  r.m2 = __shfl_xor_sync(0xffffffffu, s.m2, mask);
  r.min = __shfl_xor_sync(0xffffffffu, s.min, mask);
  r.max = __shfl_xor_sync(0xffffffffu, s.max, mask);
  return r;
}

// Merges the 32 lanes' states; every lane gets the result. Lower lanes' values come first.
__device__ __forceinline__ State warp_merge(State s) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int mask = 1; mask < 32; mask <<= 1) {
    const State other = shfl_xor(s, mask);
    s = (lane & mask) ? merge(other, s) : merge(s, other);
  }
  return s;
}

template <class T>
__device__ __forceinline__ double load(const T* p) {
  return static_cast<double>(__ldg(p));
}

// Per segment: 0 tiles if it is short (the warp kernel takes it), else its tile count. Flags bad
// offsets in *error (1: decreasing, 2: out of [0, n]).
__global__ void plan_kernel(const int64_t* __restrict__ offsets, int64_t nseg, int64_t n,
                            int64_t* __restrict__ tiles, int* __restrict__ error) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= nseg) return;
  const int64_t begin = offsets[s], end = offsets[s + 1];
  if (begin < 0 || end > n) atomicOr(error, 2);
  if (end < begin) atomicOr(error, 1);
  const int64_t len = end - begin;
  tiles[s] = tiles_for(len);
}

// One warp per segment; long segments are skipped (tile_kernel and merge_kernel take them).
template <class T>
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    warp_kernel(const T* __restrict__ values, const int64_t* __restrict__ offsets, int64_t nseg,
                int ddof, SegmentOutputs out) {
  const int64_t seg = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (seg >= nseg) return;
  const int lane = threadIdx.x & 31;
  const int64_t begin = offsets[seg], end = offsets[seg + 1];
  if (end - begin > kWarpSegmentMax) return;
  Accumulator acc;
  int64_t i = begin + lane;
  for (; i + 96 < end; i += 128) {  // four independent loads in flight
    const double a = load(values + i), b = load(values + i + 32), c = load(values + i + 64),
                 d = load(values + i + 96);
    acc.add(a);
    acc.add(b);
    acc.add(c);
    acc.add(d);
  }
  for (; i < end; i += 32) acc.add(load(values + i));
  const State s = warp_merge(acc.state());
  if (lane == 0) write_results(s, seg, ddof, out);
}

// Finds the segment that owns `tile`: the last s with first_tile[s] <= tile and tiles[s] > 0.
__device__ int64_t owner_of(const int64_t* first_tile, int64_t nseg, int64_t tile) {
  int64_t lo = 0, hi = nseg - 1;  // first_tile is non-decreasing; answer is the last s with <=
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (first_tile[mid] <= tile) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// One block per tile of a long segment: the partial state of kTileValues values (fewer at its end).
template <class T>
__global__ void __launch_bounds__(kTileThreads)
    tile_kernel(const T* __restrict__ values, const int64_t* __restrict__ offsets,
                const int64_t* __restrict__ first_tile, int64_t nseg, State* __restrict__ partial) {
  __shared__ State warp_states[kTileThreads / 32];
  __shared__ int64_t range[2];
  const int64_t tile = blockIdx.x;
  if (threadIdx.x == 0) {
    const int64_t seg = owner_of(first_tile, nseg, tile);
    const int64_t begin = offsets[seg] + (tile - first_tile[seg]) * kTileValues;
    const int64_t end = offsets[seg + 1];
    range[0] = begin;
    range[1] = end - begin < kTileValues ? end : begin + kTileValues;
  }
  __syncthreads();
  const int64_t begin = range[0], end = range[1];
  Accumulator acc;
  int64_t i = begin + threadIdx.x;
  constexpr int kStride = kTileThreads;
  for (; i + 7 * kStride < end; i += 8 * kStride) {  // eight independent loads in flight
    double x[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) x[k] = load(values + i + k * kStride);
#pragma unroll
    for (int k = 0; k < 8; ++k) acc.add(x[k]);
  }
  for (; i < end; i += kStride) acc.add(load(values + i));
  // Thread order within the tile does not follow value order; any fixed order merges exactly the
  // same values, so results are deterministic.
  const State s = warp_merge(acc.state());
  if ((threadIdx.x & 31) == 0) warp_states[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x < 32) {
    State t = threadIdx.x < kTileThreads / 32 ? warp_states[threadIdx.x] : empty_state();
    t = warp_merge(t);
    if (threadIdx.x == 0) partial[tile] = t;
  }
}

// One warp per long segment: merges its tiles' partial states and writes the results.
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    merge_kernel(const int64_t* __restrict__ tiles, const int64_t* __restrict__ first_tile,
                 int64_t nseg, const State* __restrict__ partial, int ddof, SegmentOutputs out) {
  const int64_t seg = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (seg >= nseg) return;
  const int64_t count = tiles[seg];
  if (count == 0) return;
  const int lane = threadIdx.x & 31;
  const int64_t first = first_tile[seg];
  // Lane l merges tiles l*per .. (l+1)*per - 1 in order, so lanes hold consecutive runs.
  const int64_t per = (count + 31) / 32;
  State s = empty_state();
  for (int64_t k = lane * per; k < count && k < (lane + 1) * per; ++k) s = merge(s, partial[first + k]);
  s = warp_merge(s);
  if (lane == 0) write_results(s, seg, ddof, out);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T>
void run(const T* values, int64_t n, const int64_t* offsets, int64_t nseg, const SegmentOutputs& out,
         int ddof, cudaStream_t stream) {
  // Scratch: tiles[nseg], first_tile[nseg], error flag + total, CUB temp.
  size_t cub_bytes = 0;
  check_cuda(cub::DeviceScan::ExclusiveSum(nullptr, cub_bytes, static_cast<int64_t*>(nullptr),
                                           static_cast<int64_t*>(nullptr), nseg, stream),
             "sizing the segment scan");
  const size_t index_bytes = static_cast<size_t>(nseg) * sizeof(int64_t);
  const size_t cub_offset = (2 * index_bytes + 32 + 255) / 256 * 256;  // CUB wants 256-byte alignment
  const size_t scratch_bytes = cub_offset + cub_bytes;
  char* scratch = nullptr;
  check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&scratch), scratch_bytes, stream),
             "allocating segment scratch on the GPU");
  State* partial = nullptr;
  auto release = [&] {
    if (partial) cudaFreeAsync(partial, stream);
    cudaFreeAsync(scratch, stream);
  };
  try {
    auto* tiles = reinterpret_cast<int64_t*>(scratch);
    auto* first_tile = tiles + nseg;
    auto* flags = reinterpret_cast<int64_t*>(scratch + 2 * index_bytes);  // [error, total]
    void* cub_temp = scratch + cub_offset;
    check_cuda(cudaMemsetAsync(flags, 0, 16, stream), "cudaMemsetAsync");
    const unsigned plan_blocks = static_cast<unsigned>(ceil_div(nseg, 256));
    plan_kernel<<<plan_blocks, 256, 0, stream>>>(offsets, nseg, n, tiles,
                                                 reinterpret_cast<int*>(flags));
    check_cuda(cudaGetLastError(), "launching the segment plan kernel");
    check_cuda(cub::DeviceScan::ExclusiveSum(cub_temp, cub_bytes, tiles, first_tile, nseg, stream),
               "scanning segment tiles");
    // total tiles = first_tile[nseg - 1] + tiles[nseg - 1], read back with the error flag.
    int64_t host[3] = {0, 0, 0};
    check_cuda(cudaMemcpyAsync(&host[0], flags, 8, cudaMemcpyDeviceToHost, stream), "copy");
    check_cuda(cudaMemcpyAsync(&host[1], first_tile + nseg - 1, 8, cudaMemcpyDeviceToHost, stream),
               "copy");
    check_cuda(cudaMemcpyAsync(&host[2], tiles + nseg - 1, 8, cudaMemcpyDeviceToHost, stream),
               "copy");
    check_cuda(cudaStreamSynchronize(stream), "planning segments");
    const int error = static_cast<int>(host[0]);
    if (error & 2) throw std::invalid_argument("segment offsets must lie in [0, len(values)]");
    if (error & 1) throw std::invalid_argument("segment offsets must be non-decreasing");
    const int64_t total_tiles = host[1] + host[2];
    if (total_tiles >= (int64_t{1} << 31)) throw std::invalid_argument("too many values for one call");

    const unsigned seg_blocks = static_cast<unsigned>(ceil_div(nseg, kWarpsPerBlock));
    warp_kernel<T><<<seg_blocks, 32 * kWarpsPerBlock, 0, stream>>>(values, offsets, nseg, ddof, out);
    check_cuda(cudaGetLastError(), "launching the segment warp kernel");
    if (total_tiles > 0) {
      check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&partial),
                                 static_cast<size_t>(total_tiles) * sizeof(State), stream),
                 "allocating tile states on the GPU");
      tile_kernel<T><<<static_cast<unsigned>(total_tiles), kTileThreads, 0, stream>>>(
          values, offsets, first_tile, nseg, partial);
      check_cuda(cudaGetLastError(), "launching the segment tile kernel");
      merge_kernel<<<seg_blocks, 32 * kWarpsPerBlock, 0, stream>>>(tiles, first_tile, nseg, partial,
                                                                   ddof, out);
      check_cuda(cudaGetLastError(), "launching the segment merge kernel");
    }
    check_cuda(cudaStreamSynchronize(stream), "running the segment kernels");
  } catch (...) {
    release();
    throw;
  }
  release();
}

}  // namespace

void segment_reduce_device(const void* values, ValueType type, int64_t n, const int64_t* offsets,
                           int64_t nseg, const SegmentOutputs& out, int ddof, uintptr_t stream) {
  require_gpu();
  if (n < 0 || nseg < 0) throw std::invalid_argument("n and nseg must be >= 0");
  if (ddof < 0) throw std::invalid_argument("ddof must be >= 0");
  if (nseg == 0) return;
  if (nseg >= (int64_t{1} << 31) * kWarpsPerBlock) throw std::invalid_argument("too many segments");
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  if (type == ValueType::Float32) {
    run(static_cast<const float*>(values), n, offsets, nseg, out, ddof, s);
  } else {
    run(static_cast<const double*>(values), n, offsets, nseg, out, ddof, s);
  }
}

}  // namespace cairn::gpu
