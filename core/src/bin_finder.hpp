// Finding a value's bin among sorted edges, shared by the drift histograms (aggregate_histogram.cpp)
// and the profile pass (profile_numeric.cpp). Private to core/src.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace cairn::detail {

// Number of edges e[0..n) (sorted ascending, duplicates allowed) that are <= v: a binary search
// without data-dependent branches, because for a dozen edges and values in random order the
// mispredicted branches of std::upper_bound cost more than the comparisons. NaN gives 0.
inline int64_t count_edges_le(const double* e, int64_t n, double v) {
  if (n <= 0) return 0;
  const double* base = e;
  int64_t len = n;
  // Invariant: every edge before base is <= v, and the answer is in [base - e, base - e + len].
  while (len > 1) {
    const int64_t half = len / 2;
    base += base[half - 1] <= v ? half : 0;
    len -= half;
  }
  return (base - e) + (*base <= v ? 1 : 0);
}

// Finds the bin of a value inside [edges[0], edges[nedges-1]). When the edges are (nearly) evenly
// spaced, the bin is guessed arithmetically and then corrected against the edges themselves, so
// the answer is exactly the binary search's; otherwise it is a binary search. Edges must be sorted
// (duplicates allowed: they are never "uniform"); infinite edges are searched, never guessed.
struct BinFinder {
  const double* edges;
  int64_t nedges;
  bool uniform = false;
  double lo = 0.0, scale = 0.0;

  BinFinder(const double* e, int64_t n) : edges(e), nedges(n) {
    if (n < 2) return;
    lo = e[0];
    const double width = (e[n - 1] - e[0]) / static_cast<double>(n - 1);
    if (!(std::isfinite(width) && width > 0.0)) return;
    scale = 1.0 / width;
    uniform = true;
    for (int64_t k = 0; k < n && uniform; ++k) {
      uniform = std::fabs(e[k] - (lo + static_cast<double>(k) * width)) <= 1e-6 * width;
    }
  }

  int64_t operator()(double v) const {  // edges[0] <= v < edges[nedges-1]
    if (!uniform) return count_edges_le(edges, nedges, v) - 1;
    int64_t b = static_cast<int64_t>((v - lo) * scale);
    b = std::min(std::max(b, int64_t{0}), nedges - 2);
    while (v < edges[b]) --b;
    while (v >= edges[b + 1]) ++b;
    return b;
  }
};

}  // namespace cairn::detail
