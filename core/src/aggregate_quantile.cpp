// Exact per-segment quantiles by selection (nth_element), numpy's "linear" interpolation.
#include <numeric>
#include <stdexcept>
#include <string>

#include "aggregate_internal.hpp"

namespace cairn::agg {

namespace {

// numpy's _lerp: symmetric in how it rounds, so lerp(a, b, 1) == b exactly.
double lerp(double a, double b, double t) {
  if (t == 0.0 || a == b) return a;
  const double diff = b - a;
  return t < 0.5 ? a + diff * t : b - diff * (1.0 - t);
}

}  // namespace

template <class T>
void segment_quantiles(const T* values, int64_t n, const int64_t* offsets, int64_t nseg,
                       const double* q, int64_t nq, double* out, int threads) {
  validate_offsets(offsets, nseg, n);
  for (int64_t k = 0; k < nq; ++k) {
    if (!(q[k] >= 0.0 && q[k] <= 1.0)) {
      throw std::invalid_argument("quantile " + std::to_string(q[k]) + " is outside [0, 1]");
    }
  }
  // Quantiles are taken in increasing order so that each selection narrows the next one.
  std::vector<int64_t> by_q(static_cast<size_t>(nq));
  std::iota(by_q.begin(), by_q.end(), int64_t{0});
  std::stable_sort(by_q.begin(), by_q.end(), [&](int64_t a, int64_t b) { return q[a] < q[b]; });
  // Small inputs are not worth starting threads for.
  const int nthreads = offsets[nseg] - offsets[0] < kPartSize ? 1 : resolve_threads(threads);
  std::vector<std::vector<double>> scratch(static_cast<size_t>(nthreads));
  detail::parallel_for(nseg, nthreads, [&](int64_t s, int worker) {
    std::vector<double>& buf = scratch[static_cast<size_t>(worker)];
    buf.clear();
    for (int64_t i = offsets[s]; i < offsets[s + 1]; ++i) {
      const double v = static_cast<double>(values[i]);
      if (v == v) buf.push_back(v);
    }
    double* row = out + s * nq;
    const int64_t m = static_cast<int64_t>(buf.size());
    if (m == 0) {
      for (int64_t k = 0; k < nq; ++k) row[k] = detail::kNaN;
      return;
    }
    int64_t from = 0;  // everything before `from` is <= everything from it on
    for (int64_t k : by_q) {
      const double h = q[k] * static_cast<double>(m - 1);
      const int64_t lo = std::min(static_cast<int64_t>(std::floor(h)), m - 1);
      const double t = h - static_cast<double>(lo);
      std::nth_element(buf.begin() + from, buf.begin() + lo, buf.end());
      from = lo;
      const double a = buf[static_cast<size_t>(lo)];
      double b = a;
      if (t > 0.0 && lo + 1 < m) b = *std::min_element(buf.begin() + lo + 1, buf.end());
      row[k] = lerp(a, b, t);
    }
  });
}

template void segment_quantiles<float>(const float*, int64_t, const int64_t*, int64_t, const double*,
                                       int64_t, double*, int);
template void segment_quantiles<double>(const double*, int64_t, const int64_t*, int64_t, const double*,
                                        int64_t, double*, int);

}  // namespace cairn::agg
