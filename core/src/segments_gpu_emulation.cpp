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

// short_kernel's group reduction: the previous Chan merge of the lanes' states, or (default) the
// lanes' sums brought to the shift of the first lane with a value and added over the butterfly.
template <class T>
State group_reduce(const Accumulator<T>* acc, int group, bool chan) {
  if (chan) {
    State lanes[32];
    for (int sub = 0; sub < group; ++sub) lanes[sub] = acc[sub].state();
    return group_merge(lanes, group);
  }
  int source = 0;
  while (source < group && acc[source].n == 0) ++source;
  const double c = source < group ? acc[source].shift : acc[0].shift;
  Sums<T> lanes[32];
  for (int sub = 0; sub < group; ++sub) lanes[sub] = rebased(acc[sub], c);
  for (int mask = 1; mask < group; mask <<= 1) {
    Sums<T> next[32];
    for (int sub = 0; sub < group; ++sub) next[sub] = add(lanes[sub], lanes[sub ^ mask]);
    for (int sub = 0; sub < group; ++sub) lanes[sub] = next[sub];
  }
  return finish(lanes[0], c);
}

// short_kernel, scalar loads: lane `sub` of a group of G takes values begin + sub, begin + sub + G.
template <class T>
State group_segment(const T* values, int64_t begin, int64_t end, int group, bool chan) {
  Accumulator<T> acc[32];
  for (int sub = 0; sub < group; ++sub) {
    for (int64_t i = begin + sub; i < end; i += group) acc[sub].add(values[i]);
  }
  return group_reduce(acc, group, chan);
}

// short_kernel, float4 loads (float32): head value by value, float4s q = sub, sub + G, ..., tail.
State group_segment_vector(const float* values, int64_t begin, int64_t end, int group, bool chan) {
  const int64_t head = vector_head(reinterpret_cast<uintptr_t>(values + begin), end - begin);
  if (head < 0) return group_segment(values, begin, end, group, chan);
  Accumulator<float> acc[32];
  const int64_t vbegin = begin + head;
  const int64_t nvec = (end - vbegin) / 4;
  for (int sub = 0; sub < group; ++sub) {
    for (int64_t i = begin + sub; i < vbegin; i += group) acc[sub].add(values[i]);
    for (int64_t q = sub; q < nvec; q += group) {
      for (int k = 0; k < 4; ++k) acc[sub].add(values[vbegin + 4 * q + k]);
    }
    for (int64_t i = vbegin + nvec * 4 + sub; i < end; i += group) acc[sub].add(values[i]);
  }
  return group_reduce(acc, group, chan);
}

template <class T>
State group_segment_path(const T* values, int64_t begin, int64_t end, int group, bool, bool chan) {
  return group_segment(values, begin, end, group, chan);
}

State group_segment_path(const float* values, int64_t begin, int64_t end, int group,
                         bool vector_loads, bool chan) {
  return vector_loads ? group_segment_vector(values, begin, end, group, chan)
                      : group_segment(values, begin, end, group, chan);
}

template <class T>
State tile(const T* values, int64_t begin, int64_t end) {
  State warp_states[32];
  for (int w = 0; w < 32; ++w) warp_states[w] = empty_state();
  for (int w = 0; w < kTileThreads / 32; ++w) {
    State lanes[32];
    for (int lane = 0; lane < 32; ++lane) {
      Accumulator<T> acc;
      for (int64_t i = begin + w * 32 + lane; i < end; i += kTileThreads) acc.add(values[i]);
      lanes[lane] = acc.state();
    }
    warp_states[w] = warp_merge(lanes);
  }
  return warp_merge(warp_states);
}

template <class T>
void run(const T* values, int64_t n, const int64_t* offsets, int64_t nseg, const SegmentOutputs& out,
         int ddof, bool vector_loads, bool chan) {
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
      write_results(group_segment_path(values, begin, end, group, vector_loads, chan), s, ddof, out);
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
                                   int ddof, bool vector_loads, bool chan_merge) {
  if (n < 0 || nseg < 0 || ddof < 0) throw std::invalid_argument("n, nseg and ddof must be >= 0");
  if (type == ValueType::Float32) {
    run(static_cast<const float*>(values), n, offsets, nseg, out, ddof, vector_loads, chan_merge);
  } else {
    run(static_cast<const double*>(values), n, offsets, nseg, out, ddof, false, chan_merge);
  }
}

}  // namespace cairn::gpu
