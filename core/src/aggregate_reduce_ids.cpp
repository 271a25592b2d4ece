// Segmented reductions over per-value segment ids (unsorted).
//
// Up to kDirectMaxSegments segments, values are folded straight into per-segment states: the
// value array is cut into fixed chunks (their number depends on n only, never on the thread
// count), each chunk folds its values in index order with Welford's update into its own table of
// nseg states, and the tables are then merged chunk by chunk with Chan's update. Beyond that many
// segments the state tables would not fit in cache, so the values are regrouped by a stable
// counting sort and reduced by the CSR kernel instead.
#include <stdexcept>
#include <string>

#include "aggregate_internal.hpp"

namespace cairn::agg {

namespace {

constexpr int64_t kDirectMaxSegments = int64_t{1} << 16;
constexpr int64_t kChunkSize = int64_t{1} << 20;
constexpr int64_t kMaxChunks = 32;

template <class T, class Id>
void fold_chunk(const T* values, const Id* ids, int64_t a, int64_t b, int64_t nseg, detail::Moments* table,
                bool want_m2) {
  for (int64_t i = a; i < b; ++i) {
    const int64_t id = static_cast<int64_t>(ids[i]);
    if (id < 0 || id >= nseg) {
      throw std::invalid_argument("segment id " + std::to_string(id) + " at index " + std::to_string(i) +
                                  " is outside [0, " + std::to_string(nseg) + ")");
    }
    detail::Moments& m = table[id];
    const double v = static_cast<double>(values[i]);
    if (v != v) {
      ++m.nan_count;
      continue;
    }
    if (m.count == 0) m.first = v;
    m.last = v;
    ++m.count;
    detail::compensated_add(m.sum, m.comp, v);
    m.min = v < m.min ? v : m.min;
    m.max = v > m.max ? v : m.max;
    if (want_m2) {
      const double delta = v - m.mean;
      m.mean += delta / static_cast<double>(m.count);
      m.m2 += delta * (v - m.mean);
    }
  }
}

}  // namespace

template <class T, class Id>
void segment_reduce_by_ids(const T* values, int64_t n, const Id* ids, int64_t nseg,
                           const ReduceOutputs& out, int ddof, int threads) {
  if (nseg < 0) throw std::invalid_argument("num_segments must be >= 0");
  if (ddof < 0) throw std::invalid_argument("ddof must be >= 0");
  if (nseg > kDirectMaxSegments) {
    const Grouped<T> g = group_by_ids(values, n, ids, nseg, false, threads);
    segment_reduce(g.values.data(), n, g.offsets.data(), nseg, out, ddof, threads);
    return;
  }
  const bool want_m2 = out.var != nullptr || out.std != nullptr;
  const int64_t nchunks = std::clamp<int64_t>((n + kChunkSize - 1) / kChunkSize, 1, kMaxChunks);
  const int64_t chunk = (n + nchunks - 1) / nchunks;
  std::vector<detail::Moments> tables(static_cast<size_t>(nchunks * nseg));
  const int nthreads = resolve_threads(threads);
  detail::parallel_for(nchunks, nthreads, [&](int64_t c, int) {
    fold_chunk(values, ids, c * chunk, std::min(n, (c + 1) * chunk), nseg, tables.data() + c * nseg, want_m2);
  });
  const int64_t span = 1024;  // segments per merge task
  detail::parallel_for((nseg + span - 1) / span, nthreads, [&](int64_t t, int) {
    for (int64_t s = t * span; s < std::min(nseg, (t + 1) * span); ++s) {
      detail::Moments acc = tables[static_cast<size_t>(s)];
      for (int64_t c = 1; c < nchunks; ++c) detail::merge_into(acc, tables[static_cast<size_t>(c * nseg + s)]);
      detail::write_result(out, s, acc, ddof);
    }
  });
}

#define CAIRN_AGG_IDS(T, Id)                                                                                \
  template void segment_reduce_by_ids<T, Id>(const T*, int64_t, const Id*, int64_t, const ReduceOutputs&, \
                                             int, int);
CAIRN_AGG_IDS(float, int32_t)
CAIRN_AGG_IDS(float, int64_t)
CAIRN_AGG_IDS(double, int32_t)
CAIRN_AGG_IDS(double, int64_t)
#undef CAIRN_AGG_IDS

}  // namespace cairn::agg
