// Host emulation of the CUDA segmented reductions (tests only): the same per-lane value order,
// warp butterfly merges, tiles and tile merge order as cuda/aggregate_gpu.cu, computed with the
// shared code of cairn/segments_gpu_state.hpp.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "cairn/aggregate_gpu.hpp"
#include "cairn/segments_gpu_state.hpp"

namespace cairn::gpu {

namespace {
using namespace cairn::gpu::segments;

// The shuffle butterfly of the kernels over `group` lanes: every lane ends with the same state.
State group_merge(State* lanes, int group) {
  for (int mask = 1; mask < group; mask <<= 1) {
    State next[32];
    for (int lane = 0; lane < group; ++lane) {
      const State& other = lanes[lane ^ mask];
      next[lane] = (lane & mask) ? merge(other, lanes[lane]) : merge(lanes[lane], other);
    }
    for (int lane = 0; lane < group; ++lane) lanes[lane] = next[lane];
  }
  return lanes[0];
}

State warp_merge(State lanes[32]) { return group_merge(lanes, 32); }

// The shift of values [begin, end): its first finite value, 0 when it has none (group_shift and
// owner_kernel).
template <class T>
T first_finite(const T* values, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    if (finite(values[i])) return values[i];
  }
  return T(0);
}

// The lanes' Sums summed over the butterfly of short_kernel / tile_kernel.
template <class T>
Sums<T> butterfly(Sums<T>* lanes, int group) {
  for (int mask = 1; mask < group; mask <<= 1) {
    Sums<T> next[32];
    for (int lane = 0; lane < group; ++lane) next[lane] = add(lanes[lane], lanes[lane ^ mask]);
    for (int lane = 0; lane < group; ++lane) lanes[lane] = next[lane];
  }
  return lanes[0];
}

// short_kernel, scalar loads: lane `sub` of a group of G takes values begin + sub, begin + sub + G.
template <class T>
State group_segment(const T* values, int64_t begin, int64_t end, int group) {
  const T c = first_finite(values, begin, end);
  const double cd = static_cast<double>(c);
  Sums<T> lanes[32];
  for (int sub = 0; sub < group; ++sub) {
    for (int64_t i = begin + sub; i < end; i += group) lanes[sub].add(values[i], c, cd);
  }
  return finish(butterfly(lanes, group), cd);
}

// short_kernel, float4 loads (float32): head value by value, float4s q = sub, sub + G, ..., tail.
State group_segment_vector(const float* values, int64_t begin, int64_t end, int group) {
  const int64_t head = vector_head(reinterpret_cast<uintptr_t>(values + begin), end - begin);
  if (head < 0) return group_segment(values, begin, end, group);
  const float c = first_finite(values, begin, end);
  const double cd = static_cast<double>(c);
  Sums<float> lanes[32];
  const int64_t vbegin = begin + head;
  const int64_t nvec = (end - vbegin) / 4;
  for (int sub = 0; sub < group; ++sub) {
    for (int64_t i = begin + sub; i < vbegin; i += group) lanes[sub].add(values[i], c, cd);
    for (int64_t q = sub; q < nvec; q += group) {
      for (int k = 0; k < 4; ++k) lanes[sub].add(values[vbegin + 4 * q + k], c, cd);
    }
    for (int64_t i = vbegin + nvec * 4 + sub; i < end; i += group) lanes[sub].add(values[i], c, cd);
  }
  return finish(butterfly(lanes, group), cd);
}

template <class T>
State group_segment_path(const T* values, int64_t begin, int64_t end, int group, bool) {
  return group_segment(values, begin, end, group);
}

State group_segment_path(const float* values, int64_t begin, int64_t end, int group,
                         bool vector_loads) {
  return vector_loads ? group_segment_vector(values, begin, end, group)
                      : group_segment(values, begin, end, group);
}

// tile_kernel, scalar loads: thread t of kTileThreads takes values begin + t, begin + t + 256, ...;
// warps sum their lanes, then the first warp sums the warps.
template <class T>
State tile(const T* values, int64_t begin, int64_t end) {
  const T c = first_finite(values, begin, end);
  const double cd = static_cast<double>(c);
  Sums<T> warps[32];
  for (int w = 0; w < kTileThreads / 32; ++w) {
    Sums<T> lanes[32];
    for (int lane = 0; lane < 32; ++lane) {
      for (int64_t i = begin + w * 32 + lane; i < end; i += kTileThreads) lanes[lane].add(values[i], c, cd);
    }
    warps[w] = butterfly(lanes, 32);
  }
  return finish(butterfly(warps, 32), cd);
}

template <class T>
void run(const T* values, int64_t n, const int64_t* offsets, int64_t nseg, const SegmentOutputs& out,
         int ddof, bool vector_loads) {
  for (int64_t s = 0; s < nseg; ++s) {
    if (offsets[s] < 0 || offsets[s + 1] > n) {
      throw std::invalid_argument("segment offsets must lie in [0, len(values)]");
    }
    if (offsets[s + 1] < offsets[s]) {
      throw std::invalid_argument("segment offsets must be non-decreasing");
    }
  }
  int64_t short_values = 0, short_count = 0;
  for (int64_t s = 0; s < nseg; ++s) {
    const int64_t len = offsets[s + 1] - offsets[s];
    if (len <= kWarpSegmentMax) {
      short_values += len;
      ++short_count;
    }
  }
  const int group = group_size_for(short_values, short_count);
  for (int64_t s = 0; s < nseg; ++s) {
    const int64_t begin = offsets[s], end = offsets[s + 1];
    const int64_t count = tiles_for(end - begin);
    if (count == 0) {
      write_results(group_segment_path(values, begin, end, group, vector_loads), s, ddof, out);
      continue;
    }
    std::vector<State> partial(count);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t tb = begin + k * kTileValues;
      partial[k] = tile(values, tb, end - tb < kTileValues ? end : tb + kTileValues);
    }
    const int64_t per = (count + 31) / 32;  // lane l merges tiles [l*per, (l+1)*per)
    State lanes[32];
    for (int lane = 0; lane < 32; ++lane) {
      State st = empty_state();
      for (int64_t k = lane * per; k < count && k < (lane + 1) * per; ++k) st = merge(st, partial[k]);
      lanes[lane] = st;
    }
    write_results(warp_merge(lanes), s, ddof, out);
  }
}
}  // namespace

void segment_reduce_host_emulation(const void* values, ValueType type, int64_t n,
                                   const int64_t* offsets, int64_t nseg, const SegmentOutputs& out,
                                   int ddof, bool vector_loads) {
  if (n < 0 || nseg < 0 || ddof < 0) throw std::invalid_argument("n, nseg and ddof must be >= 0");
  if (type == ValueType::Float32) {
    run(static_cast<const float*>(values), n, offsets, nseg, out, ddof, vector_loads);
  } else {
    run(static_cast<const double*>(values), n, offsets, nseg, out, ddof, false);
  }
}

}  // namespace cairn::gpu
