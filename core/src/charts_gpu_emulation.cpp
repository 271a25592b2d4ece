// Host emulation of cuda/charts_gpu.cu for tests on machines without a GPU: the same tiles,
// privatisation, bucket searches and per-thread picks, with the arithmetic of
// cairn/charts_gpu_logic.hpp that the kernels use.
#include <cstdint>
#include <vector>

#include "cairn/charts_gpu.hpp"
#include "cairn/charts_gpu_logic.hpp"

namespace cairn::gpu {

using namespace cairn::gpu::charts;

void segment_histogram_host_emulation(const double* values, const int64_t* offsets, int64_t nseg,
                                      const double* edges, int64_t nedges, int64_t* counts,
                                      int64_t* under, int64_t* over, int64_t* nan) {
  const int64_t nbins = nedges - 1, slots = nbins + 3;
  for (int64_t k = 0; k < nseg * nbins; ++k) counts[k] = 0;
  for (int64_t s = 0; s < nseg; ++s) under[s] = over[s] = nan[s] = 0;
  if (nseg <= 0) return;
  auto target = [&](int64_t seg, int64_t slot) -> int64_t& {
    return slot < nbins ? counts[seg * nbins + slot]
           : slot == nbins ? under[seg]
           : slot == nbins + 1 ? over[seg]
                               : nan[seg];
  };
  const int64_t begin = offsets[0], end = offsets[nseg];
  const bool shared_ok = slots <= kSharedSlots;
  std::vector<int64_t> local(static_cast<size_t>(slots));
  for (int64_t t0 = begin; t0 < end; t0 += kHistTile) {  // one block
    const int64_t t1 = t0 + kHistTile < end ? t0 + kHistTile : end;
    const int64_t seg_first = segment_of(offsets, 0, nseg - 1, t0);
    const int64_t seg_last = segment_of(offsets, seg_first, nseg - 1, t1 - 1);
    const bool privatize = shared_ok && seg_first == seg_last;
    if (privatize) local.assign(local.size(), 0);
    for (int tid = 0; tid < kHistThreads; ++tid) {
      int64_t seg = seg_first;
      for (int64_t i = t0 + tid; i < t1; i += kHistThreads) {
        const int64_t slot = slot_of(values[i], edges, nedges);
        if (privatize) {
          ++local[static_cast<size_t>(slot)];
        } else {
          seg = segment_of(offsets, seg, seg_last, i);
          ++target(seg, slot);
        }
      }
    }
    if (privatize) {
      for (int64_t k = 0; k < slots; ++k) target(seg_first, k) += local[static_cast<size_t>(k)];
    }
  }
}

namespace {

template <class X, class Bucket>
void minmax_emulation(const X* x, const double* y, int64_t n, const Bucket& bucket_of,
                      int64_t* triples) {
  const int64_t nb = bucket_of.nb;
  std::vector<int64_t> starts(static_cast<size_t>(nb + 1));
  for (int64_t b = 0; b <= nb; ++b) {
    starts[static_cast<size_t>(b)] = bucket_start(x, n, bucket_of, b);
  }
  for (int64_t b = 0; b < nb; ++b) {  // one block
    const int64_t s = starts[static_cast<size_t>(b)], e = starts[static_cast<size_t>(b + 1)];
    Pick lo{0.0, -1}, hi{0.0, -1};
    for (int tid = 0; tid < kPickThreads; ++tid) {
      Pick tlo{0.0, -1}, thi{0.0, -1};
      for (int64_t i = s + tid; i < e; i += kPickThreads) {
        const double v = y[i];
        if (v != v) continue;
        tlo = lower(tlo, Pick{v, i});
        thi = higher(thi, Pick{v, i});
      }
      lo = lower(lo, tlo);
      hi = higher(hi, thi);
    }
    triples[3 * b] = lo.i;
    triples[3 * b + 1] = hi.i;
    triples[3 * b + 2] = e > s ? e - 1 : -1;
  }
}

template <class X>
void lttb_emulation(const X* x, const double* y, int64_t n, int64_t n_out, int64_t* out) {
  const int64_t nbuckets = n_out - 2, inner = n - 2;
  std::vector<double> cxs(static_cast<size_t>(nbuckets)), cys(static_cast<size_t>(nbuckets));
  std::vector<int> has_y(static_cast<size_t>(nbuckets));
  for (int64_t b = 0; b < nbuckets; ++b) {  // one thread each
    const int64_t nlo = lttb_start(b + 1, inner, nbuckets);
    const int64_t nhi = b + 1 < nbuckets ? lttb_start(b + 2, inner, nbuckets) : n;
    double sx = 0.0, sy = 0.0;
    int64_t ny = 0;
    for (int64_t k = nlo; k < nhi; ++k) {
      sx = add_rn(sx, x_offset(x, k));
      const double v = y[k];
      if (v == v) sy = add_rn(sy, v), ++ny;
    }
    cxs[static_cast<size_t>(b)] = div_rn(sx, static_cast<double>(nhi - nlo));
    cys[static_cast<size_t>(b)] = ny > 0 ? div_rn(sy, static_cast<double>(ny)) : 0.0;
    has_y[static_cast<size_t>(b)] = ny > 0;
  }
  int64_t a = 0;
  out[0] = 0;
  for (int64_t b = 0; b < nbuckets; ++b) {
    const int64_t lo = lttb_start(b, inner, nbuckets), hi = lttb_start(b + 1, inner, nbuckets);
    const double ax = x_offset(x, a), ay = y[a];
    const double cx = cxs[static_cast<size_t>(b)];
    const double cy = has_y[static_cast<size_t>(b)] ? cys[static_cast<size_t>(b)] : ay;
    Area block{-1.0, INT64_MAX};
    for (int tid = 0; tid < kLttbThreads; ++tid) {
      Area best{-1.0, INT64_MAX};
      for (int64_t k = lo + tid; k < hi; k += kLttbThreads) {
        const double area = lttb_area(ax, ay, cx, cy, x_offset(x, k), y[k]);
        if (area > best.a) best = Area{area, k};
      }
      block = larger(block, best);
    }
    a = block.k == INT64_MAX ? lo : block.k;
    out[b + 1] = a;
  }
  out[nbuckets + 1] = n - 1;
}

}  // namespace

void downsample_minmax_host_emulation(const void* x, XType xtype, const double* y, int64_t n,
                                      int64_t n_out, int64_t* triples) {
  if (n_out < 3 || n <= n_out) return;
  const int64_t nb = n_out / 3;
  if (xtype == XType::Int64) {
    const auto* xi = static_cast<const int64_t*>(x);
    const uint64_t span = static_cast<uint64_t>(xi[n - 1]) - static_cast<uint64_t>(xi[0]);
    minmax_emulation(xi, y, n, BucketOfInt{xi[0], static_cast<unsigned __int128>(span) + 1, nb},
                     triples);
  } else {
    const auto* xf = static_cast<const double*>(x);
    minmax_emulation(xf, y, n, BucketOfFloat{xf[0], xf[n - 1] - xf[0], nb}, triples);
  }
}

void lttb_host_emulation(const void* x, XType xtype, const double* y, int64_t n, int64_t n_out,
                         int64_t* indices) {
  if (n_out < 3 || n <= n_out) return;
  if (xtype == XType::Int64) lttb_emulation(static_cast<const int64_t*>(x), y, n, n_out, indices);
  else lttb_emulation(static_cast<const double*>(x), y, n, n_out, indices);
}

}  // namespace cairn::gpu
