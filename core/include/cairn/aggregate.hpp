// Metric aggregation on the CPU: segmented reductions, exact quantiles, chart downsampling
// (min/max/last per bucket, LTTB), rolling-window statistics and histograms with given edges.
//
// Plain C++17, no Python. The semantics below are the contract that every implementation of these
// kernels (CPU here, CUDA elsewhere) must meet; docs/core-aggregation.md explains them at length.
//
// Segments. A segment layout is either CSR offsets (int64, length nseg + 1, non-decreasing,
// 0 <= offsets[0], offsets[nseg] <= n; segment s is values[offsets[s] .. offsets[s+1])) or
// per-value segment ids (int32 or int64, any order, each in [0, nseg)). With ids, a segment's
// values are taken in increasing index order, so "first" and "last" mean lowest and highest index.
//
// NaN. NaN values are skipped by every reduction and counted in nan_count. A segment with no
// non-NaN value is "empty": count 0, sum 0, and NaN for min, max, mean, var, std, first, last and
// quantiles. Infinities are ordinary values and propagate by IEEE arithmetic (sum of +inf and -inf
// is NaN; var of a segment holding an infinity is NaN).
//
// Determinism. Every kernel gives bit-identical results for any thread count: work is cut at
// positions that depend on the data size only (kPartSize parts, fixed chunks), never on the
// number of threads, and partial results are merged in index order.
//
// Errors. Invalid arguments throw std::invalid_argument with a message saying what was wrong.
#pragma once
#include <cstdint>
#include <vector>

namespace cairn::agg {

// Values are processed in parts of this many elements (the unit of parallel work).
constexpr int64_t kPartSize = int64_t{1} << 16;
// Inside a part, moments are computed by a corrected two-pass over blocks of this many elements,
// relative to a shift (the block's first non-NaN value), and the blocks are merged with Chan et
// al.'s pairwise update.
constexpr int64_t kBlockSize = 2048;

// threads <= 0 means cairn::configured_threads(): CAIRN_THREADS if set, else all hardware threads.
int resolve_threads(int threads);

// Throws std::invalid_argument unless offsets describe nseg segments inside [0, n).
void validate_offsets(const int64_t* offsets, int64_t nseg, int64_t n);

// Output arrays of segment_reduce, each of length nseg; a null pointer means "not wanted".
struct ReduceOutputs {
  int64_t* count = nullptr;      // non-NaN values
  int64_t* nan_count = nullptr;  // NaN values
  double* sum = nullptr;         // compensated sum in float64; 0 when empty
  double* min = nullptr;
  double* max = nullptr;
  double* mean = nullptr;        // sum / count
  double* var = nullptr;         // M2 / (count - ddof); NaN when count - ddof <= 0
  double* std = nullptr;         // sqrt(var)
  double* first = nullptr;       // first non-NaN value in index order
  double* last = nullptr;        // last non-NaN value in index order
};

// Segmented reductions over CSR offsets. T is float or double; accumulation is in double.
template <class T>
void segment_reduce(const T* values, int64_t n, const int64_t* offsets, int64_t nseg,
                    const ReduceOutputs& out, int ddof, int threads);

// Segmented reductions over per-value segment ids (Id is int32_t or int64_t). count, nan_count,
// min, max, first and last equal segment_reduce's over the values stably sorted by id; sum, mean,
// var and std agree within the documented tolerance (bit for bit above 65,536 segments, where the
// values are regrouped by a stable counting sort and reduced by segment_reduce).
template <class T, class Id>
void segment_reduce_by_ids(const T* values, int64_t n, const Id* ids, int64_t nseg,
                           const ReduceOutputs& out, int ddof, int threads);

// Values regrouped by segment id (stable counting sort): grouped values, CSR offsets (nseg + 1)
// and, when want_order, the original index of each grouped value.
template <class T>
struct Grouped {
  std::vector<T> values;
  std::vector<int64_t> offsets;
  std::vector<int64_t> order;
};
template <class T, class Id>
Grouped<T> group_by_ids(const T* values, int64_t n, const Id* ids, int64_t nseg, bool want_order,
                        int threads);

// Exact quantiles per segment, out is row-major (nseg, nq). NaN values are skipped. For a segment
// of m non-NaN values sorted as v[0..m), quantile q in [0, 1] is numpy's default "linear" method:
// h = q * (m - 1), i = floor(h), t = h - i, result = lerp(v[i], v[min(i + 1, m - 1)], t) with
// lerp(a, b, t) = a + (b - a) * t for t < 0.5 and b - (b - a) * (1 - t) otherwise; when t == 0
// or a == b the result is a. Empty segments give NaN.
template <class T>
void segment_quantiles(const T* values, int64_t n, const int64_t* offsets, int64_t nseg,
                       const double* q, int64_t nq, double* out, int threads);

// Chart downsampling to at most n_out points (n_out >= 3), returning ascending point indices.
// x must be ascending (non-decreasing) and finite; X is int64_t or double; Y is float or double.
// If n <= n_out every index is returned.
//
// downsample_minmax: nb = n_out / 3 buckets of equal x range over [x[0], x[n-1]]; point i goes to
// bucket floor((x[i] - x[0]) * nb / (x[n-1] - x[0] + 1)) for integer x (exact, 128-bit), and
// min(nb - 1, floor((x[i] - x[0]) / (x[n-1] - x[0]) * nb)) for float x (bucket 0 when the range
// is 0). Each non-empty bucket contributes the index of its smallest y, of its largest y (first
// occurrence on ties; NaN y never chosen) and its last index (whatever its y), deduplicated.
template <class X, class Y>
std::vector<int64_t> downsample_minmax(const X* x, const Y* y, int64_t n, int64_t n_out);

// Largest-triangle-three-buckets. Index 0 and n - 1 are always kept. The points 1 .. n-2 are cut
// into n_out - 2 buckets of equal point count: bucket b is [1 + b*(n-2)/(n_out-2),
// 1 + (b+1)*(n-2)/(n_out-2)) in integer division. In each bucket the chosen point maximises the
// triangle area with the previously chosen point and the mean (x, y) of the next bucket (the last
// point for the last bucket); the mean skips NaN y and, when the next bucket has none, uses the
// previous point's y. x enters as double (x - x[0]). Ties and NaN areas keep the earliest point.
template <class X, class Y>
std::vector<int64_t> lttb(const X* x, const Y* y, int64_t n, int64_t n_out);

// Outputs of rolling, each of length n; null means "not wanted".
struct RollingOutputs {
  int64_t* count = nullptr;
  double* sum = nullptr;
  double* mean = nullptr;
  double* var = nullptr;
  double* std = nullptr;
  double* min = nullptr;
  double* max = nullptr;
};

// Trailing-window statistics inside each segment: the window at position i of segment s covers
// values[max(offsets[s], i - window + 1) .. i]. NaN values are skipped; count is the number of
// non-NaN values in the window. When count < min_periods every statistic but count is NaN;
// sum = plain sum, mean = sum / count, var = M2 / (count - ddof) (NaN when count - ddof <= 0).
// Positions outside [offsets[0], offsets[nseg]) get count 0 and NaN. Windows are assembled from
// exact prefix/suffix moments of window-sized blocks (no subtract-on-leave drift: an infinity or
// a huge value leaves the window without a trace).
template <class T>
void rolling(const T* values, int64_t n, const int64_t* offsets, int64_t nseg, int64_t window,
             int64_t min_periods, int ddof, const RollingOutputs& out, int threads);

// rolling over per-value segment ids: each segment's values in index order form its series, and
// every output lands at the position of its value (outputs have length n, like values).
template <class T, class Id>
void rolling_by_ids(const T* values, int64_t n, const Id* ids, int64_t nseg, int64_t window,
                    int64_t min_periods, int ddof, const RollingOutputs& out, int threads);

// Per-segment histograms over given edges (finite, strictly increasing, nedges >= 2). Bin j holds
// edges[j] <= v < edges[j+1], the last bin also holds v == edges[nedges-1] (numpy's rule).
// v < edges[0] (including -inf) counts in underflow, v > edges[nedges-1] (including +inf) in
// overflow, NaN in nan_count. counts is row-major (nseg, nedges - 1). All outputs are written.
template <class T>
void segment_histogram(const T* values, int64_t n, const int64_t* offsets, int64_t nseg,
                       const double* edges, int64_t nedges, int64_t* counts, int64_t* underflow,
                       int64_t* overflow, int64_t* nan_count, int threads);

}  // namespace cairn::agg
