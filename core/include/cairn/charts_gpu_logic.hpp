// The arithmetic and searches of the chart/histogram kernels (cuda/charts_gpu.cu), compiled for the
// device and for the host, so that the host emulation (src/charts_gpu_emulation.cpp) runs exactly
// the code the kernels run. On the device the float64 operations are the explicitly rounded
// intrinsics (never contracted into FMAs); on the host they are plain operators (the x86-64 build
// has no FMA instructions).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#ifdef __CUDACC__
#define CAIRN_HD __host__ __device__ __forceinline__
#else
#define CAIRN_HD inline
#endif

namespace cairn::gpu::charts {

// Launch shapes, shared with the host emulation so that it splits the work the same way.
constexpr int kHistThreads = 256;
constexpr int64_t kHistTile = 8192;     // values per histogram block
constexpr int64_t kSharedSlots = 8192;  // bins + underflow, overflow, NaN that fit in shared memory
constexpr int kPickThreads = 256;       // threads per downsampling bucket
constexpr int kLttbThreads = 512;       // the one block that walks LTTB's buckets

CAIRN_HD double sub_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
CAIRN_HD double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
CAIRN_HD double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
CAIRN_HD double div_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// Segment s in [lo, hi] with offsets[s] <= i (the last such; offsets[hi + 1] > i is the caller's).
CAIRN_HD int64_t segment_of(const int64_t* offsets, int64_t lo, int64_t hi, int64_t i) {
  int64_t first = lo, count = hi - lo + 1;
  while (count > 0) {
    const int64_t step = count / 2, mid = first + step;
    if (offsets[mid] <= i) {
      first = mid + 1;
      count -= step + 1;
    } else {
      count = step;
    }
  }
  return first - 1;
}

// Histogram slot of v: bin j in [0, nbins), nbins = underflow, nbins + 1 = overflow, nbins + 2 =
// NaN. Bins are [e_j, e_j+1) and the last one is closed (numpy's rule), found by binary search.
CAIRN_HD int64_t slot_of(double v, const double* edges, int64_t nedges) {
  const int64_t nbins = nedges - 1;
  const double lo = edges[0], hi = edges[nedges - 1];
  if (v != v) return nbins + 2;
  if (v < lo) return nbins;
  if (v > hi) return nbins + 1;
  if (v == hi) return nbins - 1;
  int64_t first = 0, count = nedges;  // upper_bound(edges, v) - 1
  while (count > 0) {
    const int64_t step = count / 2, mid = first + step;
    if (edges[mid] <= v) {
      first = mid + 1;
      count -= step + 1;
    } else {
      count = step;
    }
  }
  return first - 1;
}

// downsample_minmax buckets: equal ranges of x between x[0] and x[n-1] (the CPU's formulas).
struct BucketOfInt {
  int64_t x0;
  unsigned __int128 width;  // x[n-1] - x[0] + 1
  int64_t nb;
  CAIRN_HD int64_t operator()(int64_t x) const {
    const uint64_t dx = static_cast<uint64_t>(x) - static_cast<uint64_t>(x0);
    return static_cast<int64_t>((static_cast<unsigned __int128>(dx) * static_cast<uint64_t>(nb)) /
                                width);
  }
};

struct BucketOfFloat {
  double x0;
  double span;
  int64_t nb;
  CAIRN_HD int64_t operator()(double x) const {
    if (span <= 0.0) return 0;
    const double b = floor(mul_rn(div_rn(sub_rn(x, x0), span), static_cast<double>(nb)));
    const int64_t k = static_cast<int64_t>(b);
    return k < nb - 1 ? k : nb - 1;
  }
};

// First index in [0, n) whose bucket is >= b (bucket(x) does not decrease along sorted x).
template <class X, class Bucket>
CAIRN_HD int64_t bucket_start(const X* x, int64_t n, const Bucket& bucket_of, int64_t b) {
  int64_t first = 0, count = n;
  while (count > 0) {
    const int64_t step = count / 2, mid = first + step;
    if (bucket_of(x[mid]) < b) {
      first = mid + 1;
      count -= step + 1;
    } else {
      count = step;
    }
  }
  return first;
}

struct Pick {
  double v;
  int64_t i;  // -1: nothing
};

// Smaller v wins, then the smaller index (the CPU's first occurrence); -1 loses.
CAIRN_HD Pick lower(Pick a, Pick b) {
  if (a.i < 0) return b;
  if (b.i < 0) return a;
  if (b.v < a.v || (b.v == a.v && b.i < a.i)) return b;
  return a;
}
CAIRN_HD Pick higher(Pick a, Pick b) {
  if (a.i < 0) return b;
  if (b.i < 0) return a;
  if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
  return a;
}

// LTTB: x as float64 offsets from x[0] (integers subtracted exactly first), bucket starts, areas.
template <class X>
CAIRN_HD double x_offset(const X* x, int64_t i) {
  if constexpr (std::is_integral_v<X>) {
    return static_cast<double>(static_cast<uint64_t>(x[i]) - static_cast<uint64_t>(x[0]));
  } else {
    return sub_rn(static_cast<double>(x[i]), static_cast<double>(x[0]));
  }
}

CAIRN_HD int64_t lttb_start(int64_t b, int64_t inner, int64_t nbuckets) {
  const unsigned __int128 scaled = static_cast<unsigned __int128>(b) * static_cast<uint64_t>(inner);
  return 1 + static_cast<int64_t>(scaled / static_cast<uint64_t>(nbuckets));
}

// |(ax - cx) * (yk - ay) - (ax - xk) * (cy - ay)|, each operation rounded on its own.
CAIRN_HD double lttb_area(double ax, double ay, double cx, double cy, double xk, double yk) {
  const double t1 = mul_rn(sub_rn(ax, cx), sub_rn(yk, ay));
  const double t2 = mul_rn(sub_rn(ax, xk), sub_rn(cy, ay));
  return fabs(sub_rn(t1, t2));
}

struct Area {
  double a;  // -1: none yet (NaN areas never count)
  int64_t k;
};

// The larger area wins, then the smaller index.
CAIRN_HD Area larger(Area p, Area q) {
  if (q.a > p.a || (q.a == p.a && q.k < p.k)) return q;
  return p;
}

}  // namespace cairn::gpu::charts
