// Segmented reductions over per-value segment ids (unsorted).
//
// Up to kDirectMaxSegments segments, values are folded straight into per-segment states: the
// value array is cut into fixed chunks (their number depends on n only, never on the thread
// count), each chunk folds its values in index order into its own table of nseg states (see
// fold_chunk), and the tables are then merged chunk by chunk with Chan's update. Beyond that many
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
constexpr int64_t kWindow = int64_t{1} << 15;  // values regrouped at a time, in cache
constexpr int64_t kShortRun = 32;              // shorter runs are folded value by value

// Per-worker scratch for regrouping one window of values by segment.
template <class T>
struct WindowScratch {
  std::vector<int32_t> count, start, cursor;  // per segment
  std::vector<int64_t> touched;               // segments present in the window
  std::vector<T> grouped;
};

// With many segments the runs inside a window are too short to pay for regrouping: values are
// then added one by one to their segment's state (Welford, shifted).
template <class T, class Id>
void fold_values(const T* values, const Id* ids, int64_t a, int64_t b, int64_t nseg, detail::Moments* table,
                 bool want_m2) {
  for (int64_t i = a; i < b; ++i) {
    const int64_t id = static_cast<int64_t>(ids[i]);
    if (id < 0 || id >= nseg) {
      throw std::invalid_argument("segment id " + std::to_string(id) + " at index " + std::to_string(i) +
                                  " is outside [0, " + std::to_string(nseg) + ")");
    }
    detail::add_value(table[id], static_cast<double>(values[i]), want_m2);
  }
}

// Folds values[a, b) into table (one state per segment). Each window of kWindow values is
// regrouped by segment in cache (stable), then every segment's run is summarised at once: exact
// two-pass block moments for long runs, Welford for short ones, and merged into the table with
// Chan's update. Long runs (few segments, or one huge one) thus vectorise and stay as accurate as
// the CSR path.
template <class T, class Id>
void fold_chunk(const T* values, const Id* ids, int64_t a, int64_t b, int64_t nseg, detail::Moments* table,
                bool want_m2, WindowScratch<T>& w) {
  if (nseg > kWindow / kShortRun) {
    fold_values(values, ids, a, b, nseg, table, want_m2);
    return;
  }
  w.count.assign(static_cast<size_t>(nseg), 0);
  w.start.resize(static_cast<size_t>(nseg));
  w.cursor.resize(static_cast<size_t>(nseg));
  w.grouped.resize(static_cast<size_t>(std::min(kWindow, b - a)));
  for (int64_t w0 = a; w0 < b; w0 += kWindow) {
    const int64_t w1 = std::min(b, w0 + kWindow);
    w.touched.clear();
    for (int64_t i = w0; i < w1; ++i) {
      const int64_t id = static_cast<int64_t>(ids[i]);
      if (id < 0 || id >= nseg) {
        throw std::invalid_argument("segment id " + std::to_string(id) + " at index " + std::to_string(i) +
                                    " is outside [0, " + std::to_string(nseg) + ")");
      }
      if (w.count[static_cast<size_t>(id)]++ == 0) w.touched.push_back(id);
    }
    int32_t pos = 0;
    for (int64_t id : w.touched) {
      w.start[static_cast<size_t>(id)] = w.cursor[static_cast<size_t>(id)] = pos;
      pos += w.count[static_cast<size_t>(id)];
    }
    for (int64_t i = w0; i < w1; ++i) {
      w.grouped[static_cast<size_t>(w.cursor[static_cast<size_t>(ids[i])]++)] = values[i];
    }
    for (int64_t id : w.touched) {
      const int64_t r0 = w.start[static_cast<size_t>(id)];
      const int64_t len = w.count[static_cast<size_t>(id)];
      w.count[static_cast<size_t>(id)] = 0;
      const T* run = w.grouped.data() + r0;
      detail::Moments m;
      if (len >= kShortRun) {
        m = detail::range_moments(run, 0, len, want_m2);
      } else {
        for (int64_t k = 0; k < len; ++k) detail::add_value(m, static_cast<double>(run[k]), want_m2);
      }
      detail::merge_into(table[id], m);
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
  std::vector<WindowScratch<T>> scratch(static_cast<size_t>(nthreads));
  detail::parallel_for(nchunks, nthreads, [&](int64_t c, int worker) {
    fold_chunk(values, ids, c * chunk, std::min(n, (c + 1) * chunk), nseg, tables.data() + c * nseg, want_m2,
               scratch[static_cast<size_t>(worker)]);
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
