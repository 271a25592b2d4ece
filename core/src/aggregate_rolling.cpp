// Trailing-window statistics per segment. Each segment is cut into window-sized blocks; the
// window ending at i is (suffix of the previous block from the window start) merged with (prefix
// of i's block up to i). Prefixes and suffixes are exact running moments, so nothing is ever
// subtracted out of an accumulator and an infinity or a huge value leaves no trace.
#include <stdexcept>

#include "aggregate_internal.hpp"

namespace cairn::agg {

namespace {

struct Running {
  int64_t count = 0;
  double sum = 0.0;
  double shift = 0.0;  // first value added; mean is the mean of (x - shift), as in Moments
  double mean = 0.0;
  double m2 = 0.0;
  double min = detail::kInf;
  double max = -detail::kInf;

  void add(double v) {  // Welford's update, shifted; NaN skipped
    if (v != v) return;
    if (count == 0) shift = v;
    ++count;
    sum += v;
    const double d = v - shift;
    const double delta = d - mean;
    mean += delta / static_cast<double>(count);
    m2 += delta * (d - mean);
    min = v < min ? v : min;
    max = v > max ? v : max;
  }
};

Running merged(const Running& a, const Running& b) {  // Chan et al.
  if (a.count == 0) return b;
  if (b.count == 0) return a;
  Running r;
  const double na = static_cast<double>(a.count), nb = static_cast<double>(b.count);
  const double delta = (b.shift - a.shift) + (b.mean - a.mean);
  r.count = a.count + b.count;
  r.sum = a.sum + b.sum;
  r.shift = a.shift;
  r.mean = a.mean + delta * (nb / (na + nb));
  r.m2 = a.m2 + b.m2 + delta * delta * (na * nb / (na + nb));
  r.min = b.min < a.min ? b.min : a.min;
  r.max = b.max > a.max ? b.max : a.max;
  return r;
}

void write_window(const RollingOutputs& out, int64_t i, const Running& r, int64_t min_periods, int ddof) {
  if (out.count) out.count[i] = r.count;
  const bool ok = r.count >= min_periods && r.count > 0;
  const double n = static_cast<double>(r.count);
  if (out.sum) out.sum[i] = ok ? r.sum : detail::kNaN;
  if (out.mean) out.mean[i] = ok ? r.sum / n : detail::kNaN;
  if (out.var || out.std) {
    const double var = ok && r.count - ddof > 0 ? r.m2 / static_cast<double>(r.count - ddof) : detail::kNaN;
    if (out.var) out.var[i] = var;
    if (out.std) out.std[i] = std::sqrt(var);
  }
  if (out.min) out.min[i] = ok ? r.min : detail::kNaN;
  if (out.max) out.max[i] = ok ? r.max : detail::kNaN;
}

// A run of consecutive blocks of one segment, the unit of parallel work.
struct BlockRun {
  int64_t seg_begin;
  int64_t seg_end;
  int64_t first_block;
  int64_t last_block;  // exclusive
};

}  // namespace

template <class T>
void rolling(const T* values, int64_t n, const int64_t* offsets, int64_t nseg, int64_t window,
             int64_t min_periods, int ddof, const RollingOutputs& out, int threads) {
  validate_offsets(offsets, nseg, n);
  if (window < 1) throw std::invalid_argument("window must be >= 1");
  if (min_periods < 0) throw std::invalid_argument("min_periods must be >= 0");
  if (ddof < 0) throw std::invalid_argument("ddof must be >= 0");
  const Running none;
  for (int64_t i = 0; i < offsets[0]; ++i) write_window(out, i, none, 1, ddof);
  for (int64_t i = offsets[nseg]; i < n; ++i) write_window(out, i, none, 1, ddof);
  const int64_t blocks_per_run = std::max<int64_t>(1, kPartSize / window);
  std::vector<BlockRun> runs;
  for (int64_t s = 0; s < nseg; ++s) {
    const int64_t len = offsets[s + 1] - offsets[s];
    const int64_t nblocks = (len + window - 1) / window;
    for (int64_t b = 0; b < nblocks; b += blocks_per_run) {
      runs.push_back(BlockRun{offsets[s], offsets[s + 1], b, std::min(nblocks, b + blocks_per_run)});
    }
  }
  const int nthreads = offsets[nseg] - offsets[0] < kPartSize ? 1 : resolve_threads(threads);
  std::vector<std::vector<Running>> suffixes(static_cast<size_t>(nthreads));
  detail::parallel_for(static_cast<int64_t>(runs.size()), nthreads, [&](int64_t r, int worker) {
    const BlockRun& run = runs[static_cast<size_t>(r)];
    std::vector<Running>& suffix = suffixes[static_cast<size_t>(worker)];
    suffix.resize(static_cast<size_t>(window) + 1);
    for (int64_t blk = run.first_block; blk < run.last_block; ++blk) {
      const int64_t b0 = run.seg_begin + blk * window;
      const int64_t b1 = std::min(run.seg_end, b0 + window);
      const bool has_prev = blk > 0;
      if (has_prev) {  // suffix[j]: moments of values[b0 - window + j, b0)
        suffix[static_cast<size_t>(window)] = Running{};
        for (int64_t j = window - 1; j >= 0; --j) {
          suffix[static_cast<size_t>(j)] = suffix[static_cast<size_t>(j + 1)];
          suffix[static_cast<size_t>(j)].add(static_cast<double>(values[b0 - window + j]));
        }
      }
      Running prefix;
      for (int64_t i = b0; i < b1; ++i) {
        prefix.add(static_cast<double>(values[i]));
        // window start i - window + 1 lies in the previous block unless i is the block's last slot
        const int64_t j = i - b0 + 1;  // offset of the window start inside the previous block
        const Running w = has_prev && j < window ? merged(suffix[static_cast<size_t>(j)], prefix) : prefix;
        write_window(out, i, w, min_periods, ddof);
      }
    }
  });
}

template <class T, class Id>
void rolling_by_ids(const T* values, int64_t n, const Id* ids, int64_t nseg, int64_t window,
                    int64_t min_periods, int ddof, const RollingOutputs& out, int threads) {
  const Grouped<T> g = group_by_ids(values, n, ids, nseg, true, threads);
  // Outputs are computed in grouped order, then scattered back to the values' positions.
  std::vector<int64_t> count(out.count ? static_cast<size_t>(n) : 0);
  std::vector<double> grouped[6];
  double* const targets[6] = {out.sum, out.mean, out.var, out.std, out.min, out.max};
  RollingOutputs tmp;
  tmp.count = out.count ? count.data() : nullptr;
  double** slots[6] = {&tmp.sum, &tmp.mean, &tmp.var, &tmp.std, &tmp.min, &tmp.max};
  for (int k = 0; k < 6; ++k) {
    if (targets[k]) {
      grouped[k].resize(static_cast<size_t>(n));
      *slots[k] = grouped[k].data();
    }
  }
  rolling(g.values.data(), n, g.offsets.data(), nseg, window, min_periods, ddof, tmp, threads);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t dst = g.order[static_cast<size_t>(i)];
    if (out.count) out.count[dst] = count[static_cast<size_t>(i)];
    for (int k = 0; k < 6; ++k) {
      if (targets[k]) targets[k][dst] = grouped[k][static_cast<size_t>(i)];
    }
  }
}

template void rolling<float>(const float*, int64_t, const int64_t*, int64_t, int64_t, int64_t, int,
                             const RollingOutputs&, int);
template void rolling<double>(const double*, int64_t, const int64_t*, int64_t, int64_t, int64_t, int,
                              const RollingOutputs&, int);

#define CAIRN_AGG_ROLLING_IDS(T, Id)                                                                      \
  template void rolling_by_ids<T, Id>(const T*, int64_t, const Id*, int64_t, int64_t, int64_t, int, \
                                      const RollingOutputs&, int);
CAIRN_AGG_ROLLING_IDS(float, int32_t)
CAIRN_AGG_ROLLING_IDS(float, int64_t)
CAIRN_AGG_ROLLING_IDS(double, int32_t)
CAIRN_AGG_ROLLING_IDS(double, int64_t)
#undef CAIRN_AGG_ROLLING_IDS

}  // namespace cairn::agg
