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
#include "bin_finder.hpp"
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

// Per-thread dense bucket counts (index k - min_index), zeroed again after each task.
struct Scratch {
  std::vector<int64_t> pos, neg;
  std::vector<int64_t> hist;
  double buf[kBlock];
};

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

// Moves the non-empty range of a dense bucket array into `into` and zeroes it for the next task.
void drain(std::vector<int64_t>& dense, int32_t min_index, std::vector<int64_t>& into, int64_t& into_offset) {
  const auto nonzero = [](int64_t c) { return c != 0; };
  const auto first = std::find_if(dense.begin(), dense.end(), nonzero);
  if (first == dense.end()) return;
  const auto last = std::find_if(dense.rbegin(), dense.rend(), nonzero).base();
  add_run(into, into_offset, (first - dense.begin()) + min_index, &*first, last - first);
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

// Number of edges <= v, with the arithmetic guess of BinFinder for evenly spaced edges.
struct EdgeCounter {
  const double* edges;
  int64_t n;
  detail::BinFinder finder;

  EdgeCounter(const double* e, int64_t count) : edges(e), n(count), finder(e, count) {}

  int64_t operator()(double v) const {
    if (n == 0 || v < edges[0]) return 0;
    if (v >= edges[n - 1]) return n;
    return 1 + finder(v);
  }
};

// One task: moments (returned) and counts (merged into the column's Counts).
Moments run_task(const Task& t, const Column& col, const LogBuckets& buckets, Scratch& s, Counts& counts) {
  Moments acc;
  int64_t missing = 0, zero = 0;
  const int32_t min_index = buckets.min_index();
  const int64_t nhist = col.has_edges ? col.nedges + 1 : 0;
  s.hist.assign(static_cast<size_t>(nhist), 0);
  if (t.piece->data == nullptr) {
    missing = t.end - t.begin;
  } else {
    const EdgeCounter edges(col.edges, col.nedges);
    int64_t* pos = s.pos.data() - min_index;
    int64_t* neg = s.neg.data() - min_index;
    for (int64_t a = t.begin; a < t.end; a += kBlock) {
      const int64_t len = std::min(kBlock, t.end - a);
      const int64_t n = compact_any(col.type, *t.piece, a, len, s.buf);
      missing += len - n;
      if (n == 0) continue;
      agg::detail::merge_into(acc, agg::detail::block_moments(s.buf, n, true));
      for (int64_t i = 0; i < n; ++i) {
        const double v = s.buf[i];
        const double m = std::fabs(v);
        if (m < kSketchMin) {
          ++zero;
        } else {
          ++(v > 0.0 ? pos : neg)[buckets.index(m)];
        }
      }
      if (nhist > 0) {
        for (int64_t i = 0; i < n; ++i) ++s.hist[static_cast<size_t>(edges(s.buf[i]))];
      }
    }
  }
  std::lock_guard<std::mutex> guard(counts.lock);
  counts.missing += missing;
  counts.zero += zero;
  drain(s.pos, min_index, counts.pos, counts.pos_offset);
  drain(s.neg, min_index, counts.neg, counts.neg_offset);
  if (nhist > 0) {
    if (counts.hist.empty()) counts.hist.assign(static_cast<size_t>(nhist), 0);
    for (int64_t j = 0; j < nhist; ++j) counts.hist[static_cast<size_t>(j)] += s.hist[static_cast<size_t>(j)];
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
      s->pos.assign(nbuckets, 0);
      s->neg.assign(nbuckets, 0);
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
