// One pass of numeric column statistics for data profiles (the monitor's reference and window
// profiles): count, missing, min/max, mean and M2, a mergeable log-bucket quantile sketch and an
// optional histogram over given edges, for many columns at once.
//
// Plain C++17, no Python. The contract (docs/core.md, "Column statistics for profiles"):
//
// Values. A value is "finite" when it is not null (Arrow validity bit clear), not NaN and not
// +-inf; every other value is "missing". Integers are converted to double (int64/uint64 beyond
// 2**53 round, as numpy's astype(float64) does).
//
// Moments. count, min, max, mean and m2 (the sum of squared deviations from the mean) are over the
// finite values; mean is NaN and m2 is 0 when count is 0. Moments are computed per block of
// agg::kBlockSize values by a corrected two-pass about a shift, and blocks are merged with Chan et
// al.'s update, so 1e9 + small noise keeps its variance.
//
// Sketch. With gamma = (1 + alpha) / (1 - alpha), bucket k (k may be negative) holds the
// magnitudes m with gamma**(k-1) < m <= gamma**k, where gamma**k is exactly std::pow(gamma, k)
// (the value Python's `gamma ** k` gives). Magnitudes below kSketchMin (and zeros) are counted in
// `zero`; magnitudes above gamma**(max_index - 1) are clamped into bucket max_index, where
// max_index = ceil(log(kSketchMaxMagnitude) / log(gamma)). Positive values count in `pos`,
// negative ones (by magnitude) in `neg`, each dense from its smallest to its largest non-empty
// bucket (pos[i] is bucket pos_offset + i). Any value in bucket k is within relative error alpha
// of the bucket's representative 2 * gamma**k / (gamma + 1).
//
// Histogram. With edges e[0..n) (sorted ascending, not NaN; duplicates and infinities allowed),
// hist has n + 1 counts: hist[j] counts the finite values with exactly j edges <= x, that is
// [x < e0], [e0 <= x < e1], ..., [x >= e[n-1]].
//
// Determinism. Columns are cut into row ranges that depend on the data layout only, never on the
// thread count, and partial moments are merged in row order: results are bit-identical for any
// number of threads.
//
// Errors. Invalid arguments (alpha, edges, lengths) throw std::invalid_argument naming the column.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace cairn::profile {

constexpr double kSketchMin = 1e-12;           // magnitudes below this count as zero
constexpr double kSketchMaxMagnitude = 1e12;   // sets the largest bucket index (larger clamp)
constexpr double kMinAlpha = 1e-4;             // keeps the bucket table small (~280k entries)
constexpr double kMaxAlpha = 0.5;

enum class ValueType { Float32, Float64, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64 };

// Parses "float32", "int8", "uint64", ...; throws std::invalid_argument for any other name.
ValueType parse_value_type(const std::string& name);

// One contiguous run of a column's values: one Arrow array (chunk) or one numpy array.
struct Piece {
  const void* data = nullptr;         // element 0 of the piece; nullptr: every value is null
  const uint8_t* validity = nullptr;  // Arrow validity bitmap (LSB first); nullptr: all valid
  int64_t validity_bit = 0;           // bit of element 0 in `validity` (the Arrow array offset)
  int64_t length = 0;
};

struct Column {
  ValueType type = ValueType::Float64;
  std::vector<Piece> pieces;   // accumulated in order (a ChunkedArray's chunks)
  bool has_edges = false;
  const double* edges = nullptr;
  int64_t nedges = 0;
};

struct NumericStats {
  int64_t count = 0;
  int64_t missing = 0;
  double min = 0.0, max = 0.0;
  double mean = 0.0, m2 = 0.0;
  int64_t zero = 0;
  int64_t pos_offset = 0;
  std::vector<int64_t> pos;
  int64_t neg_offset = 0;
  std::vector<int64_t> neg;
  bool has_hist = false;
  std::vector<int64_t> hist;
};

// The bucket boundaries of the log sketch for one alpha, and the bucket of a magnitude.
class LogBuckets {
 public:
  explicit LogBuckets(double alpha);  // kMinAlpha <= alpha <= kMaxAlpha, else invalid_argument

  double gamma() const { return gamma_; }
  int32_t min_index() const { return min_index_; }  // the bucket of kSketchMin
  int32_t max_index() const { return max_index_; }
  // gamma**k for min_index() - 1 <= k <= max_index().
  double boundary(int32_t k) const { return bounds_[static_cast<size_t>(k - min_index_ + 1)]; }

  // The bucket of a magnitude m >= kSketchMin (finite): the smallest k with m <= gamma**k,
  // clamped to max_index(). A table indexed by the top bits of m's representation gives the
  // bucket of the table cell's lower end; a short walk up the exact boundaries finishes it.
  int32_t index(double m) const {
    if (m > clamp_above_) return max_index_;
    uint64_t bits;
    std::memcpy(&bits, &m, sizeof bits);
    const size_t cell = static_cast<size_t>((bits >> kKeyShift) - first_key_);
    const int32_t k = guess_[cell];
    // guess_[cell + 1] bounds the answer from above; for the default alpha it is at most one
    // more than k (a cell is narrower than a bucket), and one comparison settles it.
    if (guess_[cell + 1] - k <= 1) return k + (m > boundary(k) ? 1 : 0);
    return search(m, k, guess_[cell + 1]);
  }

  // Keys are a magnitude's exponent and top 7 mantissa bits: a key's cell spans less than 0.0113
  // in log2, under one bucket for the default alpha (0.0144 in log2).
  static constexpr int kKeyShift = 52 - 7;

 private:
  int32_t search(double m, int32_t lo, int32_t hi) const;  // the bucket, known in [lo, hi]

  double gamma_;
  int32_t min_index_, max_index_;
  double clamp_above_;           // gamma**(max_index - 1): larger magnitudes go to max_index
  std::vector<double> bounds_;   // gamma**k for k = min_index - 1 .. max_index
  uint64_t first_key_ = 0;       // key (top bits) of kSketchMin
  std::vector<int32_t> guess_;   // bucket of each key's lower end, one extra at the end
};

// Throws std::invalid_argument unless the edges are sorted ascending and not NaN; names `column`.
void validate_edges(const double* edges, int64_t nedges, int64_t column);

// Statistics of every column, threads <= 0 meaning cairn::configured_threads().
std::vector<NumericStats> numeric_stats(const std::vector<Column>& columns, double alpha, int threads);

}  // namespace cairn::profile
