// first/last, histograms, min/max/last downsampling and LTTB on the GPU (see cairn/charts_gpu.hpp).
//
// Exactness: counts are integer atomics (order-free); downsampling picks by (value, index) keys
// with the CPU's tie rules; LTTB's next-bucket sums run left to right in one thread, exactly as the
// CPU adds them, and its areas use __dsub_rn / __dmul_rn so that nvcc cannot contract them into
// fused multiply-adds (the CPU build has no FMA). The float bucket of downsample_minmax is a
// division then a multiplication, which cannot be contracted.
#include <cuda_runtime.h>

#include <math_constants.h>

#include <cstdint>
#include <type_traits>

#include "cairn/charts_gpu.hpp"
#include "cairn/charts_gpu_logic.hpp"
#include "cuda_check.cuh"

namespace cairn::gpu {

namespace {

using namespace cairn::gpu::charts;

constexpr unsigned kFull = 0xffffffffu;

template <class T>
__device__ __forceinline__ double at(const T* v, int64_t i) {
  return static_cast<double>(v[i]);
}

// ---- first / last: one warp per segment, 32 values per step from either end ------------------

template <class T>
__global__ void first_last_kernel(const T* __restrict__ values, const int64_t* __restrict__ offsets,
                                  int64_t nseg, double* first, double* last) {
  const int64_t seg = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (seg >= nseg) return;  // uniform across the warp
  const int64_t b = offsets[seg], e = offsets[seg + 1];
  if (first != nullptr) {
    double f = CUDART_NAN;
    for (int64_t base = b; base < e; base += 32) {
      const int64_t i = base + lane;
      const double v = i < e ? at(values, i) : CUDART_NAN;
      const unsigned ok = __ballot_sync(kFull, v == v);
      if (ok != 0) {
        f = __shfl_sync(kFull, v, __ffs(ok) - 1);
        break;
      }
    }
    if (lane == 0) first[seg] = f;
  }
  if (last != nullptr) {
    double l = CUDART_NAN;
    for (int64_t top = e; top > b; top -= 32) {
      const int64_t i = top - 1 - lane;  // lane 0 holds the highest index
      const double v = i >= b ? at(values, i) : CUDART_NAN;
      const unsigned ok = __ballot_sync(kFull, v == v);
      if (ok != 0) {
        l = __shfl_sync(kFull, v, __ffs(ok) - 1);
        break;
      }
    }
    if (lane == 0) last[seg] = l;
  }
}

// ---- histograms: tiles of values; a tile inside one segment counts in shared memory ----------


__device__ __forceinline__ void count_slot(int64_t seg, int64_t slot, int64_t nbins,
                                           int64_t* counts, int64_t* under, int64_t* over,
                                           int64_t* nan) {
  int64_t* target = slot < nbins        ? counts + seg * nbins + slot
                    : slot == nbins     ? under + seg
                    : slot == nbins + 1 ? over + seg
                                        : nan + seg;
  atomicAdd(reinterpret_cast<unsigned long long*>(target), 1ull);
}

template <class T>
__global__ void histogram_kernel(const T* __restrict__ values, int64_t begin, int64_t end,
                                 const int64_t* __restrict__ offsets, int64_t nseg,
                                 const double* __restrict__ edges, int64_t nedges, bool shared_ok,
                                 int64_t* counts, int64_t* under, int64_t* over, int64_t* nan) {
  extern __shared__ unsigned int local[];
  __shared__ int64_t seg_first, seg_last;
  const int64_t t0 = begin + static_cast<int64_t>(blockIdx.x) * kHistTile;
  const int64_t t1 = min(end, t0 + kHistTile);
  const int64_t nbins = nedges - 1, slots = nbins + 3;
  if (threadIdx.x == 0) {
    seg_first = segment_of(offsets, 0, nseg - 1, t0);
    seg_last = segment_of(offsets, seg_first, nseg - 1, t1 - 1);
  }
  __syncthreads();
  const bool privatize = shared_ok && seg_first == seg_last;
  if (privatize) {
    for (int64_t k = threadIdx.x; k < slots; k += blockDim.x) local[k] = 0;
    __syncthreads();
  }
  int64_t seg = seg_first;
  for (int64_t i = t0 + threadIdx.x; i < t1; i += blockDim.x) {
    const int64_t slot = slot_of(at(values, i), edges, nedges);
    if (privatize) {
      atomicAdd(&local[slot], 1u);
    } else {
      seg = segment_of(offsets, seg, seg_last, i);
      count_slot(seg, slot, nbins, counts, under, over, nan);
    }
  }
  if (privatize) {
    __syncthreads();
    for (int64_t k = threadIdx.x; k < slots; k += blockDim.x) {
      const unsigned int c = local[k];
      if (c == 0) continue;
      int64_t* target = k < nbins        ? counts + seg_first * nbins + k
                        : k == nbins     ? under + seg_first
                        : k == nbins + 1 ? over + seg_first
                                         : nan + seg_first;
      atomicAdd(reinterpret_cast<unsigned long long*>(target), static_cast<unsigned long long>(c));
    }
  }
}

// ---- downsampling: bucket starts by binary search, then one block per bucket --------------------

// starts[b] = first index whose bucket is >= b, for b in [0, nb]; bucket(x) is non-decreasing.
template <class X, class Bucket>
__global__ void bucket_starts_kernel(const X* __restrict__ x, int64_t n, Bucket bucket_of,
                                     int64_t* starts) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b > bucket_of.nb) return;
  starts[b] = bucket_start(x, n, bucket_of, b);
}


template <class Y>
__global__ void minmax_kernel(const Y* __restrict__ y, const int64_t* __restrict__ starts,
                              int64_t* triples) {
  __shared__ Pick lows[kPickThreads / 32], highs[kPickThreads / 32];
  const int64_t b = blockIdx.x;
  const int64_t s = starts[b], e = starts[b + 1];
  Pick lo{0.0, -1}, hi{0.0, -1};
  for (int64_t i = s + threadIdx.x; i < e; i += blockDim.x) {
    const double v = at(y, i);
    if (v != v) continue;
    lo = lower(lo, Pick{v, i});
    hi = higher(hi, Pick{v, i});
  }
  for (int d = 16; d > 0; d >>= 1) {
    lo = lower(lo, Pick{__shfl_down_sync(kFull, lo.v, d), __shfl_down_sync(kFull, lo.i, d)});
    hi = higher(hi, Pick{__shfl_down_sync(kFull, hi.v, d), __shfl_down_sync(kFull, hi.i, d)});
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) lows[warp] = lo, highs[warp] = hi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kPickThreads / 32; ++w) lo = lower(lo, lows[w]), hi = higher(hi, highs[w]);
    triples[3 * b] = lo.i;
    triples[3 * b + 1] = hi.i;
    triples[3 * b + 2] = e > s ? e - 1 : -1;
  }
}

// ---- LTTB ---------------------------------------------------------------------------------------

// Per bucket b: the mean x of the next bucket (or the last point) and the mean of its non-NaN y
// (has_y = 0 when there is none), summed left to right as the CPU does.
template <class X, class Y>
__global__ void lttb_corners_kernel(const X* __restrict__ x, const Y* __restrict__ y, int64_t n,
                                    int64_t nbuckets, double* cx, double* cy, int* has_y) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= nbuckets) return;
  const int64_t inner = n - 2;
  const int64_t nlo = lttb_start(b + 1, inner, nbuckets);
  const int64_t nhi = b + 1 < nbuckets ? lttb_start(b + 2, inner, nbuckets) : n;
  double sx = 0.0, sy = 0.0;
  int64_t ny = 0;
  for (int64_t k = nlo; k < nhi; ++k) {
    sx = add_rn(sx, x_offset(x, k));
    const double v = at(y, k);
    if (v == v) sy = add_rn(sy, v), ++ny;
  }
  cx[b] = div_rn(sx, static_cast<double>(nhi - nlo));
  cy[b] = ny > 0 ? div_rn(sy, static_cast<double>(ny)) : 0.0;
  has_y[b] = ny > 0;
}


// One block walks the buckets in order: the previous pick is the next triangle's first corner.
template <class X, class Y>
__global__ void lttb_pick_kernel(const X* __restrict__ x, const Y* __restrict__ y, int64_t n,
                                 int64_t nbuckets, const double* __restrict__ cxs,
                                 const double* __restrict__ cys, const int* __restrict__ has_y,
                                 int64_t* out) {
  __shared__ Area partial[kLttbThreads / 32];
  __shared__ int64_t chosen;
  const int64_t inner = n - 2;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int64_t a = 0;
  if (threadIdx.x == 0) out[0] = 0;
  for (int64_t b = 0; b < nbuckets; ++b) {
    const int64_t lo = lttb_start(b, inner, nbuckets), hi = lttb_start(b + 1, inner, nbuckets);
    const double ax = x_offset(x, a), ay = at(y, a);
    const double cx = cxs[b], cy = has_y[b] ? cys[b] : ay;
    Area best{-1.0, INT64_MAX};
    for (int64_t k = lo + threadIdx.x; k < hi; k += blockDim.x) {
      const double area = lttb_area(ax, ay, cx, cy, x_offset(x, k), at(y, k));
      if (area > best.a) best = Area{area, k};  // NaN never wins; ties keep the earlier k
    }
    for (int d = 16; d > 0; d >>= 1) {
      best = larger(best, Area{__shfl_down_sync(kFull, best.a, d),
                               __shfl_down_sync(kFull, best.k, d)});
    }
    if (lane == 0) partial[warp] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kLttbThreads / 32; ++w) best = larger(best, partial[w]);
      chosen = best.k == INT64_MAX ? lo : best.k;
      out[b + 1] = chosen;
    }
    __syncthreads();
    a = chosen;
    __syncthreads();  // `chosen` is rewritten in the next round only after every thread read it
  }
  if (threadIdx.x == 0) out[nbuckets + 1] = n - 1;
}

unsigned blocks_for(int64_t items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

void finish(cudaStream_t stream, const char* what) {
  check_cuda(cudaGetLastError(), what);
  check_cuda(cudaStreamSynchronize(stream), what);
}

template <class T>
void first_last(const T* values, const int64_t* offsets, int64_t nseg, double* first, double* last,
                cudaStream_t stream) {
  first_last_kernel<T><<<blocks_for(nseg * 32, 256), 256, 0, stream>>>(values, offsets, nseg,
                                                                        first, last);
}

template <class T>
void histogram(const T* values, const int64_t* offsets, int64_t nseg, const double* edges,
               int64_t nedges, int64_t* counts, int64_t* under, int64_t* over, int64_t* nan,
               cudaStream_t stream) {
  int64_t ends[2] = {0, 0};
  check_cuda(cudaMemcpyAsync(&ends[0], offsets, 8, cudaMemcpyDeviceToHost, stream),
             "reading the first offset");
  check_cuda(cudaMemcpyAsync(&ends[1], offsets + nseg, 8, cudaMemcpyDeviceToHost, stream),
             "reading the last offset");
  check_cuda(cudaStreamSynchronize(stream), "reading the offsets");
  if (ends[1] <= ends[0]) return;
  const int64_t slots = nedges + 2;
  const bool shared_ok = slots <= kSharedSlots;
  const size_t smem = shared_ok ? static_cast<size_t>(slots) * sizeof(unsigned int) : 0;
  histogram_kernel<T><<<blocks_for(ends[1] - ends[0], kHistTile), kHistThreads, smem, stream>>>(
      values, ends[0], ends[1], offsets, nseg, edges, nedges, shared_ok, counts, under, over, nan);
}

template <class X, class Y, class Bucket>
void minmax(const X* x, const Y* y, int64_t n, Bucket bucket_of, int64_t* triples,
            cudaStream_t stream) {
  const int64_t nb = bucket_of.nb;
  int64_t* starts = nullptr;
  check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&starts), (nb + 1) * 8, stream),
             "allocating bucket starts");
  bucket_starts_kernel<X, Bucket><<<blocks_for(nb + 1, 256), 256, 0, stream>>>(x, n, bucket_of,
                                                                              starts);
  minmax_kernel<Y><<<static_cast<unsigned>(nb), kPickThreads, 0, stream>>>(y, starts, triples);
  check_cuda(cudaFreeAsync(starts, stream), "freeing bucket starts");
}

template <class X, class Y>
void downsample(const X* x, const Y* y, int64_t n, int64_t n_out, int64_t* triples,
                cudaStream_t stream) {
  const int64_t nb = n_out / 3;
  X ends[2];
  check_cuda(cudaMemcpyAsync(&ends[0], x, sizeof(X), cudaMemcpyDeviceToHost, stream), "reading x");
  check_cuda(cudaMemcpyAsync(&ends[1], x + n - 1, sizeof(X), cudaMemcpyDeviceToHost, stream),
             "reading x");
  check_cuda(cudaStreamSynchronize(stream), "reading x");
  if constexpr (std::is_integral_v<X>) {
    const uint64_t span = static_cast<uint64_t>(ends[1]) - static_cast<uint64_t>(ends[0]);
    const BucketOfInt bucket_of{static_cast<int64_t>(ends[0]),
                                static_cast<unsigned __int128>(span) + 1, nb};
    minmax(x, y, n, bucket_of, triples, stream);
  } else {
    const double x0 = static_cast<double>(ends[0]);
    minmax(x, y, n, BucketOfFloat{x0, static_cast<double>(ends[1]) - x0, nb}, triples, stream);
  }
}

template <class X, class Y>
void lttb_run(const X* x, const Y* y, int64_t n, int64_t n_out, int64_t* out, cudaStream_t stream) {
  const int64_t nbuckets = n_out - 2;
  double* scratch = nullptr;
  check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&scratch), nbuckets * 20, stream),
             "allocating LTTB scratch");
  double* cx = scratch;
  double* cy = scratch + nbuckets;
  int* has_y = reinterpret_cast<int*>(scratch + 2 * nbuckets);
  lttb_corners_kernel<X, Y><<<blocks_for(nbuckets, 128), 128, 0, stream>>>(x, y, n, nbuckets, cx,
                                                                          cy, has_y);
  lttb_pick_kernel<X, Y><<<1, kLttbThreads, 0, stream>>>(x, y, n, nbuckets, cx, cy, has_y, out);
  check_cuda(cudaFreeAsync(scratch, stream), "freeing LTTB scratch");
}

template <class F>
void with_y(const void* y, ValueType type, F&& f) {
  if (type == ValueType::Float32) f(static_cast<const float*>(y));
  else f(static_cast<const double*>(y));
}

template <class F>
void with_xy(const void* x, XType xtype, const void* y, ValueType ytype, F&& f) {
  with_y(y, ytype, [&](auto yp) {
    if (xtype == XType::Int64) f(static_cast<const int64_t*>(x), yp);
    else f(static_cast<const double*>(x), yp);
  });
}

}  // namespace

void segment_first_last_device(const void* values, ValueType type, const int64_t* offsets,
                               int64_t nseg, double* first, double* last, uintptr_t stream) {
  require_gpu();
  if (nseg <= 0 || (first == nullptr && last == nullptr)) return;
  const cudaStream_t s = as_stream(stream);
  with_y(values, type, [&](auto v) { first_last(v, offsets, nseg, first, last, s); });
  finish(s, "taking first/last per segment on the GPU");
}

void segment_histogram_device(const void* values, ValueType type, const int64_t* offsets,
                              int64_t nseg, const double* edges, int64_t nedges, int64_t* counts,
                              int64_t* underflow, int64_t* overflow, int64_t* nan_count,
                              uintptr_t stream) {
  require_gpu();
  if (nseg <= 0) return;
  const cudaStream_t s = as_stream(stream);
  const size_t n8 = static_cast<size_t>(nseg) * 8;
  check_cuda(cudaMemsetAsync(counts, 0, n8 * static_cast<size_t>(nedges - 1), s), "zeroing counts");
  check_cuda(cudaMemsetAsync(underflow, 0, n8, s), "zeroing counts");
  check_cuda(cudaMemsetAsync(overflow, 0, n8, s), "zeroing counts");
  check_cuda(cudaMemsetAsync(nan_count, 0, n8, s), "zeroing counts");
  with_y(values, type, [&](auto v) {
    histogram(v, offsets, nseg, edges, nedges, counts, underflow, overflow, nan_count, s);
  });
  finish(s, "counting histograms on the GPU");
}

void downsample_minmax_device(const void* x, XType xtype, const void* y, ValueType ytype,
                              int64_t n, int64_t n_out, int64_t* triples, uintptr_t stream) {
  require_gpu();
  if (n_out < 3 || n <= n_out) return;
  const cudaStream_t s = as_stream(stream);
  with_xy(x, xtype, y, ytype, [&](auto xp, auto yp) { downsample(xp, yp, n, n_out, triples, s); });
  finish(s, "downsampling (min/max/last) on the GPU");
}

void lttb_device(const void* x, XType xtype, const void* y, ValueType ytype, int64_t n,
                 int64_t n_out, int64_t* indices, uintptr_t stream) {
  require_gpu();
  if (n_out < 3 || n <= n_out) return;
  const cudaStream_t s = as_stream(stream);
  with_xy(x, xtype, y, ytype, [&](auto xp, auto yp) { lttb_run(xp, yp, n, n_out, indices, s); });
  finish(s, "downsampling (LTTB) on the GPU");
}

}  // namespace cairn::gpu
