// The one pass of numeric column statistics (cairn/profile.hpp). Work is cut into tasks of one
// column's row range (kTaskRows rows of one piece), so long columns use every thread and wide tables
// spread over columns. Each task compacts a block's finite values into a small buffer (the only place
// that knows the value type and the validity bitmap), then computes the block's moments, sketch
// buckets and histogram bins from that buffer while it is in L1.
#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "aggregate_internal.hpp"
#include "cairn/profile.hpp"

namespace cairn::profile {

namespace {

using agg::detail::Moments;

constexpr int64_t kTaskRows = int64_t{1} << 16;
constexpr int64_t kBlock = agg::kBlockSize;

struct Task {
  int64_t column;
  const Piece* piece;
  int64_t begin, end;  // rows of the piece
};

// Integer counts of a column, merged from tasks in any order (sums of integers: order-free).
struct Counts {
  std::mutex lock;
  int64_t missing = 0, zero = 0;
  int64_t pos_offset = 0, neg_offset = 0;
  std::vector<int64_t> pos, neg, hist;
};

// Per-thread scratch: dense sketch counts laid out [neg buckets | zero | pos buckets] (bucket k of
// a sign at k - min_index inside its block), zeroed again after each task; the histogram; a block's
// compacted values.
struct Scratch {
  std::vector<int64_t> sketch;
  std::vector<int64_t> hist;
  double buf[kBlock];
};

// Copies of the histogram that consecutive values count into, so that runs of values in the same
// bin do not wait on each other's increments.
constexpr int64_t kHistLanes = 4;

// Adds src (buckets src_offset ..) into the sparse run dst (buckets dst_offset ..), growing it.
void add_run(std::vector<int64_t>& dst, int64_t& dst_offset, int64_t src_offset, const int64_t* src, int64_t len) {
  if (len == 0) return;
  if (dst.empty()) {
    dst.assign(src, src + len);
    dst_offset = src_offset;
    return;
  }
  const int64_t lo = std::min(dst_offset, src_offset);
  const int64_t hi = std::max(dst_offset + static_cast<int64_t>(dst.size()), src_offset + len);
  if (lo < dst_offset || hi > dst_offset + static_cast<int64_t>(dst.size())) {
    std::vector<int64_t> grown(static_cast<size_t>(hi - lo), 0);
    std::copy(dst.begin(), dst.end(), grown.begin() + (dst_offset - lo));
    dst.swap(grown);
    dst_offset = lo;
  }
  for (int64_t i = 0; i < len; ++i) dst[static_cast<size_t>(src_offset - dst_offset + i)] += src[i];
}

// Moves the non-empty range of dense bucket counts into `into` and zeroes it for the next task.
void drain(int64_t* dense, int64_t len, int32_t min_index, std::vector<int64_t>& into, int64_t& into_offset) {
  const auto nonzero = [](int64_t c) { return c != 0; };
  int64_t* const end = dense + len;
  int64_t* first = std::find_if(dense, end, nonzero);
  if (first == end) return;
  int64_t* last = end;
  while (last[-1] == 0) --last;
  add_run(into, into_offset, (first - dense) + min_index, first, last - first);
  std::fill(first, last, int64_t{0});
}

// Copies the finite, non-null values of rows [a, a + len) into out; returns how many.
template <class T>
int64_t compact(const Piece& p, int64_t a, int64_t len, double* out) {
  const T* data = static_cast<const T*>(p.data) + a;
  constexpr bool kFloat = std::is_floating_point<T>::value;
  int64_t n = 0;
  if (p.validity == nullptr) {
    for (int64_t i = 0; i < len; ++i) {
      const double v = static_cast<double>(data[i]);
      out[n] = v;
      n += kFloat ? (std::isfinite(v) ? 1 : 0) : 1;
    }
    return n;
  }
  const uint8_t* bits = p.validity;
  for (int64_t i = 0; i < len; ++i) {
    const int64_t bit = p.validity_bit + a + i;
    const bool valid = (bits[bit >> 3] >> (bit & 7)) & 1;
    const double v = static_cast<double>(data[i]);
    out[n] = v;
    n += valid && (!kFloat || std::isfinite(v)) ? 1 : 0;
  }
  return n;
}

int64_t compact_any(ValueType type, const Piece& p, int64_t a, int64_t len, double* out) {
  switch (type) {
    case ValueType::Float32: return compact<float>(p, a, len, out);
    case ValueType::Float64: return compact<double>(p, a, len, out);
    case ValueType::Int8: return compact<int8_t>(p, a, len, out);
    case ValueType::Int16: return compact<int16_t>(p, a, len, out);
    case ValueType::Int32: return compact<int32_t>(p, a, len, out);
    case ValueType::Int64: return compact<int64_t>(p, a, len, out);
    case ValueType::UInt8: return compact<uint8_t>(p, a, len, out);
    case ValueType::UInt16: return compact<uint16_t>(p, a, len, out);
    case ValueType::UInt32: return compact<uint32_t>(p, a, len, out);
    case ValueType::UInt64: return compact<uint64_t>(p, a, len, out);
  }
  throw std::logic_error("unknown value type");
}

// Number of edges <= v. The idea of agg's BinFinder (guess arithmetically, then correct against the
// edges themselves, so the answer is exactly a binary search's) made to work for uneven edges such
// as quantiles: a grid of kCellsPerEdge cells per edge over [e0, e_last) remembers how many edges
// lie at or below each cell's lower end; the guess for v is its cell's entry, and the correction
// steps are almost always a single comparison each way, without mispredicted branches.
class EdgeCounter {
 public:
  EdgeCounter(const double* e, int64_t n) : e_(e), n_(n) {
    if (n < 2 || !std::isfinite(e[0]) || !std::isfinite(e[n - 1]) || !(e[n - 1] > e[0])) return;
    lo_ = e[0];
    const int64_t cells = kCellsPerEdge * n;
    scale_ = static_cast<double>(cells) / (e[n - 1] - e[0]);
    if (!std::isfinite(scale_)) return;
    last_cell_ = cells - 1;
    first_.resize(static_cast<size_t>(cells));
    for (int64_t c = 0; c < cells; ++c) {
      const double lower = lo_ + static_cast<double>(c) / scale_;
      first_[static_cast<size_t>(c)] = std::upper_bound(e, e + n, lower) - e;
    }
  }

  int64_t operator()(double v) const {  // v is not NaN
    if (n_ == 0 || v < e_[0]) return 0;
    if (v >= e_[n_ - 1]) return n_;
    int64_t k;
    if (first_.empty()) {
      k = std::upper_bound(e_, e_ + n_, v) - e_;
    } else {
      const int64_t c = std::min(static_cast<int64_t>((v - lo_) * scale_), last_cell_);
      k = first_[static_cast<size_t>(c)];
      while (e_[k - 1] > v) --k;  // k >= 1 throughout: e_[0] <= v
      while (e_[k] <= v) ++k;     // k < n_ throughout: v < e_[n_ - 1]
    }
    return k;
  }

 private:
  static constexpr int64_t kCellsPerEdge = 64;
  const double* e_;
  int64_t n_;
  double lo_ = 0.0, scale_ = 0.0;
  int64_t last_cell_ = 0;
  std::vector<int64_t> first_;
};

// Adds the histogram bin of each of buf[0, n) into s.hist (kHistLanes interleaved copies).
void count_bins(const Column& col, const EdgeCounter& edges, Scratch& s, int64_t n) {
  const int64_t nhist = col.nedges + 1;
  int64_t* hist = s.hist.data();
  for (int64_t i = 0; i < n; ++i) ++hist[(i % kHistLanes) * nhist + edges(s.buf[i])];
}

// One task: moments (returned) and counts (merged into the column's Counts).
Moments run_task(const Task& t, const Column& col, const LogBuckets& buckets, Scratch& s, Counts& counts) {
  Moments acc;
  int64_t missing = 0;
  const int32_t min_index = buckets.min_index();
  const int64_t nb = buckets.max_index() - min_index + 1;
  const int64_t nhist = col.has_edges ? col.nedges + 1 : 0;
  s.hist.assign(static_cast<size_t>(nhist * kHistLanes), 0);
  if (t.piece->data == nullptr) {
    missing = t.end - t.begin;
  } else {
    const EdgeCounter edges(col.edges, col.nedges);
    int64_t* neg = s.sketch.data() - min_index;   // neg[k]: bucket k of the negative values
    int64_t* pos = neg + nb + 1;                  // pos[k]: bucket k of the positive values
    int64_t* zero = s.sketch.data() + nb;
    for (int64_t a = t.begin; a < t.end; a += kBlock) {
      const int64_t len = std::min(kBlock, t.end - a);
      const int64_t n = compact_any(col.type, *t.piece, a, len, s.buf);
      missing += len - n;
      if (n == 0) continue;
      agg::detail::merge_into(acc, agg::detail::block_moments(s.buf, n, true));
      for (int64_t i = 0; i < n; ++i) {
        const double v = s.buf[i];
        const double m = std::fabs(v);
        const int32_t k = buckets.index(std::max(m, kSketchMin));
        int64_t* slot = m < kSketchMin ? zero : (v > 0.0 ? pos : neg) + k;
        ++*slot;
      }
      if (nhist > 0) count_bins(col, edges, s, n);
    }
  }
  std::lock_guard<std::mutex> guard(counts.lock);
  counts.missing += missing;
  int64_t* dense = s.sketch.data();
  counts.zero += dense[nb];
  dense[nb] = 0;
  drain(dense, nb, min_index, counts.neg, counts.neg_offset);
  drain(dense + nb + 1, nb, min_index, counts.pos, counts.pos_offset);
  if (nhist > 0) {
    if (counts.hist.empty()) counts.hist.assign(static_cast<size_t>(nhist), 0);
    for (int64_t lane = 0; lane < kHistLanes; ++lane) {
      for (int64_t j = 0; j < nhist; ++j) counts.hist[static_cast<size_t>(j)] += s.hist[static_cast<size_t>(lane * nhist + j)];
    }
  }
  return acc;
}

}  // namespace

std::vector<NumericStats> numeric_stats(const std::vector<Column>& columns, double alpha, int threads) {
  const LogBuckets buckets(alpha);
  const int64_t ncol = static_cast<int64_t>(columns.size());
  for (int64_t c = 0; c < ncol; ++c) {
    const Column& col = columns[static_cast<size_t>(c)];
    if (col.has_edges) validate_edges(col.edges, col.nedges, c);
    for (const Piece& p : col.pieces) {
      if (p.length < 0 || p.validity_bit < 0) {
        throw std::invalid_argument("column " + std::to_string(c) + ": negative length or offset");
      }
    }
  }
  // Tasks in column order, then row order: the order partial moments are merged in.
  std::vector<Task> tasks;
  std::vector<int64_t> first_task(static_cast<size_t>(ncol + 1), 0);
  for (int64_t c = 0; c < ncol; ++c) {
    first_task[static_cast<size_t>(c)] = static_cast<int64_t>(tasks.size());
    for (const Piece& p : columns[static_cast<size_t>(c)].pieces) {
      for (int64_t r = 0; r < p.length; r += kTaskRows) tasks.push_back({c, &p, r, std::min(p.length, r + kTaskRows)});
    }
  }
  first_task[static_cast<size_t>(ncol)] = static_cast<int64_t>(tasks.size());

  const int nthreads = static_cast<int>(cairn::resolve_threads(threads));
  const size_t nbuckets = static_cast<size_t>(buckets.max_index() - buckets.min_index() + 1);
  std::vector<std::unique_ptr<Scratch>> scratch(static_cast<size_t>(nthreads));
  std::vector<Counts> counts(static_cast<size_t>(ncol));
  std::vector<Moments> moments(tasks.size());
  agg::detail::parallel_for(static_cast<int64_t>(tasks.size()), nthreads, [&](int64_t i, int worker) {
    auto& s = scratch[static_cast<size_t>(worker)];
    if (!s) {
      s = std::make_unique<Scratch>();
      s->sketch.assign(2 * nbuckets + 1, 0);
    }
    const Task& t = tasks[static_cast<size_t>(i)];
    moments[static_cast<size_t>(i)] =
        run_task(t, columns[static_cast<size_t>(t.column)], buckets, *s, counts[static_cast<size_t>(t.column)]);
  });

  std::vector<NumericStats> out(static_cast<size_t>(ncol));
  for (int64_t c = 0; c < ncol; ++c) {
    Moments acc;
    for (int64_t i = first_task[static_cast<size_t>(c)]; i < first_task[static_cast<size_t>(c + 1)]; ++i) {
      agg::detail::merge_into(acc, moments[static_cast<size_t>(i)]);
    }
    const Column& col = columns[static_cast<size_t>(c)];
    Counts& k = counts[static_cast<size_t>(c)];
    NumericStats& r = out[static_cast<size_t>(c)];
    r.count = acc.count;
    r.missing = k.missing;
    r.min = acc.count ? acc.min : agg::detail::kNaN;
    r.max = acc.count ? acc.max : agg::detail::kNaN;
    r.mean = acc.count ? acc.total() / static_cast<double>(acc.count) : agg::detail::kNaN;
    r.m2 = acc.count ? acc.m2 : 0.0;
    r.zero = k.zero;
    r.pos_offset = k.pos.empty() ? 0 : k.pos_offset;
    r.pos = std::move(k.pos);
    r.neg_offset = k.neg.empty() ? 0 : k.neg_offset;
    r.neg = std::move(k.neg);
    r.has_hist = col.has_edges;
    if (col.has_edges) {
      r.hist = k.hist.empty() ? std::vector<int64_t>(static_cast<size_t>(col.nedges + 1), 0) : std::move(k.hist);
    }
  }
  return out;
}

}  // namespace cairn::profile
