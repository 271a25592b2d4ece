// Chart downsampling: min/max/last per x bucket, and largest-triangle-three-buckets (LTTB).
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "aggregate_internal.hpp"

namespace cairn::agg {

namespace {

template <class X>
void check_x(const X* x, int64_t n, int64_t n_out) {
  if (n_out < 3) throw std::invalid_argument("n_out must be >= 3, got " + std::to_string(n_out));
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_floating_point_v<X>) {
      if (!std::isfinite(x[i])) {
        throw std::invalid_argument("x must be finite; x[" + std::to_string(i) + "] is not");
      }
    }
    if (i > 0 && x[i] < x[i - 1]) {
      throw std::invalid_argument("x must be sorted ascending; x[" + std::to_string(i) + "] < x[" +
                                  std::to_string(i - 1) + "]");
    }
  }
  if constexpr (std::is_floating_point_v<X>) {
    if (n > 0 && !std::isfinite(x[n - 1] - x[0])) {
      throw std::invalid_argument("x spans more than the largest float64 (x[-1] - x[0] overflows)");
    }
  }
}

std::vector<int64_t> all_indices(int64_t n) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  return idx;
}

// Maps x to its bucket in [0, nb): equal ranges of x between x[0] and x[n-1].
struct BucketOfInt {
  int64_t x0;
  unsigned __int128 width;  // x[n-1] - x[0] + 1
  int64_t nb;
  int64_t operator()(int64_t x) const {
    const uint64_t dx = static_cast<uint64_t>(x) - static_cast<uint64_t>(x0);
    return static_cast<int64_t>((static_cast<unsigned __int128>(dx) * static_cast<uint64_t>(nb)) / width);
  }
};
struct BucketOfFloat {
  double x0;
  double span;
  int64_t nb;
  int64_t operator()(double x) const {
    if (span <= 0.0) return 0;
    const double b = std::floor((x - x0) / span * static_cast<double>(nb));
    return std::min(nb - 1, static_cast<int64_t>(b));
  }
};

}  // namespace

template <class X, class Y>
std::vector<int64_t> downsample_minmax(const X* x, const Y* y, int64_t n, int64_t n_out) {
  check_x(x, n, n_out);
  if (n <= n_out) return all_indices(n);
  const int64_t nb = n_out / 3;
  auto bucket_of = [&]() {
    if constexpr (std::is_floating_point_v<X>) {
      return BucketOfFloat{static_cast<double>(x[0]), static_cast<double>(x[n - 1]) - static_cast<double>(x[0]), nb};
    } else {
      const uint64_t span = static_cast<uint64_t>(x[n - 1]) - static_cast<uint64_t>(x[0]);
      return BucketOfInt{x[0], static_cast<unsigned __int128>(span) + 1, nb};
    }
  }();
  std::vector<int64_t> picked;
  picked.reserve(static_cast<size_t>(3 * nb));
  int64_t i = 0;
  while (i < n) {
    const int64_t b = bucket_of(x[i]);
    int64_t imin = -1, imax = -1, j = i;
    double vmin = detail::kInf, vmax = -detail::kInf;
    for (; j < n && bucket_of(x[j]) == b; ++j) {
      const double v = static_cast<double>(y[j]);
      if (v != v) continue;
      if (imin < 0 || v < vmin) vmin = v, imin = j;
      if (imax < 0 || v > vmax) vmax = v, imax = j;
    }
    const int64_t ilast = j - 1;
    int64_t three[3] = {imin, imax, ilast};
    std::sort(three, three + 3);
    for (int64_t k : three) {
      if (k >= 0 && (picked.empty() || picked.back() != k)) picked.push_back(k);
    }
    i = j;
  }
  return picked;
}

template <class X, class Y>
std::vector<int64_t> lttb(const X* x, const Y* y, int64_t n, int64_t n_out) {
  check_x(x, n, n_out);
  if (n <= n_out) return all_indices(n);
  auto xd = [&](int64_t i) {
    if constexpr (std::is_floating_point_v<X>) {
      return static_cast<double>(x[i]) - static_cast<double>(x[0]);
    } else {
      return static_cast<double>(static_cast<uint64_t>(x[i]) - static_cast<uint64_t>(x[0]));
    }
  };
  const int64_t nbuckets = n_out - 2;
  const int64_t inner = n - 2;
  auto bucket_start = [&](int64_t b) {
    return 1 + static_cast<int64_t>((static_cast<unsigned __int128>(b) * static_cast<uint64_t>(inner)) /
                                    static_cast<uint64_t>(nbuckets));
  };
  std::vector<int64_t> picked;
  picked.reserve(static_cast<size_t>(n_out));
  picked.push_back(0);
  int64_t a = 0;
  for (int64_t b = 0; b < nbuckets; ++b) {
    const int64_t lo = bucket_start(b), hi = bucket_start(b + 1);
    // The mean of the next bucket (or the last point) is the triangle's third corner.
    const int64_t nlo = hi, nhi = b + 1 < nbuckets ? bucket_start(b + 2) : n;
    const double ax = xd(a), ay = static_cast<double>(y[a]);
    double sx = 0.0, sy = 0.0;
    int64_t ny = 0;
    for (int64_t k = nlo; k < nhi; ++k) {
      sx += xd(k);
      const double v = static_cast<double>(y[k]);
      if (v == v) sy += v, ++ny;
    }
    const double cx = sx / static_cast<double>(nhi - nlo);
    const double cy = ny > 0 ? sy / static_cast<double>(ny) : ay;
    int64_t best = lo;
    double best_area = -1.0;
    for (int64_t k = lo; k < hi; ++k) {
      const double area = std::fabs((ax - cx) * (static_cast<double>(y[k]) - ay) - (ax - xd(k)) * (cy - ay));
      if (area > best_area) best_area = area, best = k;
    }
    picked.push_back(best);
    a = best;
  }
  picked.push_back(n - 1);
  return picked;
}

#define CAIRN_AGG_DS(X, Y)                                                                  \
  template std::vector<int64_t> downsample_minmax<X, Y>(const X*, const Y*, int64_t, int64_t); \
  template std::vector<int64_t> lttb<X, Y>(const X*, const Y*, int64_t, int64_t);
CAIRN_AGG_DS(int64_t, float)
CAIRN_AGG_DS(int64_t, double)
CAIRN_AGG_DS(double, float)
CAIRN_AGG_DS(double, double)
#undef CAIRN_AGG_DS

}  // namespace cairn::agg
