// Per-segment histograms over given edges, with underflow, overflow and NaN counts.
#include <mutex>
#include <stdexcept>
#include <string>

#include "aggregate_internal.hpp"

namespace cairn::agg {

namespace {

// Finds the bin of a value inside [edges[0], edges[nedges-1]). When the edges are (nearly) evenly
// spaced, the bin is guessed arithmetically and then corrected against the edges themselves, so
// the answer is exactly the binary search's; otherwise it is a binary search.
struct BinFinder {
  const double* edges;
  int64_t nedges;
  bool uniform;
  double lo, scale;

  BinFinder(const double* e, int64_t n) : edges(e), nedges(n), lo(e[0]) {
    const double width = (e[n - 1] - e[0]) / static_cast<double>(n - 1);
    scale = 1.0 / width;
    uniform = true;
    for (int64_t k = 0; k < n && uniform; ++k) {
      uniform = std::fabs(e[k] - (lo + static_cast<double>(k) * width)) <= 1e-6 * width;
    }
  }

  int64_t operator()(double v) const {  // lo <= v < edges[nedges-1]
    if (!uniform) return (std::upper_bound(edges, edges + nedges, v) - edges) - 1;
    int64_t b = static_cast<int64_t>((v - lo) * scale);
    b = std::min(std::max(b, int64_t{0}), nedges - 2);
    while (v < edges[b]) --b;
    while (v >= edges[b + 1]) ++b;
    return b;
  }
};

// Counts for one segment's (piece of) values, written into the given row.
template <class T>
void count_into(const T* values, int64_t a, int64_t b, const BinFinder& bins, int64_t* row, int64_t& under,
                int64_t& over, int64_t& nan) {
  const double lo = bins.edges[0], hi = bins.edges[bins.nedges - 1];
  const int64_t last_bin = bins.nedges - 2;
  for (int64_t i = a; i < b; ++i) {
    const double v = static_cast<double>(values[i]);
    if (v != v) {
      ++nan;
    } else if (v < lo) {
      ++under;
    } else if (v > hi) {
      ++over;
    } else if (v == hi) {
      ++row[last_bin];
    } else {
      ++row[bins(v)];
    }
  }
}

}  // namespace

template <class T>
void segment_histogram(const T* values, int64_t n, const int64_t* offsets, int64_t nseg,
                       const double* edges, int64_t nedges, int64_t* counts, int64_t* underflow,
                       int64_t* overflow, int64_t* nan_count, int threads) {
  validate_offsets(offsets, nseg, n);
  if (nedges < 2) throw std::invalid_argument("edges must have at least 2 entries");
  for (int64_t k = 0; k < nedges; ++k) {
    if (!std::isfinite(edges[k])) throw std::invalid_argument("edges must be finite");
    if (k > 0 && !(edges[k] > edges[k - 1])) throw std::invalid_argument("edges must be strictly increasing");
  }
  const int64_t nbins = nedges - 1;
  const BinFinder bins(edges, nedges);
  std::fill(counts, counts + nseg * nbins, int64_t{0});
  std::fill(underflow, underflow + nseg, int64_t{0});
  std::fill(overflow, overflow + nseg, int64_t{0});
  std::fill(nan_count, nan_count + nseg, int64_t{0});
  const int64_t begin = offsets[0], end = offsets[nseg];
  std::mutex shared_rows;  // guards rows of segments cut across parts (integer sums: order-free)
  detail::parallel_for(detail::part_count(begin, end), resolve_threads(threads), [&](int64_t part, int) {
    const int64_t p0 = begin + part * kPartSize;
    const int64_t p1 = std::min(end, p0 + kPartSize);
    std::vector<int64_t> local;
    for (int64_t s = detail::first_segment_after(offsets, nseg, p0); s < nseg && offsets[s] < p1; ++s) {
      const int64_t a = std::max(offsets[s], p0), b = std::min(offsets[s + 1], p1);
      if (a >= b) continue;
      if (offsets[s] >= p0 && offsets[s + 1] <= p1) {
        count_into(values, a, b, bins, counts + s * nbins, underflow[s], overflow[s], nan_count[s]);
        continue;
      }
      local.assign(static_cast<size_t>(nbins), 0);
      int64_t under = 0, over = 0, nan = 0;
      count_into(values, a, b, bins, local.data(), under, over, nan);
      std::lock_guard<std::mutex> lock(shared_rows);
      int64_t* row = counts + s * nbins;
      for (int64_t k = 0; k < nbins; ++k) row[k] += local[static_cast<size_t>(k)];
      underflow[s] += under;
      overflow[s] += over;
      nan_count[s] += nan;
    }
  });
}

template void segment_histogram<float>(const float*, int64_t, const int64_t*, int64_t, const double*, int64_t,
                                       int64_t*, int64_t*, int64_t*, int64_t*, int);
template void segment_histogram<double>(const double*, int64_t, const int64_t*, int64_t, const double*,
                                        int64_t, int64_t*, int64_t*, int64_t*, int64_t*, int);

}  // namespace cairn::agg
