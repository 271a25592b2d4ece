// Segmented reductions on the GPU (see cairn/aggregate_gpu.hpp for the contract).
//
// 1. plan_kernel: validates the offsets and sums the short segments' lengths and the long ones'
//    tiles. One small read-back (errors, tile total, mean short length) picks the launches; only
//    when there are tiles do tiles_kernel and an exclusive scan (CUB) give each long segment its
//    first tile.
// 2. short_kernel<G>: G lanes per short segment (float32: float4 loads by default) add its values
//    about one shift (its first finite value) and sum their sums; results written directly. A
//    resident grid walks the segments, loading ahead.
// 3. owner_kernel + tile_kernel: one block per tile of a long segment adds the tile's values about
//    the tile's first finite value and writes a partial state.
// 4. merge_kernel: one warp per long segment merges its tiles' states in order and writes results.
#include <cuda_runtime.h>

#include <math_constants.h>

#include <cmath>
#include <cstdlib>
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

// Butterfly Chan merge of States over all 32 lanes (tile states of a long segment), lower lanes'
// values first; every lane gets the result.
__device__ __forceinline__ State warp_merge(State s) {
  const int lane = threadIdx.x & 31;
  for (int mask = 1; mask < 32; mask <<= 1) {
    const State other = shfl_xor(s, mask);
    s = (lane & mask) ? merge(other, s) : merge(s, other);
  }
  return s;
}

// Butterfly sum of Sums over groups of G lanes (a power of two); every lane of a group gets its
// group's sums. All 32 lanes must call it.
template <int G, class T>
__device__ __forceinline__ Sums<T> group_add(Sums<T> s) {
#pragma unroll
  for (int mask = 1; mask < G; mask <<= 1) {
    Sums<T> o;
    o.seen = __shfl_xor_sync(0xffffffffu, s.seen, mask);
    o.nan = __shfl_xor_sync(0xffffffffu, s.nan, mask);
    o.s1 = __shfl_xor_sync(0xffffffffu, s.s1, mask);
    o.s2 = __shfl_xor_sync(0xffffffffu, s.s2, mask);
    o.sum = __shfl_xor_sync(0xffffffffu, s.sum, mask);
    o.lo = __shfl_xor_sync(0xffffffffu, s.lo, mask);
    o.hi = __shfl_xor_sync(0xffffffffu, s.hi, mask);
    s = add(s, o);
  }
  return s;
}

template <class T>
__device__ __forceinline__ T load(const T* p) {
  return __ldg(p);
}

// The shift of a group's range [begin, end): its first finite value, or 0 when it has none.
// `first` is values[begin] (read by every lane with its first loads, so it costs no extra trip);
// only when it is NaN or infinite do the group's lanes look at the next values, G at a time.
// All 32 lanes must call it; `active` says whether this lane's group has a range.
template <int G, class T>
__device__ __forceinline__ T group_shift(const T* __restrict__ values, int64_t begin, int64_t end,
                                         T first, bool active) {
  const int lane = threadIdx.x & 31;
  const int leader = lane & ~(G - 1);
  bool need = active && begin < end && !finite(first);
  T c = need || !(active && begin < end) ? T(0) : first;
  for (int64_t k = begin; __any_sync(0xffffffffu, need); k += G) {
    const int64_t i = k + (lane - leader);
    const T x = need && i < end ? load(values + i) : T(0);
    const unsigned ballot = __ballot_sync(0xffffffffu, need && i < end && finite(x));
    const unsigned mine = G == 32 ? ballot : (ballot >> leader) & ((1u << G) - 1u);
    const T picked = __shfl_sync(0xffffffffu, x, mine ? leader + __ffs(static_cast<int>(mine)) - 1 : lane);
    if (need && mine) c = picked;
    if (mine || k + G >= end) need = false;
  }
  return c;
}

// Adds values [begin, end) taken every `stride`-th from `first`, in increasing index order, with
// `kBatch` independent loads in flight.
template <int kBatch, class T>
__device__ __forceinline__ void accumulate(Sums<T>& acc, const T* __restrict__ values, int64_t first,
                                           int64_t end, int64_t stride, T c, double cd) {
  for (int64_t base = first; base < end; base += kBatch * stride) {
    T x[kBatch];
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      const int64_t i = base + k * stride;
      x[k] = i < end ? load(values + i) : T(0);
    }
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      if (base + k * stride < end) acc.add(x[k], c, cd);
    }
  }
}

// float4 loads (float32): lane `sub` of `lanes` takes the values before the range's first 16-byte
// boundary sub, sub + lanes, ... (vector_head), then float4s q = sub, sub + lanes, ... of the
// aligned part, kBatch in flight, then the tail value by value. False (nothing added) when the
// pointer is not 4-byte aligned.
template <int kBatch>
__device__ __forceinline__ bool accumulate_vector(Sums<float>& acc, const float* __restrict__ values,
                                                  int64_t begin, int64_t end, int sub, int lanes,
                                                  float c, double cd) {
  const int64_t head = vector_head(reinterpret_cast<uintptr_t>(values + begin), end - begin);
  if (head < 0) return false;
  for (int64_t i = begin + sub; i < begin + head; i += lanes) acc.add(load(values + i), c, cd);
  const int64_t vbegin = begin + head;
  const int64_t nvec = (end - vbegin) / 4;
  const float4* __restrict__ v4 = reinterpret_cast<const float4*>(values + vbegin);
  for (int64_t q = sub; q < nvec; q += kBatch * lanes) {
    float4 x[kBatch];
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      const int64_t idx = q + static_cast<int64_t>(k) * lanes;
      x[k] = idx < nvec ? __ldg(v4 + idx) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      if (q + static_cast<int64_t>(k) * lanes < nvec) {
        acc.add(x[k].x, c, cd);
        acc.add(x[k].y, c, cd);
        acc.add(x[k].z, c, cd);
        acc.add(x[k].w, c, cd);
      }
    }
  }
  for (int64_t i = vbegin + nvec * 4 + sub; i < end; i += lanes) acc.add(load(values + i), c, cd);
  return true;
}

template <int kBatch, class T>
__device__ __forceinline__ bool accumulate_vector(Sums<T>&, const T* __restrict__, int64_t, int64_t,
                                                  int, int, T, double) {
  return false;  // float64 keeps the scalar path
}

// Sums the short segments' lengths and count into stats[0..1] (for the group size) and all tiles of
// long segments into stats[2] (so tiles_kernel and the scan run only when some segment is long),
// and flags bad offsets in *error (1: decreasing, 2: out of [0, n]). Writes nothing per segment.
__global__ void __launch_bounds__(256)
    plan_kernel(const int64_t* __restrict__ offsets, int64_t nseg, int64_t n,
                unsigned long long* __restrict__ stats,
                int* __restrict__ error) {
  __shared__ unsigned long long block_sums[2][8];
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  unsigned short_len = 0, is_short = 0;
  if (s < nseg) {
    const int64_t begin = offsets[s], end = offsets[s + 1];
    if (begin < 0 || end > n) atomicOr(error, 2);
    if (end < begin) atomicOr(error, 1);
    const int64_t len = end - begin;
    const int64_t t = tiles_for(len);
    if (t > 0) atomicAdd(stats + 2, static_cast<unsigned long long>(t));
    if (len >= 0 && len <= kWarpSegmentMax) {
      short_len = static_cast<unsigned>(len);
      is_short = 1;
    }
  }
  const unsigned warp_len = __reduce_add_sync(0xffffffffu, short_len);
  const unsigned warp_short = __reduce_add_sync(0xffffffffu, is_short);
  if ((threadIdx.x & 31) == 0) {
    block_sums[0][threadIdx.x >> 5] = warp_len;
    block_sums[1][threadIdx.x >> 5] = warp_short;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long a = 0, b = 0;
    for (int w = 0; w < 8; ++w) {
      a += block_sums[0][w];
      b += block_sums[1][w];
    }
    if (a) atomicAdd(stats, a);
    if (b) atomicAdd(stats + 1, b);
  }
}

// Per segment: its tile count (0 for a short one), only when some segment is long.
__global__ void __launch_bounds__(256)
    tiles_kernel(const int64_t* __restrict__ offsets, int64_t nseg, int64_t* __restrict__ tiles) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s < nseg) tiles[s] = tiles_for(offsets[s + 1] - offsets[s]);
}

// Groups of G lanes per short segment (32/G segments per warp, long segments skipped). The grid
// may be smaller than the segments (a resident grid, see short_grid): a warp then takes its next
// 32/G segments `stride` groups further on. Loads run ahead so that no trip to memory waits on
// another within an iteration: the offsets two segments ahead and the first value one segment
// ahead (the shift, see group_shift) are read while the current segment is reduced. The group's
// lanes add their values about that shift and sum their Sums. kVector: float32 float4 loads.
// kMinBlocks > 1 asks the compiler for that many resident blocks per multiprocessor; kBatch loads
// (float4s or values) are in flight per lane.
template <class T, int G, bool kVector, int kMinBlocks, int kBatch>
__global__ void __launch_bounds__(256, kMinBlocks)
    short_kernel(const T* __restrict__ values, const int64_t* __restrict__ offsets, int64_t nseg,
                 int ddof, SegmentOutputs out) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int sub = lane % G;
  const int leader = lane & ~(G - 1);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * (blockDim.x / G);
  int64_t seg = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / G;
  // Leader lanes: this segment's offsets and first value, the next segment's offsets.
  int64_t cur_begin = 0, cur_end = 0, next_begin = 0, next_end = 0;
  T cur_first = T(0);
  if (sub == 0 && seg < nseg) {
    cur_begin = offsets[seg];
    cur_end = offsets[seg + 1];
    if (cur_begin < cur_end) cur_first = load(values + cur_begin);
    if (seg + stride < nseg) {
      next_begin = offsets[seg + stride];
      next_end = offsets[seg + stride + 1];
    }
  }
  // Warp-uniform trip count: every lane runs while its warp's first segment is in range.
  for (int64_t first = seg - lane / G; first < nseg; first += stride, seg += stride) {
    const int64_t begin = __shfl_sync(0xffffffffu, cur_begin, leader);
    const int64_t end = __shfl_sync(0xffffffffu, cur_end, leader);
    const T head = __shfl_sync(0xffffffffu, cur_first, leader);
    T next_first = T(0);
    int64_t after_begin = 0, after_end = 0;
    if (sub == 0) {
      if (seg + stride < nseg && next_begin < next_end) next_first = load(values + next_begin);
      if (seg + 2 * stride < nseg) {
        after_begin = offsets[seg + 2 * stride];
        after_end = offsets[seg + 2 * stride + 1];
      }
    }
    const bool mine = seg < nseg && end - begin <= kWarpSegmentMax;
    const T c = group_shift<G>(values, begin, end, head, mine);
    const double cd = static_cast<double>(c);
    Sums<T> acc;
    if (mine) {
      if (!(kVector && accumulate_vector<kBatch>(acc, values, begin, end, sub, G, c, cd))) {
        accumulate<kBatch>(acc, values, begin + sub, end, G, c, cd);
      }
    }
    const Sums<T> total = group_add<G>(acc);
    if (mine && sub == 0) write_results(finish(total, cd), seg, ddof, out);
    cur_begin = next_begin;
    cur_end = next_end;
    cur_first = next_first;
    next_begin = after_begin;
    next_end = after_end;
  }
}

// One warp per long segment: each tile's owning segment, and its shift (the tile's first finite
// value, 0 when it has none; almost always its first value).
template <class T>
__global__ void __launch_bounds__(256)
    owner_kernel(const T* __restrict__ values, const int64_t* __restrict__ offsets,
                 const int64_t* __restrict__ tiles, const int64_t* __restrict__ first_tile,
                 int64_t nseg, int64_t* __restrict__ owner, T* __restrict__ shift) {
  const int64_t seg = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (seg >= nseg) return;
  const int64_t count = tiles[seg], first = first_tile[seg];
  const int64_t seg_begin = offsets[seg], seg_end = offsets[seg + 1];
  for (int64_t k = threadIdx.x & 31; k < count; k += 32) {
    owner[first + k] = seg;
    const int64_t begin = seg_begin + k * kTileValues;
    const int64_t end = seg_end - begin < kTileValues ? seg_end : begin + kTileValues;
    T c = T(0);
    for (int64_t i = begin; i < end; ++i) {
      const T x = load(values + i);
      if (finite(x)) {
        c = x;
        break;
      }
    }
    shift[first + k] = c;
  }
}

// One block per tile of a long segment: the State of kTileValues values (fewer at its end), all
// added about the tile's shift. float32 reads float4s by default (vector_loads), 4 in flight per
// thread.
template <class T>
__global__ void __launch_bounds__(kTileThreads)
    tile_kernel(const T* __restrict__ values, const int64_t* __restrict__ offsets,
                const int64_t* __restrict__ first_tile, const int64_t* __restrict__ owner,
                const T* __restrict__ shift, State* __restrict__ partial, bool vector_loads) {
  __shared__ Sums<T> warp_sums[kTileThreads / 32];
  const int64_t tile = blockIdx.x;
  const int64_t seg = owner[tile];
  const T c = shift[tile];
  const double cd = static_cast<double>(c);
  const int64_t begin = offsets[seg] + (tile - first_tile[seg]) * kTileValues;
  const int64_t seg_end = offsets[seg + 1];
  const int64_t end = seg_end - begin < kTileValues ? seg_end : begin + kTileValues;
  Sums<T> acc;
  if (!(vector_loads && accumulate_vector<4>(acc, values, begin, end, static_cast<int>(threadIdx.x),
                                             kTileThreads, c, cd))) {
    accumulate<8>(acc, values, begin + threadIdx.x, end, kTileThreads, c, cd);
  }
  const Sums<T> w = group_add<32>(acc);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = w;
  __syncthreads();
  if (threadIdx.x < 32) {
    Sums<T> t = threadIdx.x < kTileThreads / 32 ? warp_sums[threadIdx.x] : Sums<T>();
    t = group_add<32>(t);
    if (threadIdx.x == 0) partial[tile] = finish(t, cd);
  }
}

// One warp per long segment: merges its tiles' partial states (Chan) and writes the results.
__global__ void __launch_bounds__(256)
    merge_kernel(const int64_t* __restrict__ tiles, const int64_t* __restrict__ first_tile,
                 int64_t nseg, const State* __restrict__ partial, int ddof, SegmentOutputs out) {
  const int64_t seg = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (seg >= nseg) return;
  const int64_t count = tiles[seg];
  if (count == 0) return;
  const int lane = threadIdx.x & 31;
  const int64_t first = first_tile[seg];
  // Lane l merges tiles l*per .. (l+1)*per - 1 in order, so lanes hold consecutive runs.
  const int64_t per = (count + 31) / 32;
  State s = empty_state();
  for (int64_t k = lane * per; k < count && k < (lane + 1) * per; ++k) {
    s = merge(s, partial[first + k]);
  }
  s = warp_merge(s);
  if (lane == 0) write_results(s, seg, ddof, out);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Short-segment kernel choices, read per call so that a benchmark or test can compare them in one
// process: CAIRN_GPU_SEGMENT_GRID=full (one group per segment instead of a resident grid),
// CAIRN_GPU_SEGMENT_MAX_BLOCKS=k (a smaller grid, so tests reach the grid-stride loop),
// CAIRN_GPU_SEGMENT_SHORT_BATCH=4 (4 loads in flight per lane instead of 8),
// CAIRN_GPU_SEGMENT_SHORT_OCCUPANCY=0 (no register bound; by default the kernel is compiled for 3
// resident blocks per multiprocessor with 8 loads in flight, 4 with 4) and
// CAIRN_GPU_SEGMENT_VALUES_PER_LANE (about how many values each lane of a group adds; 64). The
// defaults were the fastest on an H200 (benchmarks/README.md).
struct ShortOptions {
  bool full_grid = false;
  bool bounded = true;
  bool batch8 = true;
  int64_t max_blocks = 0;
  int64_t per_lane = kShortValuesPerLane;
};

ShortOptions short_options() {
  ShortOptions o;
  const char* grid = std::getenv("CAIRN_GPU_SEGMENT_GRID");
  o.full_grid = grid != nullptr && std::string(grid) == "full";
  const char* cap = std::getenv("CAIRN_GPU_SEGMENT_MAX_BLOCKS");
  if (cap != nullptr) o.max_blocks = std::strtoll(cap, nullptr, 10);
  const char* occupancy = std::getenv("CAIRN_GPU_SEGMENT_SHORT_OCCUPANCY");
  o.bounded = !(occupancy != nullptr && std::string(occupancy) == "0");
  const char* batch = std::getenv("CAIRN_GPU_SEGMENT_SHORT_BATCH");
  o.batch8 = !(batch != nullptr && std::string(batch) == "4");
  const char* per_lane = std::getenv("CAIRN_GPU_SEGMENT_VALUES_PER_LANE");
  if (per_lane != nullptr && std::strtoll(per_lane, nullptr, 10) > 0) {
    o.per_lane = std::strtoll(per_lane, nullptr, 10);
  }
  return o;
}

// Blocks for a short kernel: one group per segment, or (default) no more than can be resident at
// once on this device.
template <class Kernel>
unsigned short_grid(Kernel kernel, int64_t nseg, int group, const ShortOptions& o) {
  int64_t blocks = ceil_div(nseg * group, 256);
  if (!o.full_grid) {
    int device = 0, sms = 0, per_sm = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
               "reading the GPU's multiprocessor count");
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 256, 0),
               "reading the segment kernel's occupancy");
    const int64_t resident = static_cast<int64_t>(sms) * (per_sm > 0 ? per_sm : 1);
    if (blocks > resident) blocks = resident;
  }
  if (o.max_blocks > 0 && blocks > o.max_blocks) blocks = o.max_blocks;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

template <class T, int G, bool kVector>
void launch_short(const T* values, const int64_t* offsets, int64_t nseg, int ddof,
                  const SegmentOutputs& out, cudaStream_t stream, const ShortOptions& o) {
  if (o.bounded && o.batch8) {
    auto kernel = short_kernel<T, G, kVector, 3, 8>;
    kernel<<<short_grid(kernel, nseg, G, o), 256, 0, stream>>>(values, offsets, nseg, ddof, out);
  } else if (o.batch8) {
    auto kernel = short_kernel<T, G, kVector, 1, 8>;
    kernel<<<short_grid(kernel, nseg, G, o), 256, 0, stream>>>(values, offsets, nseg, ddof, out);
  } else if (o.bounded) {
    auto kernel = short_kernel<T, G, kVector, 4, 4>;
    kernel<<<short_grid(kernel, nseg, G, o), 256, 0, stream>>>(values, offsets, nseg, ddof, out);
  } else {
    auto kernel = short_kernel<T, G, kVector, 1, 4>;
    kernel<<<short_grid(kernel, nseg, G, o), 256, 0, stream>>>(values, offsets, nseg, ddof, out);
  }
}

template <class T, bool kVector>
void launch_short(int group, const T* values, const int64_t* offsets, int64_t nseg, int ddof,
                  const SegmentOutputs& out, cudaStream_t stream, const ShortOptions& o) {
  switch (group) {
    case 1: launch_short<T, 1, kVector>(values, offsets, nseg, ddof, out, stream, o); break;
    case 2: launch_short<T, 2, kVector>(values, offsets, nseg, ddof, out, stream, o); break;
    case 4: launch_short<T, 4, kVector>(values, offsets, nseg, ddof, out, stream, o); break;
    case 8: launch_short<T, 8, kVector>(values, offsets, nseg, ddof, out, stream, o); break;
    case 16: launch_short<T, 16, kVector>(values, offsets, nseg, ddof, out, stream, o); break;
    default: launch_short<T, 32, kVector>(values, offsets, nseg, ddof, out, stream, o); break;
  }
}

template <class T>
void launch_groups(int group, const T* values, const int64_t* offsets, int64_t nseg, int ddof,
                   const SegmentOutputs& out, cudaStream_t stream, bool /*vector_loads*/,
                   const ShortOptions& o) {
  launch_short<T, false>(group, values, offsets, nseg, ddof, out, stream, o);
}

void launch_groups(int group, const float* values, const int64_t* offsets, int64_t nseg, int ddof,
                   const SegmentOutputs& out, cudaStream_t stream, bool vector_loads,
                   const ShortOptions& o) {
  if (vector_loads) {
    launch_short<float, true>(group, values, offsets, nseg, ddof, out, stream, o);
  } else {
    launch_short<float, false>(group, values, offsets, nseg, ddof, out, stream, o);
  }
}

// The float4 tile path is the default for float32 (measured faster on an H200 with identical
// count/min/max); CAIRN_GPU_SEGMENT_VECTOR_LOADS=0 turns it off (read per call so that a benchmark
// can compare both paths in one process).
bool vector_loads_requested() {
  const char* flag = std::getenv("CAIRN_GPU_SEGMENT_VECTOR_LOADS");
  return !(flag != nullptr && flag[0] == '0');
}

template <class T>
void run(const T* values, int64_t n, const int64_t* offsets, int64_t nseg, const SegmentOutputs& out,
         int ddof, cudaStream_t stream) {
  const bool vector_loads = vector_loads_requested();
  // Scratch: tiles[nseg], first_tile[nseg], {error, short values, short count, tiles}, CUB temp.
  size_t cub_bytes = 0;
  check_cuda(cub::DeviceScan::ExclusiveSum(nullptr, cub_bytes, static_cast<int64_t*>(nullptr),
                                           static_cast<int64_t*>(nullptr), nseg, stream),
             "sizing the segment scan");
  const size_t index_bytes = static_cast<size_t>(nseg) * sizeof(int64_t);
  const size_t cub_offset = (2 * index_bytes + 32 + 255) / 256 * 256;  // CUB wants 256-byte alignment
  char* scratch = nullptr;
  check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&scratch), cub_offset + cub_bytes, stream),
             "allocating segment scratch on the GPU");
  char* tile_scratch = nullptr;  // owner[total], partial[total]
  auto release = [&] {
    if (tile_scratch) cudaFreeAsync(tile_scratch, stream);
    cudaFreeAsync(scratch, stream);
  };
  try {
    auto* tiles = reinterpret_cast<int64_t*>(scratch);
    auto* first_tile = tiles + nseg;
    auto* flags = reinterpret_cast<unsigned long long*>(scratch + 2 * index_bytes);
    void* cub_temp = scratch + cub_offset;
    check_cuda(cudaMemsetAsync(flags, 0, 32, stream), "cudaMemsetAsync");
    const unsigned plan_blocks = static_cast<unsigned>(ceil_div(nseg, 256));
    plan_kernel<<<plan_blocks, 256, 0, stream>>>(offsets, nseg, n, flags + 1,
                                                 reinterpret_cast<int*>(flags));
    check_cuda(cudaGetLastError(), "launching the segment plan kernel");
    // flags: error, short values, short count, total tiles.
    unsigned long long host_flags[4] = {0, 0, 0, 0};
    check_cuda(cudaMemcpyAsync(host_flags, flags, 32, cudaMemcpyDeviceToHost, stream), "copy");
    check_cuda(cudaStreamSynchronize(stream), "planning segments");
    const int error = static_cast<int>(host_flags[0] & 0xffffffffu);
    if (error & 2) throw std::invalid_argument("segment offsets must lie in [0, len(values)]");
    if (error & 1) throw std::invalid_argument("segment offsets must be non-decreasing");
    if (host_flags[3] >= (1ull << 31)) throw std::invalid_argument("too many values for one call");
    const int64_t total_tiles = static_cast<int64_t>(host_flags[3]);
    const int64_t short_count = static_cast<int64_t>(host_flags[2]);

    if (short_count > 0) {
      const ShortOptions options = short_options();
      const int group =
          group_size_for(static_cast<int64_t>(host_flags[1]), short_count, options.per_lane);
      launch_groups(group, values, offsets, nseg, ddof, out, stream, vector_loads, options);
      check_cuda(cudaGetLastError(), "launching the segment group kernel");
    }
    if (total_tiles > 0) {
      tiles_kernel<<<plan_blocks, 256, 0, stream>>>(offsets, nseg, tiles);
      check_cuda(cudaGetLastError(), "launching the segment tiles kernel");
      check_cuda(cub::DeviceScan::ExclusiveSum(cub_temp, cub_bytes, tiles, first_tile, nseg, stream),
                 "scanning segment tiles");
      const size_t owner_bytes = static_cast<size_t>(total_tiles) * sizeof(int64_t);
      const size_t state_bytes = static_cast<size_t>(total_tiles) * sizeof(State);
      check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&tile_scratch),
                                 owner_bytes + state_bytes + static_cast<size_t>(total_tiles) * sizeof(T),
                                 stream),
                 "allocating tile states on the GPU");
      auto* owner = reinterpret_cast<int64_t*>(tile_scratch);
      auto* partial = reinterpret_cast<State*>(tile_scratch + owner_bytes);
      auto* shift = reinterpret_cast<T*>(tile_scratch + owner_bytes + state_bytes);
      const unsigned warp_blocks = static_cast<unsigned>(ceil_div(nseg, kWarpsPerBlock));
      owner_kernel<T><<<warp_blocks, 256, 0, stream>>>(values, offsets, tiles, first_tile, nseg,
                                                       owner, shift);
      check_cuda(cudaGetLastError(), "launching the segment owner kernel");
      tile_kernel<T><<<static_cast<unsigned>(total_tiles), kTileThreads, 0, stream>>>(
          values, offsets, first_tile, owner, shift, partial, vector_loads);
      check_cuda(cudaGetLastError(), "launching the segment tile kernel");
      merge_kernel<<<warp_blocks, 256, 0, stream>>>(tiles, first_tile, nseg, partial, ddof, out);
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
