// Segmented reductions over CSR offsets, and grouping of values by segment id.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "aggregate_internal.hpp"

namespace cairn::agg {

using detail::Moments;

int resolve_threads(int threads) { return static_cast<int>(cairn::resolve_threads(threads)); }

void validate_offsets(const int64_t* offsets, int64_t nseg, int64_t n) {
  if (nseg < 0) throw std::invalid_argument("number of segments must be >= 0");
  if (offsets[0] < 0) {
    throw std::invalid_argument("offsets[0] is " + std::to_string(offsets[0]) + "; must be >= 0");
  }
  for (int64_t s = 0; s < nseg; ++s) {
    if (offsets[s + 1] < offsets[s]) {
      throw std::invalid_argument("offsets must be non-decreasing; offsets[" + std::to_string(s + 1) +
                                  "] < offsets[" + std::to_string(s) + "]");
    }
  }
  if (offsets[nseg] > n) {
    throw std::invalid_argument("offsets[-1] is " + std::to_string(offsets[nseg]) +
                                " but there are only " + std::to_string(n) + " values");
  }
}

namespace {

// A piece of a segment cut by a part boundary, waiting to be merged with its neighbours.
struct Piece {
  int64_t segment = -1;
  Moments moments;
};

}  // namespace

template <class T>
void segment_reduce(const T* values, int64_t n, const int64_t* offsets, int64_t nseg,
                    const ReduceOutputs& out, int ddof, int threads) {
  validate_offsets(offsets, nseg, n);
  if (ddof < 0) throw std::invalid_argument("ddof must be >= 0");
  const bool want_m2 = out.var != nullptr || out.std != nullptr;
  const Moments empty;
  for (int64_t s = 0; s < nseg; ++s) {
    if (offsets[s] == offsets[s + 1]) detail::write_result(out, s, empty, ddof);
  }
  const int64_t begin = offsets[0];
  const int64_t end = offsets[nseg];
  const int64_t nparts = detail::part_count(begin, end);
  // Each part finishes the segments lying wholly inside it and leaves at most two cut pieces
  // (its first and last segment) for the ordered merge below.
  std::vector<Piece> cut(static_cast<size_t>(2 * nparts));
  detail::parallel_for(nparts, resolve_threads(threads), [&](int64_t part, int) {
    const int64_t p0 = begin + part * kPartSize;
    const int64_t p1 = std::min(end, p0 + kPartSize);
    int ncut = 0;
    for (int64_t s = detail::first_segment_after(offsets, nseg, p0); s < nseg && offsets[s] < p1; ++s) {
      const int64_t a = std::max(offsets[s], p0);
      const int64_t b = std::min(offsets[s + 1], p1);
      if (a >= b) continue;
      Moments m = detail::range_moments(values, a, b, want_m2);
      if (offsets[s] >= p0 && offsets[s + 1] <= p1) {
        detail::write_result(out, s, m, ddof);
      } else {
        cut[static_cast<size_t>(2 * part + ncut)] = Piece{s, m};
        ++ncut;
      }
    }
  });
  Piece open;
  for (const Piece& piece : cut) {
    if (piece.segment < 0) continue;
    if (piece.segment != open.segment) {
      if (open.segment >= 0) detail::write_result(out, open.segment, open.moments, ddof);
      open = piece;
    } else {
      detail::merge_into(open.moments, piece.moments);
    }
  }
  if (open.segment >= 0) detail::write_result(out, open.segment, open.moments, ddof);
}

template <class T, class Id>
Grouped<T> group_by_ids(const T* values, int64_t n, const Id* ids, int64_t nseg, bool want_order,
                        int threads) {
  if (nseg < 0) throw std::invalid_argument("num_segments must be >= 0");
  const int64_t nchunks = std::min<int64_t>(resolve_threads(threads), std::max<int64_t>(1, n / kPartSize));
  const int64_t chunk = nchunks > 0 ? (n + nchunks - 1) / nchunks : 0;
  // counts[c * nseg + s]: values of segment s in chunk c; turned into write positions in place.
  std::vector<int64_t> counts(static_cast<size_t>(nchunks * nseg), 0);
  detail::parallel_for(nchunks, static_cast<int>(nchunks), [&](int64_t c, int) {
    int64_t* row = counts.data() + c * nseg;
    const int64_t i1 = std::min(n, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < i1; ++i) {
      const int64_t id = static_cast<int64_t>(ids[i]);
      if (id < 0 || id >= nseg) {
        throw std::invalid_argument("segment id " + std::to_string(id) + " at index " + std::to_string(i) +
                                    " is outside [0, " + std::to_string(nseg) + ")");
      }
      ++row[id];
    }
  });
  Grouped<T> g;
  g.offsets.assign(static_cast<size_t>(nseg + 1), 0);
  int64_t pos = 0;
  for (int64_t s = 0; s < nseg; ++s) {
    g.offsets[static_cast<size_t>(s)] = pos;
    for (int64_t c = 0; c < nchunks; ++c) {
      int64_t& cell = counts[static_cast<size_t>(c * nseg + s)];
      const int64_t k = cell;
      cell = pos;
      pos += k;
    }
  }
  g.offsets[static_cast<size_t>(nseg)] = pos;
  g.values.resize(static_cast<size_t>(n));
  if (want_order) g.order.resize(static_cast<size_t>(n));
  detail::parallel_for(nchunks, static_cast<int>(nchunks), [&](int64_t c, int) {
    int64_t* next = counts.data() + c * nseg;
    const int64_t i1 = std::min(n, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < i1; ++i) {
      const int64_t dst = next[static_cast<int64_t>(ids[i])]++;
      g.values[static_cast<size_t>(dst)] = values[i];
      if (want_order) g.order[static_cast<size_t>(dst)] = i;
    }
  });
  return g;
}

template void segment_reduce<float>(const float*, int64_t, const int64_t*, int64_t, const ReduceOutputs&, int, int);
template void segment_reduce<double>(const double*, int64_t, const int64_t*, int64_t, const ReduceOutputs&, int, int);
#define CAIRN_AGG_IDS(T, Id) \
  template Grouped<T> group_by_ids<T, Id>(const T*, int64_t, const Id*, int64_t, bool, int);
CAIRN_AGG_IDS(float, int32_t)
CAIRN_AGG_IDS(float, int64_t)
CAIRN_AGG_IDS(double, int32_t)
CAIRN_AGG_IDS(double, int64_t)
#undef CAIRN_AGG_IDS

}  // namespace cairn::agg
