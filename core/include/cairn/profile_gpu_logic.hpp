// The per-value and per-tile logic of the profile kernel (cuda/profile_gpu.cu), compiled for the
// device and for the host, so that the host emulation (src/profile_gpu_emulation.cpp) runs the code
// the kernel runs: the launch shape, which thread reads which value, the sketch bucket of a value
// (a logarithm's guess corrected against the exact boundary table), the histogram bin (a binary
// search of the edges), the tile moments (a corrected two-pass about the tile mean, summed by the
// same tree the kernel's shared-memory reduction uses) and Chan's merge of the tiles in row order.
// The float64 arithmetic of the moments uses the explicitly rounded operations of
// charts_gpu_logic.hpp, so nvcc cannot fuse it into FMAs that the host build does not have.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "cairn/charts_gpu_logic.hpp"
#include "cairn/profile.hpp"

namespace cairn::gpu::prof {

using charts::add_rn;
using charts::div_rn;
using charts::mul_rn;
using charts::sub_rn;
using cairn::profile::kSketchMin;
using cairn::profile::NumericStats;

// Launch shape, shared with the emulation so that it splits the work the same way.
constexpr int kThreads = 256;                               // threads per block
constexpr int kPerThread = 16;                              // values per thread per tile
constexpr int64_t kTile = int64_t{kThreads} * kPerThread;  // values per tile (4096)
constexpr int64_t kTilesPerBlock = 64;                      // a block walks 64 tiles of one column
constexpr int64_t kBlockRows = kTile * kTilesPerBlock;      // rows per block (262,144)
// Counters privatised in shared memory (uint32) when the sketch and histogram fit in this many.
constexpr int64_t kSharedSlots = 12 * 1024;

// The sketch's boundaries as the kernel sees them: bounds[k - min_index + 1] = gamma**k for
// k = min_index - 1 .. max_index, the values LogBuckets computed with std::pow on the host.
struct SketchTable {
  double inv_log_gamma = 0.0;  // 1 / log(gamma), for the first guess
  int32_t min_index = 0, max_index = 0;
  double clamp_above = 0.0;  // gamma**(max_index - 1)
  const double* bounds = nullptr;
};

// Dense counter layout of one column: [neg buckets | zero | pos buckets | histogram bins].
CAIRN_HD int64_t sketch_slots(const SketchTable& t) { return 2 * (int64_t{t.max_index} - t.min_index + 1) + 1; }

// The slot of a finite value's sketch counter: the bucket of |v| for its sign, or the zero slot.
// The guess ceil(log(m) / log(gamma)) may be off by a step where log rounds differently on the
// device; the walks settle it against the table, so the answer is LogBuckets::index exactly: the
// smallest k with m <= gamma**k, clamped to max_index.
CAIRN_HD int64_t sketch_slot(const SketchTable& t, double v) {
  const int64_t nb = int64_t{t.max_index} - t.min_index + 1;
  const double m = fabs(v);
  if (m < kSketchMin) return nb;  // zero
  int32_t k;
  if (m > t.clamp_above) {
    k = t.max_index;
  } else {
    double g = ceil(log(m) * t.inv_log_gamma);
    g = g < t.min_index ? t.min_index : (g > t.max_index ? t.max_index : g);
    k = static_cast<int32_t>(g);
    const double* b = t.bounds - (t.min_index - 1);  // b[k] = gamma**k
    while (k > t.min_index && m <= b[k - 1]) --k;
    while (k < t.max_index && m > b[k]) ++k;
  }
  const int64_t bucket = k - t.min_index;
  return v > 0.0 ? nb + 1 + bucket : bucket;
}

// Number of edges <= v (v finite): the histogram bin of profile.hpp, by binary search.
CAIRN_HD int64_t hist_bin(const double* edges, int64_t nedges, double v) {
  int64_t first = 0, count = nedges;
  while (count > 0) {
    const int64_t step = count / 2, mid = first + step;
    if (edges[mid] <= v) {
      first = mid + 1;
      count -= step + 1;
    } else {
      count = step;
    }
  }
  return first;
}

// First pass of a tile, one thread's share: count, sum, min, max of its finite values.
struct Pass1 {
  int64_t count;
  double sum, min, max;
};
CAIRN_HD Pass1 pass1_empty() { return Pass1{0, 0.0, INFINITY, -INFINITY}; }
CAIRN_HD void pass1_add(Pass1& a, double v) {
  ++a.count;
  a.sum = add_rn(a.sum, v);
  a.min = v < a.min ? v : a.min;
  a.max = v > a.max ? v : a.max;
}
CAIRN_HD void pass1_combine(Pass1& a, const Pass1& b) {
  a.count += b.count;
  a.sum = add_rn(a.sum, b.sum);
  a.min = b.min < a.min ? b.min : a.min;
  a.max = b.max > a.max ? b.max : a.max;
}

// Second pass, one thread's share: the sum of deviations from the tile mean and of their squares.
struct Pass2 {
  double d, d2;
};
CAIRN_HD void pass2_add(Pass2& a, double v, double mean) {
  const double d = sub_rn(v, mean);
  a.d = add_rn(a.d, d);
  a.d2 = add_rn(a.d2, mul_rn(d, d));
}
CAIRN_HD void pass2_combine(Pass2& a, const Pass2& b) {
  a.d = add_rn(a.d, b.d);
  a.d2 = add_rn(a.d2, b.d2);
}

// Mergeable moments of a run of values: mean about nothing (tiles are centred on their own mean,
// so the merge needs no shift), m2 the sum of squared deviations from it.
struct Moments {
  int64_t count;
  double mean, m2, min, max;
};
CAIRN_HD Moments moments_empty() { return Moments{0, 0.0, 0.0, INFINITY, -INFINITY}; }

// A tile's moments from its reduced passes: the corrected two-pass m2 = sum d^2 - (sum d)^2 / n.
CAIRN_HD Moments tile_moments(const Pass1& p1, double mean, const Pass2& p2) {
  const double n = static_cast<double>(p1.count);
  const double m2 = sub_rn(p2.d2, div_rn(mul_rn(p2.d, p2.d), n));
  return Moments{p1.count, add_rn(mean, div_rn(p2.d, n)), m2 > 0.0 ? m2 : 0.0, p1.min, p1.max};
}

// Appends b (which follows a in row order) to a: Chan et al.'s pairwise update.
CAIRN_HD void merge(Moments& a, const Moments& b) {
  if (b.count == 0) return;
  if (a.count == 0) {
    a = b;
    return;
  }
  const double na = static_cast<double>(a.count), nb = static_cast<double>(b.count);
  const double n = add_rn(na, nb);
  const double delta = sub_rn(b.mean, a.mean);
  a.mean = add_rn(a.mean, mul_rn(delta, div_rn(nb, n)));
  a.m2 = add_rn(add_rn(a.m2, b.m2), mul_rn(mul_rn(delta, delta), div_rn(mul_rn(na, nb), n)));
  a.min = b.min < a.min ? b.min : a.min;
  a.max = b.max > a.max ? b.max : a.max;
  a.count += b.count;
}

// The tree of the kernel's shared-memory reduction over kThreads entries: step s adds entry
// tid + s into entry tid for tid < s, s = kThreads/2 .. 1. The emulation calls this; the kernel
// runs the same steps with a barrier between them.
template <class T, class Combine>
inline void tree_reduce_host(T* items, Combine combine) {
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    for (int tid = 0; tid < s; ++tid) combine(items[tid], items[tid + s]);
  }
}

// Host side, after the kernel or the emulation: one column's NumericStats from the moments of its
// blocks (merged in row order), its dense counters [neg | zero | pos | hist] and its row count.
inline NumericStats finish_column(const Moments* blocks, int64_t nblocks, const int64_t* counters,
                                  const SketchTable& t, int64_t nedges, bool has_edges,
                                  int64_t rows) {
  Moments acc = moments_empty();
  for (int64_t b = 0; b < nblocks; ++b) merge(acc, blocks[b]);
  NumericStats r;
  const double nan = std::nan("");
  r.count = acc.count;
  r.missing = rows - acc.count;
  r.min = acc.count ? acc.min : nan;
  r.max = acc.count ? acc.max : nan;
  r.mean = acc.count ? acc.mean : nan;
  r.m2 = acc.count ? acc.m2 : 0.0;
  const int64_t nb = int64_t{t.max_index} - t.min_index + 1;
  const auto trim = [&](const int64_t* dense, std::vector<int64_t>& out, int64_t& offset) {
    int64_t lo = 0, hi = nb;
    while (lo < hi && dense[lo] == 0) ++lo;
    while (hi > lo && dense[hi - 1] == 0) --hi;
    out.assign(dense + lo, dense + hi);
    offset = lo < hi ? lo + t.min_index : 0;
  };
  trim(counters, r.neg, r.neg_offset);
  r.zero = counters[nb];
  trim(counters + nb + 1, r.pos, r.pos_offset);
  r.has_hist = has_edges;
  if (has_edges) {
    const int64_t* h = counters + 2 * nb + 1;
    r.hist.assign(h, h + nedges + 1);
  }
  return r;
}

}  // namespace cairn::gpu::prof
