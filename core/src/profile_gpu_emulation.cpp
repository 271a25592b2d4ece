// Host emulation of cuda/profile_gpu.cu for tests on machines without a GPU: the same blocks,
// tiles, per-thread value assignment, tree reductions and merge order, with the per-value and
// per-tile code of cairn/profile_gpu_logic.hpp that the kernel runs.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cairn/profile_gpu.hpp"

namespace cairn::gpu::prof {

namespace {

template <class T>
Moments emulate_block(const T* x, int64_t begin, int64_t end, const SketchTable& t,
                      const DeviceColumn& col, int64_t* counters) {
  const int64_t hist0 = sketch_slots(t);
  Moments acc = moments_empty();
  std::vector<Pass1> p1(kThreads);
  std::vector<Pass2> p2(kThreads);
  for (int64_t t0 = begin; t0 < end; t0 += kTile) {
    for (int tid = 0; tid < kThreads; ++tid) {  // first pass and counters, thread by thread
      Pass1 a = pass1_empty();
      for (int j = 0; j < kPerThread; ++j) {
        const int64_t i = t0 + int64_t{j} * kThreads + tid;
        if (i >= end) break;
        const double v = static_cast<double>(x[i]);
        if (!(v - v == 0.0)) continue;  // NaN or +-inf: missing
        pass1_add(a, v);
        ++counters[sketch_slot(t, v)];
        if (col.has_edges) ++counters[hist0 + hist_bin(col.edges, col.nedges, v)];
      }
      p1[static_cast<size_t>(tid)] = a;
    }
    tree_reduce_host(p1.data(), pass1_combine);
    const Pass1 total = p1[0];
    if (total.count == 0) continue;
    const double mean = div_rn(total.sum, static_cast<double>(total.count));
    for (int tid = 0; tid < kThreads; ++tid) {
      Pass2 a{0.0, 0.0};
      for (int j = 0; j < kPerThread; ++j) {
        const int64_t i = t0 + int64_t{j} * kThreads + tid;
        if (i >= end) break;
        const double v = static_cast<double>(x[i]);
        if (v - v == 0.0) pass2_add(a, v, mean);
      }
      p2[static_cast<size_t>(tid)] = a;
    }
    tree_reduce_host(p2.data(), pass2_combine);
    merge(acc, tile_moments(total, mean, p2[0]));
  }
  return acc;
}

}  // namespace

std::vector<NumericStats> numeric_stats_host_emulation(const std::vector<DeviceColumn>& columns,
                                                       const SketchTable& table) {
  std::vector<NumericStats> out;
  out.reserve(columns.size());
  for (const DeviceColumn& col : columns) {
    const int64_t slots = sketch_slots(table) + (col.has_edges ? col.nedges + 1 : 0);
    std::vector<int64_t> counters(static_cast<size_t>(slots), 0);
    const int64_t nblocks = (col.length + kBlockRows - 1) / kBlockRows;
    std::vector<Moments> blocks(static_cast<size_t>(nblocks));
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t begin = b * kBlockRows, end = std::min(col.length, begin + kBlockRows);
      blocks[static_cast<size_t>(b)] =
          col.float32 ? emulate_block(static_cast<const float*>(col.data), begin, end, table, col, counters.data())
                      : emulate_block(static_cast<const double*>(col.data), begin, end, table, col, counters.data());
    }
    out.push_back(finish_column(blocks.data(), nblocks, counters.data(), table, col.nedges,
                                col.has_edges, col.length));
  }
  return out;
}

}  // namespace cairn::gpu::prof
