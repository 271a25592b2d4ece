// Building blocks shared by the aggregation kernels: a loop over the core's one thread pool,
// mergeable moments (Chan et al.), and the exact per-block moment kernel. Private to core/src.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "cairn/aggregate.hpp"
#include "cairn/parallel.hpp"

namespace cairn::agg::detail {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Runs fn(task, worker) for task in [0, ntasks) on up to `threads` threads of the core's one pool
// (cairn/parallel.hpp; the caller is worker 0, every worker index is below `threads`); tasks are
// handed out dynamically. The first exception thrown is rethrown here.
template <class F>
void parallel_for(int64_t ntasks, int threads, F&& fn) {
  if (ntasks <= 0) return;
  const std::function<void(std::size_t, unsigned)> task = [&fn](std::size_t t, unsigned worker) {
    fn(static_cast<int64_t>(t), static_cast<int>(worker));
  };
  cairn::parallel_for(static_cast<std::size_t>(ntasks), static_cast<unsigned>(std::max(threads, 1)),
                      task);
}

// Neumaier compensated addition. Once the sum is not finite the compensation is meaningless
// (possibly NaN) and total() ignores it, so infinities come out as infinities; a sum never
// becomes finite again once it is not.
inline void compensated_add(double& sum, double& comp, double x) {
  const double t = sum + x;
  comp += std::fabs(sum) >= std::fabs(x) ? (sum - t) + x : (x - t) + sum;
  sum = t;
}

// Mergeable summary of a run of values (NaN skipped).
struct Moments {
  int64_t count = 0;
  int64_t nan_count = 0;
  double sum = 0.0;
  double comp = 0.0;  // Neumaier compensation of sum
  // Variance state, kept relative to a shift (a value of the data itself, the first one seen) so
  // that means stay small and Chan's update keeps its precision when |mean| >> std.
  double shift = 0.0;
  double mean = 0.0;  // mean of (x - shift)
  double m2 = 0.0;    // sum of squared deviations from the mean
  double min = kInf;
  double max = -kInf;
  double first = kNaN;
  double last = kNaN;

  double total() const { return std::isfinite(sum) ? sum + comp : sum; }
};

// Appends b (which follows a in index order) to a: Chan et al.'s pairwise update.
inline void merge_into(Moments& a, const Moments& b) {
  a.nan_count += b.nan_count;
  if (b.count == 0) return;
  if (a.count == 0) {
    const int64_t nan_count = a.nan_count;
    a = b;
    a.nan_count = nan_count;
    return;
  }
  const double na = static_cast<double>(a.count);
  const double nb = static_cast<double>(b.count);
  const double n = na + nb;
  const double delta = (b.shift - a.shift) + (b.mean - a.mean);
  a.mean += delta * (nb / n);
  a.m2 += b.m2 + delta * delta * (na * nb / n);
  compensated_add(a.sum, a.comp, b.sum);
  a.comp += b.comp;
  a.min = b.min < a.min ? b.min : a.min;
  a.max = b.max > a.max ? b.max : a.max;
  a.last = b.last;
  a.count += b.count;
}

// Adds one value with Welford's update (in the shifted frame); NaN is only counted.
inline void add_value(Moments& m, double v, bool want_m2) {
  if (v != v) {
    ++m.nan_count;
    return;
  }
  if (m.count == 0) m.first = m.shift = v;
  m.last = v;
  ++m.count;
  compensated_add(m.sum, m.comp, v);
  m.min = v < m.min ? v : m.min;
  m.max = v > m.max ? v : m.max;
  if (want_m2) {
    const double d = v - m.shift;
    const double delta = d - m.mean;
    m.mean += delta / static_cast<double>(m.count);
    m.m2 += delta * (d - m.mean);
  }
}

// Writes the finished statistics of segment s wherever an output is wanted.
inline void write_result(const ReduceOutputs& out, int64_t s, const Moments& m, int ddof) {
  const bool any = m.count > 0;
  const double n = static_cast<double>(m.count);
  const double sum = any ? m.total() : 0.0;
  if (out.count) out.count[s] = m.count;
  if (out.nan_count) out.nan_count[s] = m.nan_count;
  if (out.sum) out.sum[s] = sum;
  if (out.min) out.min[s] = any ? m.min : kNaN;
  if (out.max) out.max[s] = any ? m.max : kNaN;
  if (out.mean) out.mean[s] = any ? sum / n : kNaN;
  if (out.var || out.std) {
    const double var = m.count - ddof > 0 ? m.m2 / static_cast<double>(m.count - ddof) : kNaN;
    if (out.var) out.var[s] = var;
    if (out.std) out.std[s] = std::sqrt(var);
  }
  if (out.first) out.first[s] = any ? m.first : kNaN;
  if (out.last) out.last[s] = any ? m.last : kNaN;
}

// Exact moments of one block (at most kBlockSize values): a first pass for count, sum, min and
// max in 8 independent lanes (so the compiler vectorises it), a second pass for M2 about the
// block mean when want_m2.
template <class T>
Moments block_moments(const T* x, int64_t len, bool want_m2) {
  constexpr int L = 8;
  double s[L], mn[L], mx[L];
  int64_t c[L];
  for (int j = 0; j < L; ++j) {
    s[j] = 0.0;
    mn[j] = kInf;
    mx[j] = -kInf;
    c[j] = 0;
  }
  int64_t i = 0;
  for (; i + L <= len; i += L) {
    for (int j = 0; j < L; ++j) {
      const double v = static_cast<double>(x[i + j]);
      const bool ok = v == v;
      s[j] += ok ? v : 0.0;
      c[j] += ok ? 1 : 0;
      mn[j] = v < mn[j] ? v : mn[j];
      mx[j] = v > mx[j] ? v : mx[j];
    }
  }
  for (int j = 0; i < len; ++i, ++j) {
    const double v = static_cast<double>(x[i]);
    const bool ok = v == v;
    s[j] += ok ? v : 0.0;
    c[j] += ok ? 1 : 0;
    mn[j] = v < mn[j] ? v : mn[j];
    mx[j] = v > mx[j] ? v : mx[j];
  }
  for (int w = L / 2; w >= 1; w /= 2) {  // fixed pairwise order: deterministic
    for (int j = 0; j < w; ++j) {
      s[j] += s[j + w];
      c[j] += c[j + w];
      mn[j] = mn[j + w] < mn[j] ? mn[j + w] : mn[j];
      mx[j] = mx[j + w] > mx[j] ? mx[j + w] : mx[j];
    }
  }
  Moments m;
  m.count = c[0];
  m.nan_count = len - c[0];
  if (m.count == 0) return m;
  m.sum = s[0];
  m.min = mn[0];
  m.max = mx[0];
  for (int64_t k = 0; k < len; ++k) {
    const double v = static_cast<double>(x[k]);
    if (v == v) {
      m.first = v;
      break;
    }
  }
  for (int64_t k = len - 1; k >= 0; --k) {
    const double v = static_cast<double>(x[k]);
    if (v == v) {
      m.last = v;
      break;
    }
  }
  m.shift = m.first;
  if (want_m2) {
    // Corrected two-pass about the shifted block mean (Chan, Golub and LeVeque): e = x - shift - m0
    // is small and exact-ish, and sum(e) repairs the rounding in m0.
    double q[L], r[L];
    for (int j = 0; j < L; ++j) q[j] = r[j] = 0.0;
    const double shift = m.shift;
    const double m0 = m.sum / static_cast<double>(m.count) - shift;
    int64_t k = 0;
    for (; k + L <= len; k += L) {
      for (int j = 0; j < L; ++j) {
        const double v = static_cast<double>(x[k + j]);
        const double e = (v - shift) - m0;
        const bool ok = v == v;
        r[j] += ok ? e : 0.0;
        q[j] += ok ? e * e : 0.0;
      }
    }
    for (int j = 0; k < len; ++k, ++j) {
      const double v = static_cast<double>(x[k]);
      const double e = (v - shift) - m0;
      const bool ok = v == v;
      r[j] += ok ? e : 0.0;
      q[j] += ok ? e * e : 0.0;
    }
    for (int w = L / 2; w >= 1; w /= 2) {
      for (int j = 0; j < w; ++j) {
        q[j] += q[j + w];
        r[j] += r[j + w];
      }
    }
    const double n = static_cast<double>(m.count);
    m.mean = m0 + r[0] / n;
    const double m2 = q[0] - r[0] * r[0] / n;
    m.m2 = m2 < 0.0 ? 0.0 : m2;  // NaN (from an infinity) stays NaN
  }
  return m;
}

// Moments of values[a, b), block by block from a.
template <class T>
Moments range_moments(const T* values, int64_t a, int64_t b, bool want_m2) {
  Moments acc;
  for (int64_t p = a; p < b; p += kBlockSize) {
    const int64_t len = std::min(kBlockSize, b - p);
    merge_into(acc, block_moments(values + p, len, want_m2));
  }
  return acc;
}

// Index of the first segment whose range ends after position p (segments before it end at or
// before p).
inline int64_t first_segment_after(const int64_t* offsets, int64_t nseg, int64_t p) {
  return std::upper_bound(offsets + 1, offsets + nseg + 1, p) - (offsets + 1);
}

// Number of kPartSize parts covering [begin, end).
inline int64_t part_count(int64_t begin, int64_t end) {
  return end > begin ? (end - begin + kPartSize - 1) / kPartSize : 0;
}

}  // namespace cairn::agg::detail
