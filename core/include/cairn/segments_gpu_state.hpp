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

// One thread's running sums over its values (of type T), shifted by its first value: d = x - shift
// is small, so s1 = sum(d) and s2 = sum(d^2) in float64 lose little. The plain float64 sum is kept
// too, so that infinities propagate as IEEE arithmetic says. NaN checks and min/max stay in T.
template <class T>
struct Accumulator {
  int n = 0, nan = 0;  // one thread adds at most kWarpSegmentMax values
  double shift = 0, s1 = 0, s2 = 0, sum = 0;
  T lo = static_cast<T>(HUGE_VAL);
  T hi = static_cast<T>(-HUGE_VAL);

  CAIRN_HD void add(T x) {
    if (x != x) {
      ++nan;
      return;
    }
    const double xd = static_cast<double>(x);
    if (n == 0) shift = xd;
    ++n;
    const double d = xd - shift;
    s1 += d;
    s2 = ::fma(d, d, s2);
    sum += xd;
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }

  CAIRN_HD State state() const {
    if (n == 0) {
      State s = empty_state();
      s.nan = nan;
      return s;
    }
    const double dn = static_cast<double>(n);
    const double m2 = s2 - s1 * (s1 / dn);
    return {n, nan, sum, shift + s1 / dn, m2 < 0 ? 0.0 : m2,  // NaN (from inf) stays
            static_cast<double>(lo), static_cast<double>(hi)};
  }
};

// Short segments (the group kernels' default): the lanes of a group bring their sums to one common
// shift c, the shift of the group's first lane that has a value, so that they merge by plain
// addition (no division per merge): over a lane's values, with d = shift - c,
// sum (x - c) = s1 + n d and sum (x - c)^2 = s2 + d (2 s1 + n d). Addition is commutative, so every
// lane of a butterfly ends with the same sums.
template <class T>
struct Sums {
  int n, nan;
  double s1, s2, sum;
  T lo, hi;
};

template <class T>
CAIRN_HD Sums<T> rebased(const Accumulator<T>& a, double c) {
  Sums<T> s{a.n, a.nan, a.s1, a.s2, a.sum, a.lo, a.hi};
  if (a.n > 0) {
    const double d = a.shift - c;
    const double nd = static_cast<double>(a.n) * d;
    s.s2 = a.s2 + d * (2.0 * a.s1 + nd);
    s.s1 = a.s1 + nd;
  }
  return s;
}

template <class T>
CAIRN_HD Sums<T> add(const Sums<T>& a, const Sums<T>& b) {
  return {a.n + b.n,         a.nan + b.nan,
          a.s1 + b.s1,       a.s2 + b.s2,
          a.sum + b.sum,     a.lo < b.lo ? a.lo : b.lo,
          a.hi > b.hi ? a.hi : b.hi};
}

// The merged sums as a State (as Accumulator::state, with the common shift c).
template <class T>
CAIRN_HD State finish(const Sums<T>& s, double c) {
  if (s.n == 0) {
    State e = empty_state();
    e.nan = s.nan;
    return e;
  }
  const double dn = static_cast<double>(s.n);
  const double m2 = s.s2 - s.s1 * (s.s1 / dn);
  return {s.n, s.nan, s.sum, c + s.s1 / dn, m2 < 0 ? 0.0 : m2,  // NaN (from inf) stays
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

// Lanes per short segment (a power of two, 1..32) from the short segments' total length and count:
// about 16 values per lane.
// float32 float4 paths: the values before the first 16-byte boundary of a range starting at `addr`
// (at most 3, at most len), or -1 when `addr` is not 4-byte aligned (then the scalar path is used).
// A lane `sub` of a group of G then takes head values begin + sub, begin + sub + G, ...; float4s
// q = sub, sub + G, ... of the aligned part (4 values each, in order); tail values likewise.
CAIRN_HD int64_t vector_head(uintptr_t addr, int64_t len) {
  if ((addr & 3) != 0) return -1;
  const int64_t head = static_cast<int64_t>(((16 - (addr & 15)) & 15) / 4);
  return head < len ? head : len;
}

CAIRN_HD int group_size_for(int64_t short_values, int64_t short_segments) {
  if (short_segments <= 0) return 32;
  const int64_t per_lane = 16;
  const int64_t lanes = (short_values + short_segments * per_lane - 1) / (short_segments * per_lane);
  int g = 1;
  while (g < lanes && g < 32) g <<= 1;
  return g;
}

}  // namespace cairn::gpu::segments
