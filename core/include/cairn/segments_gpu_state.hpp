// Per-segment moment states shared by the CUDA segmented-reduction kernels (cuda/aggregate_gpu.cu)
// and their host emulation (src/segments_gpu_emulation.cpp). Internal header.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "cairn/aggregate_gpu.hpp"

#ifndef CAIRN_HD
#if defined(__CUDACC__)
#define CAIRN_HD __host__ __device__ __forceinline__
#else
#define CAIRN_HD inline
#endif
#endif

namespace cairn::gpu::segments {

constexpr int kTileThreads = 256;
constexpr int kWarpsPerBlock = 8;

// Moments of some values: count, NaN count, float64 sum, mean, M2 (sum of squared deviations).
struct State {
  int64_t n;
  int64_t nan;
  double sum;
  double mean;
  double m2;
  double min;
  double max;
};

CAIRN_HD State empty_state() {
  return {0, 0, 0.0, 0.0, 0.0, HUGE_VAL, -HUGE_VAL};
}

// Chan et al.'s pairwise update: a followed by b.
CAIRN_HD State merge(const State& a, const State& b) {
  if (b.n == 0) return {a.n, a.nan + b.nan, a.sum, a.mean, a.m2, a.min, a.max};
  if (a.n == 0) return {b.n, a.nan + b.nan, b.sum, b.mean, b.m2, b.min, b.max};
  const int64_t n = a.n + b.n;
  const double na = static_cast<double>(a.n), nb = static_cast<double>(b.n);
  const double inv = 1.0 / static_cast<double>(n);
  const double delta = b.mean - a.mean;
  State r;
  r.n = n;
  r.nan = a.nan + b.nan;
  r.sum = a.sum + b.sum;
  r.mean = a.mean + delta * (nb * inv);
  r.m2 = a.m2 + b.m2 + delta * delta * (na * nb * inv);
  r.min = ::fmin(a.min, b.min);
  r.max = ::fmax(a.max, b.max);
  return r;
}

// NaN-ignoring min and max (one instruction on the GPU) and the finiteness test, for float and
// double, on both sides.
#if defined(__CUDA_ARCH__)
CAIRN_HD float lower(float a, float b) { return fminf(a, b); }
CAIRN_HD double lower(double a, double b) { return fmin(a, b); }
CAIRN_HD float upper(float a, float b) { return fmaxf(a, b); }
CAIRN_HD double upper(double a, double b) { return fmax(a, b); }
CAIRN_HD bool finite(float x) { return isfinite(x); }
CAIRN_HD bool finite(double x) { return isfinite(x); }
#else
inline float lower(float a, float b) { return std::fmin(a, b); }
inline double lower(double a, double b) { return std::fmin(a, b); }
inline float upper(float a, float b) { return std::fmax(a, b); }
inline double upper(double a, double b) { return std::fmax(a, b); }
inline bool finite(float x) { return std::isfinite(x); }
inline bool finite(double x) { return std::isfinite(x); }
#endif

// Sums of values (of type T) about a shift c fixed before the first value is added: the first
// finite value of the segment (short segments) or of the tile (long ones), or 0 when there is none.
// d = x - c is small, so s1 = sum(d) and s2 = sum(d^2) in float64 lose little. A NaN counts in `nan`
// and is replaced by c (branch-free): it adds 0 to s1 and s2 and c to `sum`, taken off at the end
// (nan * c is exact for float32). Infinities propagate through `sum` as IEEE arithmetic says; min
// and max skip NaN. Sums about the same c merge by plain addition, in any order of lanes.
template <class T>
struct Sums {
  int seen = 0, nan = 0;  // one thread adds at most kWarpSegmentMax values
  double s1 = 0, s2 = 0, sum = 0;
  T lo = static_cast<T>(HUGE_VAL);
  T hi = static_cast<T>(-HUGE_VAL);

  CAIRN_HD void add(T x, T c, double cd) {
    ++seen;
    const bool missing = x != x;
    nan += missing;
    const double xd = static_cast<double>(missing ? c : x);
    const double d = xd - cd;
    s1 += d;
    s2 = ::fma(d, d, s2);
    sum += xd;
    lo = lower(lo, x);
    hi = upper(hi, x);
  }
};

template <class T>
CAIRN_HD Sums<T> add(const Sums<T>& a, const Sums<T>& b) {
  Sums<T> r;
  r.seen = a.seen + b.seen;
  r.nan = a.nan + b.nan;
  r.s1 = a.s1 + b.s1;
  r.s2 = a.s2 + b.s2;
  r.sum = a.sum + b.sum;
  r.lo = lower(a.lo, b.lo);
  r.hi = upper(a.hi, b.hi);
  return r;
}

// The sums about c as a State: mean c + s1 / n, M2 = s2 - s1^2 / n.
template <class T>
CAIRN_HD State finish(const Sums<T>& s, double c) {
  const int64_t n = s.seen - s.nan;
  if (n == 0) {
    State e = empty_state();
    e.nan = s.nan;
    return e;
  }
  const double dn = static_cast<double>(n);
  const double mean_d = s.s1 / dn;
  const double m2 = s.s2 - s.s1 * mean_d;
  const double sum = s.sum - static_cast<double>(s.nan) * c;
  return {n, s.nan, sum, c + mean_d, m2 < 0 ? 0.0 : m2,  // NaN (from inf) stays
          static_cast<double>(s.lo), static_cast<double>(s.hi)};
}

CAIRN_HD void write_results(const State& s, int64_t seg, int ddof, const SegmentOutputs& out) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (out.count) out.count[seg] = s.n;
  if (out.nan_count) out.nan_count[seg] = s.nan;
  if (out.sum) out.sum[seg] = s.n ? s.sum : 0.0;
  if (out.min) out.min[seg] = s.n ? s.min : nan;
  if (out.max) out.max[seg] = s.n ? s.max : nan;
  if (out.mean) out.mean[seg] = s.n ? s.sum / static_cast<double>(s.n) : nan;
  if (out.var) out.var[seg] = s.n > ddof ? s.m2 / static_cast<double>(s.n - ddof) : nan;
}

// Tiles of a segment of `len` values: 0 when one warp takes it whole.
CAIRN_HD int64_t tiles_for(int64_t len) {
  return len > kWarpSegmentMax ? (len + kTileValues - 1) / kTileValues : 0;
}

// float32 float4 paths: the values before the first 16-byte boundary of a range starting at `addr`
// (at most 3, at most len), or -1 when `addr` is not 4-byte aligned (then the scalar path is used).
// A lane `sub` of a group of G then takes head values begin + sub, begin + sub + G, ...; float4s
// q = sub, sub + G, ... of the aligned part (4 values each, in order); tail values likewise.
CAIRN_HD int64_t vector_head(uintptr_t addr, int64_t len) {
  if ((addr & 3) != 0) return -1;
  const int64_t head = static_cast<int64_t>(((16 - (addr & 15)) & 15) / 4);
  return head < len ? head : len;
}

// About this many values per lane of a short segment's group (on an H200 with 100-value segments
// and 8 loads in flight per lane, 64 gave 69% of the device copy bandwidth; with 4 loads, 16 gave
// 45% and 32 gave 58-63%).
constexpr int64_t kShortValuesPerLane = 64;

// Lanes per short segment (a power of two, 1..32) from the short segments' total length and count.
CAIRN_HD int group_size_for(int64_t short_values, int64_t short_segments,
                            int64_t per_lane = kShortValuesPerLane) {
  if (short_segments <= 0) return 32;
  const int64_t lanes = (short_values + short_segments * per_lane - 1) / (short_segments * per_lane);
  int g = 1;
  while (g < lanes && g < 32) g <<= 1;
  return g;
}

}  // namespace cairn::gpu::segments
